"""Measuring the pipeline: the eval (evaluate), its independent support judge (judge), and calibrating the
answer's confidence on the eval's tune half (calibrate).

Beside the pipeline, not inside it: may use `rag.pipeline` and everything below it; nothing in the pipeline
imports it.
"""
