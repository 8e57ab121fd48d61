"""The context-recall measures (rag/evaluation/context_recall.py), with values worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

from rag.evaluation.context_recall import holds, overlaps, summary, twins


def test_a_gold_answer_holds_only_when_its_words_stand_next_to_each_other_in_order():
    text = "The Bletchley Declaration, a pact signed by 28 nations [2], was agreed in November."
    assert holds(text, ["28 nations"])
    assert holds(text, ["the Bletchley declaration"])  # case and articles as rag eval compares answers
    assert not holds(text, ["nations 28"])  # out of order
    assert not holds("signed by 28 of the nations", ["28 nations"])  # not next to each other
    assert holds("signed by 28 of the nations", ["twenty", "28"])  # any one gold is enough
    assert not holds(text, []) and not holds(text, ["the"])  # no words to find


def test_a_quote_overlaps_a_window_of_its_own_document_only():
    windows = [SimpleNamespace(doc="a.txt", start=100, end=200), SimpleNamespace(doc="b.txt", start=0, end=50)]
    assert overlaps(("a.txt", 190, 260), windows)
    assert not overlaps(("a.txt", 200, 260), windows)  # ends touch: no character shared
    assert not overlaps(("c.txt", 0, 50), windows)


def row(id, recall, chunks, windows, quotes, twin_of=None):
    return {"id": id, "twin_of": twin_of, "recall": recall, "chunks_hold": chunks, "windows_hold": windows,
            "window_quotes": quotes, "chunk_chars": 1000, "window_chars": 400}


def test_the_summary_and_the_twins_are_the_means_worked_out_by_hand():
    rows = [row("q1", 1.0, True, True, 1.0), row("q2", 0.5, True, False, 0.5),
            row("t1", 0.0, False, False, 0.0, twin_of="q1"), row("t2", 1.0, True, True, 1.0, twin_of="q2")]
    s = summary(rows)
    assert s["items"] == 4
    assert s["recall@k"] == 0.625  # (1 + 0.5 + 0 + 1) / 4
    assert s["context_recall_chunks"] == 0.75 and s["context_recall_windows"] == 0.5
    assert s["quote_recall_windows"] == 0.625
    t = twins(rows)
    assert t["pairs"] == 2
    assert t["recall@k_original"] == 0.75 and t["recall@k_twin"] == 0.5
    assert t["windows_hold_original"] == 0.5 and t["windows_hold_twin"] == 0.5
    assert t["twin_lost"] == ["t1"] and t["twin_gained"] == ["t2"]
