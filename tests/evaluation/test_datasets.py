"""The eval datasets themselves: exact quotes, unique ids, and a sealed split that no other split reaches."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.errors import BadInput
from rag.evaluation import evaluate
from rag.evaluation.evaluate import EVAL_SETS, corpus_text, gold_spans, load_set, select_items

# scans' quotes are read by OCR from a PDF: tests/evaluation/test_scans_set.py checks them with the real reader.
READ_HERE = [name for name in EVAL_SETS if name != "scans"]


def all_items() -> list[tuple[str, dict]]:
    return [(name, item) for name, (_, dataset) in EVAL_SETS.items() for item in load_set(dataset)]


@pytest.mark.parametrize("name", READ_HERE)
def test_every_support_and_distractor_quote_stands_word_for_word_in_its_document(name):
    corpus, dataset = EVAL_SETS[name]
    items = load_set(dataset)
    # gold_spans raises BadInput naming the item whose quote its document does not hold.
    spans = {item["id"]: gold_spans(item, corpus) for item in items}
    assert all(spans[i["id"]] for i in items if i["answerable"]), "an answerable item without a quote"
    for item in items:
        if "distractor" in item:
            d = item["distractor"]
            assert d["quote"] in corpus_text(corpus / d["doc"]), item["id"]


def test_gold_spans_names_the_item_whose_quote_is_not_in_its_document():
    corpus, _ = EVAL_SETS["minutes"]
    item = {"id": "x1", "support": [{"doc": "2025-01-14-full-council.md", "quote": "the precept was abolished"}]}
    with pytest.raises(BadInput, match="x1: quote not found"):
        gold_spans(item, corpus)


def test_item_ids_are_unique_across_every_set_and_split():
    ids = [item["id"] for _, item in all_items()]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_item_is_in_a_known_split_and_refusals_carry_no_answer():
    for name, item in all_items():
        assert item.get("split", "report") in {"tune", "report", "sealed"}, (name, item["id"])
        if not item["answerable"]:
            assert item["keywords"] == item["short_answers"] == item["support"] == [], item["id"]


def test_the_sealed_split_has_150_items_over_two_corpora_one_of_them_minutes():
    sealed = [(name, item) for name, item in all_items() if item["split"] == "sealed"]
    per_set = {name: sum(1 for n, _ in sealed if n == name) for name in EVAL_SETS}
    assert len(sealed) >= 150
    assert per_set["minutes"] >= 100 and sum(1 for n in per_set.values() if n >= 60) >= 2, per_set
    # The minutes set is sealed whole: it was written for that split.
    assert {item["split"] for item in load_set(EVAL_SETS["minutes"][1])} == {"sealed"}


@pytest.mark.parametrize("split", ["tune", "report", "all"])
def test_no_sealed_item_is_selected_by_tune_report_or_all(split):
    for name, (_, dataset) in EVAL_SETS.items():
        items = load_set(dataset)
        chosen = select_items(items, split, None)
        assert all(item["split"] != "sealed" for item in chosen), name
        assert all(item["split"] != "sealed" for item in select_items(items, split, 5)), name


def test_all_means_tune_and_report_and_sealed_only_the_sealed_items():
    items = [{"id": n, "split": split} for n, split in enumerate(["tune", "report", "sealed", "tune", "sealed"])]
    assert [i["id"] for i in select_items(items, "all", None)] == [0, 1, 3]
    assert [i["id"] for i in select_items(items, "sealed", None)] == [2, 4]
    assert [i["id"] for i in select_items(items, "sealed", 1)] == [2]


class _Settings:
    def replace(self, **_):
        return self


def _run(split: str, tmp_path: Path, monkeypatch) -> dict[str, list[str]]:
    """Which item ids `rag eval --split SPLIT` hands to the evaluator, per set (no model runs)."""
    seen: dict[str, list[str]] = {}
    monkeypatch.setattr(evaluate, "evaluate", lambda p, items, corpus, name, **_: seen.update(
        {name: [i["id"] for i in items]}) or [])
    pipeline = SimpleNamespace(settings=_Settings(), index=lambda roots, progress=False: None)
    args = SimpleNamespace(dataset=None, corpus=None, set=None, split=split, per_set=None, limit=None,
                           out=tmp_path, json=False, no_gate=False)
    with pytest.raises(BadInput):  # the stub evaluates nothing, so no rows come back
        evaluate.run_eval(pipeline, args)
    return seen


def test_rag_eval_split_sealed_runs_every_sealed_item_and_nothing_else(tmp_path, monkeypatch):
    seen = _run("sealed", tmp_path, monkeypatch)
    wanted = {name: [i["id"] for i in load_set(dataset) if i["split"] == "sealed"]
              for name, (_, dataset) in EVAL_SETS.items()}
    assert seen == {name: ids for name, ids in wanted.items() if ids}
    assert set(seen) >= {"minutes", "pydocs"}


@pytest.mark.parametrize("split", ["all", "report", "tune"])
def test_rag_eval_without_split_sealed_never_runs_a_sealed_item_or_the_minutes_set(split, tmp_path, monkeypatch):
    seen = _run(split, tmp_path, monkeypatch)
    sealed = {i["id"] for _, (_, d) in EVAL_SETS.items() for i in load_set(d) if i["split"] == "sealed"}
    assert "minutes" not in seen and {"news", "pydocs", "licenses"} <= set(seen)
    assert not sealed & {i for ids in seen.values() for i in ids}


def test_the_sets_a_choice_is_measured_on_leave_the_sealed_minutes_out():
    from rag.evaluation.evaluate import open_sets

    assert list(open_sets()) == [name for name in EVAL_SETS if name != "minutes"]
