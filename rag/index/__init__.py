"""The index: embedding (embed), BM25 (lexical), the stored segments in files or PostgreSQL (segments, store,
pgstore), incremental updates (indexer) and hybrid retrieval (retrieve).

May use `rag.documents` and the foundation modules; never `rag.answer` or anything above it.
"""
