"""Corpus QA: cited, offline question answering over a corpus of news articles.

Data flows ingest -> chunking -> embedding -> store (index) -> retrieve -> answer,
and the surfaces (CLI now; web UI and HTTP API later) all go through ``qa.engine.Engine``.
"""

__version__ = "0.1.0"
