"""Stage 3, retrieve: a question (resolved against the chat history by ``followup``) to the
passages most likely to answer it: dense and BM25 (``keyword``) retrievers fused by
reciprocal rank (``hybrid``), as llama-index retrievers.
"""
