"""Comparing two documents with fakes: agree, differ and only-one points, each side cited to its own document."""

from __future__ import annotations

from conftest import FakeEmbedder, FakeGenerator

from rag.records import Document
from rag.whole.compare import CompareJob, about_passages
from rag.whole.source import Source, passages_of
from rag.whole.summarize import SummaryJob

OLD = "The licence allows copying. The licence was published in 1991. Warranty is disclaimed in full."
NEW = "The licence allows copying. The licence was published in 2007. It adds a patent grant to every user."


def source(name: str, text: str) -> Source:
    doc = Document(name, name, "0" * 64, text)
    return Source(doc, tuple(passages_of(doc)))


def run(about: str = "") -> tuple:
    gen = FakeGenerator("The licence allows copying [1]. The licence was published in 1991 [1]. "
                        "Warranty is disclaimed in full [1].",
                        "The licence allows copying [1]. The licence was published in 2007 [1]. "
                        "It adds a patent grant to every user [1].")
    jobs = [SummaryJob(source("v1.txt", OLD), gen), SummaryJob(source("v2.txt", NEW), gen)]
    return list(CompareJob(*jobs, FakeEmbedder().embed, about).run())[-1], gen


def test_points_are_sorted_into_agree_differ_and_only_one():
    comparison, _ = run()
    kinds = [(f.kind, f.a and f.a.text, f.b and f.b.text) for f in comparison.findings]
    assert kinds == [("agree", "The licence allows copying.", "The licence allows copying."),
                     ("differ", "The licence was published in 1991.", "The licence was published in 2007."),
                     ("only", "Warranty is disclaimed in full.", None),
                     ("only", None, "It adds a patent grant to every user.")]


def test_each_side_is_cited_to_its_own_document():
    comparison, _ = run()
    for f in comparison.findings:
        for side, doc, text in ((f.a, "v1.txt", OLD), (f.b, "v2.txt", NEW)):
            if side is not None:
                c = comparison.citations[comparison.marker(side) - 1]
                assert c.doc == side.doc == doc and text[side.span[0]:side.span[1]] == side.text
                assert c.start <= side.span[0] < side.span[1] <= c.end
    assert comparison.to_dict()["findings"][1]["b"] == {"doc": "v2.txt", "text": "The licence was published in 2007.",
                                                        "citation": comparison.marker(comparison.findings[1].b)}


def test_about_keeps_the_passages_that_speak_to_the_topic_in_document_order():
    text = " ".join(f"Section {i} covers topic number {i} in plain words." + " Filler words here." * 30
                    for i in range(12))
    src = source("long.txt", text)
    assert len(src.passages) > 8
    kept = about_passages(src, "topic number 7", lambda q, texts: [float("number 7" in t) for t in texts])
    assert len(kept) == 8 and [p.start for p in kept] == sorted(p.start for p in kept)
    assert any("topic number 7" in p.text for p in kept)


def test_compare_of_a_document_with_itself_or_an_unknown_one_is_a_one_line_error(fake_pipeline, capsys, monkeypatch):
    from rag.cli import main

    monkeypatch.setenv("RAG_INDEX_DIR", str(fake_pipeline.settings.index_dir))
    name = "xi-global-ai-collaboration.txt"
    assert main(["compare", name, name]) == 2
    assert "two different documents" in capsys.readouterr().err
    assert main(["compare", name, "nope.txt"]) == 2
    assert capsys.readouterr().err.startswith("rag: error: no indexed document 'nope.txt'")


def test_a_sentence_of_the_other_document_is_the_counterpart_of_one_point_at_most():
    from rag.whole.compare import Matcher, match_points, sentences_of
    from rag.whole.summarize import Point

    other = Matcher(sentences_of(source("v1.txt", "The licence allows copying.")), FakeEmbedder().embed)
    mine = source("v2.txt", "The licence allows copying by anyone. The licence allows copying for free.")
    passage = mine.passages[0]
    points = [Point("The licence allows copying by anyone.", passage, (0, 37)),
              Point("The licence allows copying for free.", passage, (38, 74))]
    findings = match_points(points, other, 0.55, first=False)
    assert [f.kind for f in findings] == ["agree", "only"] and findings[1].a is None
