"""The eval sets' yes/no items and paraphrased twins are well formed: every set has yes/no questions with
both answers in both halves, each quoting the sentence that decides it, and each twin asks its original's
question in words the supporting text does not use."""

from __future__ import annotations

from collections import Counter

import pytest

from rag.evaluation.evaluate import EVAL_SETS, gold_spans, load_jsonl
from rag.text import content_terms

TEXT_SETS = ("news", "pydocs", "licenses")
# The fewest answerable yes/no items per set: the text sets are larger than the scans and formats sets.
MIN_YESNO = {"news": 12, "pydocs": 12, "licenses": 12, "scans": 4, "formats": 4}


def items_of(name: str) -> list[dict]:
    return load_jsonl(EVAL_SETS[name][1])


@pytest.mark.parametrize("name", sorted(MIN_YESNO))
def test_every_set_has_yes_and_no_answers_in_both_halves_and_unanswerable_yes_no_questions(name):
    yesno = [item for item in items_of(name) if item["type"] == "yesno"]
    answers = Counter((item["short_answers"][0], item["split"]) for item in yesno if item["answerable"])
    assert set(answers) == {("Yes", "tune"), ("Yes", "report"), ("No", "tune"), ("No", "report")}, answers
    assert sum(answers.values()) >= MIN_YESNO[name]
    yes = answers["Yes", "tune"] + answers["Yes", "report"]
    assert abs(2 * yes - sum(answers.values())) <= 2  # about as many Yes as No
    assert any(not item["answerable"] for item in yesno)


@pytest.mark.parametrize("name", sorted(MIN_YESNO))
def test_a_yes_no_item_answers_yes_or_no_with_one_deciding_quote(name):
    for item in (item for item in items_of(name) if item["type"] == "yesno"):
        if not item["answerable"]:
            assert item["short_answers"] == item["keywords"] == item["support"] == [], item["id"]
            continue
        [word] = item["short_answers"]
        assert word in ("Yes", "No") and item["keywords"] == [word.lower()], item["id"]
        assert item["answer"].startswith(word + ","), item["id"]
        assert len(item["support"]) == 1 and item["support"][0]["quote"], item["id"]


@pytest.mark.parametrize("name", [*TEXT_SETS, "formats"])
def test_every_yes_no_and_twin_quote_lies_in_its_document(name):
    corpus = EVAL_SETS[name][0]
    checked = [item for item in items_of(name) if item["type"] == "yesno" or "twin_of" in item]
    # gold_spans raises BadInput naming the item whose quote its document does not hold.
    spans = [span for item in checked for span in gold_spans(item, corpus)]
    assert len(spans) == sum(item["answerable"] for item in checked) >= MIN_YESNO[name]


@pytest.mark.parametrize("name", TEXT_SETS)
def test_each_twin_keeps_its_originals_answer_and_split_in_other_words(name):
    items = items_of(name)
    by_id = {item["id"]: item for item in items}
    twins = [item for item in items if "twin_of" in item]
    assert len(twins) >= 10 and len({t["twin_of"] for t in twins}) == len(twins)
    for twin in twins:
        original = by_id[twin["twin_of"]]
        assert twin["type"] == "paraphrase" and original["answerable"] and original["type"] != "paraphrase"
        for field in ("answer", "keywords", "support", "short_answers", "split"):
            assert twin[field] == original[field], (twin["id"], field)
        quote = set(content_terms(" ".join(s["quote"] for s in original["support"])))
        shared = len(set(content_terms(twin["question"])) & quote)
        assert shared == 0 or shared < len(set(content_terms(original["question"])) & quote), twin["id"]


@pytest.mark.parametrize("name", sorted(MIN_YESNO))
def test_ids_are_unique(name):
    ids = [item["id"] for item in items_of(name)]
    assert len(ids) == len(set(ids))
