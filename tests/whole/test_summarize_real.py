"""One real summary: the default model over a short e-book of the eval corpora, every shown sentence verified."""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import ROOT

from rag.answer.cite import verify_sentence
from rag.config import Settings
from rag.pipeline import Pipeline
from rag.whole.summarize import Progress, Summary

pytestmark = pytest.mark.integration
BOOK = ROOT / "eval" / "formats" / "corpus" / "water-history.epub"


def test_a_real_summary_shows_only_verified_cited_sentences_and_a_second_one_comes_from_the_cache(
        tmp_path, real_embedder, real_generator):
    (tmp_path / "books").mkdir()
    shutil.copy(BOOK, tmp_path / "books")
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), real_embedder, real_generator)
    pipeline.index([tmp_path / "books"])
    text = pipeline.source(BOOK.name).document.text
    events = list(pipeline.summarize(BOOK.name, "short").run())
    summary = events[-1]
    assert isinstance(summary, Summary) and summary.complete and summary.points
    assert summary.stats["sentences_written"] >= len(summary.points)
    for point in summary.points:
        passage = point.passage
        assert text[passage.start:passage.end] == passage.text
        threshold = pipeline.settings.support_threshold
        assert point.text in text or verify_sentence(point.text, [passage.text], threshold)
    assert any("1866" in p.text or "1852" in p.text or "Brisk" in p.text for p in summary.points)
    began = time.perf_counter()
    again = [e for e in pipeline.summarize(BOOK.name, "short").run() if isinstance(e, Summary)][0]
    steps = sum(isinstance(e, Progress) for e in events)
    assert time.perf_counter() - began < 5 and again.stats["steps_cached"] == steps >= 1
    assert again.text == summary.text
