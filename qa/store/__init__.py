"""Stage 2, store: passages embedded and kept in Chroma, and everything that writes them.

``embedding`` is the MiniLM ONNX embedder; ``chroma`` the collections, builds, alias and
recorded sources; ``locking`` the writers' lock; ``indexer`` the incremental ``qa index``;
``doctor`` checks and repairs an index against its sources.
"""
