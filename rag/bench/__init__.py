"""`rag bench`: speed measured as ratios against the raw libraries (run), cold start (cold), per model tier
(tiers), and the report (report).

Beside the pipeline, not inside it: may use `rag.pipeline` and everything below it; nothing in the pipeline
imports it.
"""
