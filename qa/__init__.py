"""Corpus QA: cited, offline question answering over a corpus of news articles.

Data flows ingest -> chunking -> embedding -> store (index) -> retrieve -> answer,
and the surfaces (CLI, web chat, REST and OpenAI-compatible API) all go through
``qa.engine.Engine``; the server's surfaces share one through ``qa.service.QAService``.
"""

__version__ = "0.1.0"
