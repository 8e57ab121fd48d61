"""One real summary: the default model choosing among the sentences of the start of a bundled article."""

from __future__ import annotations

import time

import pytest
from conftest import CORPUS

from rag.config import Settings
from rag.pipeline import Pipeline
from rag.whole.summarize import Progress, Summary

pytestmark = pytest.mark.integration
# About 260 tokens, 9 sentences: one part of more sentences than a short summary holds (8), so the model
# chooses once, and little to read.
ARTICLE = (CORPUS / "global-backing-for-china-ai-governance.txt").read_text(encoding="utf-8")[:1300]


def test_a_real_summary_shows_only_the_documents_own_cited_sentences_and_a_second_one_comes_from_the_cache(
        tmp_path, real_embedder, real_generator):
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "article.txt").write_text(ARTICLE, encoding="utf-8")
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), real_embedder, real_generator)
    pipeline.index([tmp_path / "news"])
    text = pipeline.source("article.txt").document.text
    job = pipeline.summarize("article.txt", "short")
    assert len(job.parts) == 1 and len([s for s in job.sentences[0] if s.number]) > 8
    events = list(job.run())
    summary = events[-1]
    assert isinstance(summary, Summary) and summary.complete and len(job.model_seconds) == 1
    assert len(summary.points) == 8 == len({p.span for p in summary.points})  # 8 distinct sentences chosen
    assert summary.stats["sentences_chosen"] == summary.stats["verified"] == 8
    for point in summary.points:
        passage = point.passage
        assert text[passage.start:passage.end] == passage.text
        assert passage.start <= point.span[0] < point.span[1] <= passage.end
        assert " ".join(text[slice(*point.span)].split()) == point.text  # the document's own sentence
    assert [p.span for p in summary.points] == sorted(p.span for p in summary.points)
    began = time.perf_counter()
    again = [e for e in pipeline.summarize("article.txt", "short").run() if isinstance(e, Summary)][0]
    steps = sum(isinstance(e, Progress) for e in events)
    assert time.perf_counter() - began < 5 and again.stats["steps_cached"] == steps == 1
    assert again.text == summary.text
