"""One real summary: the default model over a bundled news article, every shown sentence verified."""

from __future__ import annotations

import time

import pytest
from conftest import CORPUS

from rag.answer.cite import verify_sentence
from rag.whole.summarize import Progress, Summary

pytestmark = pytest.mark.integration
DOC = "global-backing-for-china-ai-governance.txt"


def test_a_real_summary_shows_only_verified_cited_sentences_and_a_second_one_comes_from_the_cache(real_pipeline):
    text = (CORPUS / DOC).read_text(encoding="utf-8")
    job = real_pipeline.summarize(DOC, "short")
    events = list(job.run())
    summary = events[-1]
    assert isinstance(summary, Summary) and summary.complete and summary.points
    assert summary.stats["sentences_written"] >= len(summary.points)
    for point in summary.points:
        passage = point.passage
        assert text[passage.start:passage.end] == passage.text
        threshold = real_pipeline.settings.support_threshold
        assert point.text in text or verify_sentence(point.text, [passage.text], threshold)
    began = time.perf_counter()
    again = [e for e in real_pipeline.summarize(DOC, "short").run() if isinstance(e, Summary)][0]
    steps = sum(isinstance(e, Progress) for e in events)
    assert time.perf_counter() - began < 5 and again.stats["steps_cached"] == steps >= 2
    assert again.text == summary.text
