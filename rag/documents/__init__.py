"""Reading documents: files to text with page offsets (ingest), and text to chunks that are exact slices (chunk).

May use the foundation modules at the top of `rag` (config, errors, records, text) and nothing else of `rag`.
"""
