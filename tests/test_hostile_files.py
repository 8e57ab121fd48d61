"""Hostile files cost bounded time and memory: each is indexed or skipped next to a good file.

The pytest-timeout marks are generous on purpose: before these fixes each input took minutes to
hours (or aborted the run), so a hang fails the test without a tight wall-clock assertion.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, FakeEmbedder, FakeGenerator

from rag import chunk
from rag.chunk import chunk_document, split_sentences
from rag.config import Settings
from rag.ingest import read_document
from rag.pipeline import Pipeline

GOOD = "The Zorblax Treaty was signed in Zürich by 14 countries in 2031."
PYDOCS = ROOT / "eval" / "pydocs" / "corpus"

# --- the sentence splitter ------------------------------------------------------------------------
_OLD_ABBREVIATIONS = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e|No|Inc|Ltd|Co)|\b[A-Z])\.$")


def old_split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """The splitter as it was before it became linear: the reference its output must match."""
    spans, start = [], 0
    for match in chunk._SENTENCE_END.finditer(text):
        if _OLD_ABBREVIATIONS.search(text[start:match.start()]) and "\n" not in match.group():
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if b - trail > a + lead:
            out.append((offset + a + lead, offset + b - trail))
    return out


def chunk_bounds(doc) -> list[tuple[str, int, int, int | None]]:
    return [(c.id, c.start, c.end, c.page) for c in chunk_document(doc, 500, 100)]


@pytest.mark.parametrize("folder", [CORPUS, PYDOCS], ids=["corpus", "pydocs"])
def test_the_linear_splitter_keeps_every_sentence_and_chunk_of_the_bundled_corpora(folder, monkeypatch):
    files = sorted(folder.glob("*.txt"))
    assert len(files) >= 2
    for path in files:
        doc = read_document(path, path.name)
        assert split_sentences(doc.text, 7) == old_split_sentences(doc.text, 7), path.name
        new = chunk_bounds(doc)
        with monkeypatch.context() as m:
            m.setattr(chunk, "split_sentences", old_split_sentences)
            assert chunk_bounds(doc) == new, path.name


def test_the_linear_splitter_agrees_with_the_old_one_on_random_abbreviation_soup():
    pieces = ["A.", "Dr.", "Prof.", "xProf.", "e.g.", "i.e.", "U.S.", "Co.", "Inc.", "_A.", "aA.", "É.", "9.",
              "word", "Word", "é", "1", ".", "?", "!", '"', "”", ")", " ", "  ", "\n", "\n\n", "- "]
    rng = random.Random(21)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert split_sentences(text) == old_split_sentences(text), repr(text)


def fake_pipeline_over(folder: Path, tmp_path: Path, **settings) -> Pipeline:
    settings = Settings.load(index_dir=tmp_path / "index", min_relevance=0.05, min_coverage=0.3, **settings)
    return Pipeline(settings, embedder=FakeEmbedder(), generator=FakeGenerator())


def assert_good_file_answers(pipeline: Pipeline) -> None:
    """The good file is searchable and cited in an answer."""
    [hit, *_] = pipeline.search("Which countries signed the Zorblax Treaty in Zürich?")
    assert hit.chunk.doc_id == "good.txt" and hit.chunk.text == GOOD
    pipeline.generator.replies.append("The Zorblax Treaty was signed by 14 countries [1].")
    answer = pipeline.ask("How many countries signed the Zorblax Treaty?")
    assert "14 countries" in answer.text and [c.doc for c in answer.citations] == ["good.txt"]


@pytest.mark.timeout(120)
def test_a_megabyte_of_initials_is_chunked_in_linear_time_next_to_a_good_file(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    (folder / "initials.txt").write_text("A. " * 350_000, encoding="utf-8")  # about 2 hours before
    pipeline = fake_pipeline_over(folder, tmp_path)
    report = pipeline.index([folder])
    assert report.skipped == () and report.added == ("good.txt", "initials.txt")
    assert report.chunks > 2000
    assert_good_file_answers(pipeline)
