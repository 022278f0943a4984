"""Stage 1, ingest: article files in, llama-index ``Document``s and passages out.

``reading`` turns files (text, Markdown, HTML, PDF, JSONL) into documents with stable ids
and content hashes; ``chunking`` splits them into sentences and packs passages that keep
their exact character spans; ``text`` is the word and term analysis the later stages share
(BM25 terms, question words), so that every stage tokenizes the same way.
"""
