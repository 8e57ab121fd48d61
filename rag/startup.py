"""What a long-running front end (`rag chat`, `rag serve`, the web UI) does as it starts: warm the pipeline in
the background and say what an answer costs on this machine with each installed tier."""

from __future__ import annotations

import sys


def start_warm(pipeline, out=None) -> None:
    """Warm `pipeline` in the background (the models, the fixed prefixes, the index) and print the costs."""
    from .answer.speed import startup_lines

    pipeline.warm_in_background()
    for line in startup_lines(pipeline.settings):
        print(line, file=out or sys.stderr, flush=True)
