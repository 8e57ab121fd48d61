"""The short-answer support labels (eval/short_support_labels.jsonl) that the judge's short-answer path is
checked against: each passage is copied exactly from its corpus document, and the file covers every kind of
label with both verdicts."""

from __future__ import annotations

from collections import Counter

import pytest

from rag.evaluation.evaluate import EVAL_DIR, EVAL_SETS, load_jsonl

LABELS = load_jsonl(EVAL_DIR / "short_support_labels.jsonl")
TEXT_SETS = ("news", "pydocs", "licenses")
# Every kind but "yesno" fixes the verdict: a yes/no answer is supported when its passage decides it that way.
VERDICT = {"right": True, "paraphrase-right": True, "wrong-span": False, "unrelated": False, "partial": False,
           "negation": False}
KINDS = {*VERDICT, "yesno"}


def corpus_of(doc: str) -> str:
    """The one text set whose corpus folder holds `doc`."""
    [name] = [name for name in TEXT_SETS if (EVAL_SETS[name][0] / doc).is_file()]
    return name


def flat(text: str) -> str:
    return " ".join(text.lower().split())


def test_the_file_has_at_least_150_labels_with_both_verdicts_and_every_kind():
    assert len(LABELS) >= 150
    verdicts = Counter(label["supported"] for label in LABELS)
    assert 0.35 <= verdicts[True] / len(LABELS) <= 0.65, verdicts
    assert set(Counter(label["kind"] for label in LABELS)) == KINDS
    assert {label["supported"] for label in LABELS if label["kind"] == "yesno"} == {True, False}


def test_every_label_has_the_six_fields_and_a_short_answer():
    for label in LABELS:
        assert set(label) == {"question", "answer", "passage", "doc", "supported", "kind"}, label
        assert isinstance(label["supported"], bool) and label["kind"] in KINDS, label
        assert 1 <= len(label["answer"].split()) <= 8, label["answer"]
        if label["kind"] == "yesno":
            assert label["answer"] in ("Yes", "No"), label
        else:
            assert label["supported"] is VERDICT[label["kind"]], label


def test_every_passage_is_an_exact_substring_of_its_document():
    for label in LABELS:
        corpus = EVAL_SETS[corpus_of(label["doc"])][0]
        assert label["passage"] in (corpus / label["doc"]).read_text(encoding="utf-8"), label["question"]


def test_labels_spread_over_the_news_pydocs_and_licenses_corpora():
    per_corpus = Counter(corpus_of(label["doc"]) for label in LABELS)
    assert set(per_corpus) == set(TEXT_SETS) and min(per_corpus.values()) >= 30, per_corpus


@pytest.mark.parametrize("kind", ["right", "wrong-span"])
def test_right_and_wrong_span_answers_are_copied_from_their_passage(kind):
    for label in (label for label in LABELS if label["kind"] == kind):
        assert flat(label["answer"]) in flat(label["passage"]), label


def test_unrelated_answers_are_not_in_their_passage():
    for label in (label for label in LABELS if label["kind"] == "unrelated"):
        assert flat(label["answer"]) not in flat(label["passage"]), label
