"""The eval gate CI runs (rag/evaluation/gate.py): the report-half items recorded in eval/gate.json come out
as recorded with the real models, and the gate fails on readers that are worse in the ways that matter.

`make eval` runs every item; the gate runs the few whose outcome two reference runs (int8 and uint8
embedder weights: the AVX-512 and the AVX2-only CPU paths) agreed on, and fails when more of them flip
than the noise measured between those runs allows, in all or in one set.
"""

import json
import re

import pytest

from rag.cli import main
from rag.evaluation import evaluate, gate
from rag.evaluation.checker import kappas_below_their_floors
from rag.evaluation.evaluate import EVAL_DIR, decide, load_jsonl, select_items


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory, eval_index_root):
    """`rag eval --gate` with the real models, once for the module: its exit status and report."""
    out = tmp_path_factory.mktemp("gate")
    status = main(["eval", "--gate", "--index-root", str(eval_index_root), "--out", str(out)])
    return status, json.loads((out / "eval.json").read_text())


@pytest.mark.integration
@pytest.mark.slow
# 35 items with the 1.5b tier, the five eval indexes built first (pydocs's gate slice): 194 s on one core
# of the 2-core Xeon in a busy hour (`taskset -c 0`, 2026-12-07 17:20, before the yes/no bias replaced 6
# of the items; 2 min 32 s for the new ones with another run on the other core; the earlier 33 took 196 s in
# the same hour and 152 s in a quiet one), 2 min 52 s for the earlier items on one core of a 2-core AMD
# EPYC. The slower kind gives a process about a third of this core's prompt speed when two run, so about
# 10 minutes there with `make test`'s second process beside it: the limit is over twice that.
@pytest.mark.timeout(1500)
def test_every_gate_item_comes_out_as_recorded(gate_run):
    status, report = gate_run
    recorded = gate.load_gate()
    assert report["items"] == len(recorded["items"])
    assert {(r["corpus"], r["id"]) for r in report["rows"]} == {(i["set"], i["id"]) for i in recorded["items"]}
    assert report["threshold_failures"] == [], report["threshold_failures"]
    assert status == 0
    # The judge and the verifier are validated against every hand label on every run, and must agree with them.
    labels = len(load_jsonl(EVAL_DIR / "support_labels.jsonl"))
    assert report["checker"]["judge"]["n"] == report["checker"]["verifier"]["n"] == labels >= 150
    # The gate's rows are judged by the embedding judge; the model judge is checked where it judges (a full run).
    assert "judge_short" not in report["checker"]
    assert kappas_below_their_floors(report["checker"]) == [], report["checker"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(1500)  # the gate run may happen in its setup (see above)
def test_a_reader_that_never_abstains_fails_the_gate(gate_run):
    """The same replies, decided by a policy that shows every answer: the unanswerable items flip."""
    _, report = gate_run
    never = []
    for row in report["rows"]:
        row = decide(dict(row), True)
        if row["abstained"]:  # the model said NONE: a reader that never abstains says something, and it is wrong
            row.update(abstained=False, correct=False)
        never.append(row)
    failures = gate.check(never, gate.load_gate())
    assert failures and "flipped" in failures[0], failures


class FirstNameReader:
    """A weakened reader: whatever the question, the first capitalized word of the first passage."""

    name = "first-name-reader"

    def __init__(self):
        self.n_ctx = 8192
        self.last_scores = None

    def count_tokens(self, text):
        return len(text.split())

    def chat_overhead(self, messages):
        return 4 * len(messages)

    def stream(self, messages, max_tokens=128, stop_at_newline=False, abstain_word="", **_):
        passages = messages[-1]["content"]
        first = passages[passages.find("[1]") + 3:] if "[1]" in passages else passages
        names = re.findall(r"\b[A-Z][a-z]{3,}\b", first)
        yield names[0] if names else "NONE"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(1500)  # the gate run may happen in its setup (see above)
def test_a_reader_that_answers_with_the_first_passage_s_first_name_fails_the_gate(gate_run, eval_index_root,
                                                                               tmp_path, monkeypatch):
    from rag import cli
    from rag.pipeline import Pipeline

    made = cli._pipeline
    monkeypatch.setattr(cli, "_pipeline", lambda args: Pipeline(made(args).settings, generator=FirstNameReader()))
    status = main(["eval", "--gate", "--index-root", str(eval_index_root), "--out", str(tmp_path)])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert status == 1
    assert any("flipped" in f for f in report["threshold_failures"]), report["threshold_failures"]


def test_the_gate_tolerates_no_more_flips_than_a_ten_point_drop_in_correctness_makes():
    """A ten-point drop in correctness turns at least a tenth of the right items wrong: more flips than
    the gate allows, so the gate fails on it (and on a smaller share confined to one set)."""
    recorded = gate.load_gate()
    right = [i for i in recorded["items"] if i["expected"] == "right"]
    per_set = max(sum(i["set"] == s for i in right) for s in {i["set"] for i in right})
    assert recorded["tolerance"]["total"] < 0.10 * len(right)
    assert recorded["tolerance"]["per_set"] < 0.5 * per_set
    assert len({i["set"] for i in recorded["items"]}) == len(evaluate.open_sets())


def test_a_gate_is_recorded_from_items_every_reference_run_agreed_on():
    def row(corpus, n, answerable, abstained, correct, kind="factoid"):
        return {"corpus": corpus, "id": f"{corpus[0]}{n}", "answerable": answerable, "abstained": abstained,
                "correct": correct, "type": kind}

    a = [row("news", 1, True, False, True), row("news", 2, True, False, True, "date"),
         row("news", 3, True, False, False), row("news", 4, False, True, False, "unanswerable"),
         row("pydocs", 1, True, False, True), row("pydocs", 2, False, False, False, "unanswerable")]
    b = [dict(r) for r in a]
    b[1].update(abstained=True, correct=False)  # news n2 differs between the runs: noise, not a gate item
    recorded = gate.record([a, b], right=5, abstained=2)
    assert [(i["set"], i["id"], i["expected"]) for i in recorded["items"]] == [
        ("news", "n1", "right"), ("news", "n4", "abstained"), ("pydocs", "p1", "right")]
    assert recorded["noise"] == {"items": 6, "differ": 1, "rate": round(1 / 6, 4)}
    # A healthy run passes; one flip more than the tolerance fails, naming the items.
    assert gate.check(a, recorded) == []
    worse = [dict(r) for r in a]
    worse[0].update(correct=False)
    worse[3].update(abstained=False)
    assert recorded["tolerance"]["total"] == 1
    assert "news/n1 right->wrong" in gate.check(worse, recorded)[0]


def test_the_gate_spreads_its_picks_over_the_readers_paths_and_takes_the_cheapest_item_of_each():
    def row(n, kind, mode, seconds):
        return {"corpus": "news", "id": f"n{n}", "answerable": True, "abstained": False, "correct": True,
                "type": kind, "mode": mode, "seconds": seconds}

    a = [row(1, "factoid", "short", 9.0), row(2, "factoid", "short", 3.0), row(3, "why", "sentence", 8.0),
         row(4, "factoid", "short", 2.0), row(5, "yesno", "yes/no", 5.0), row(6, "why", "sentence", 7.0)]
    b = [dict(r, seconds=r["seconds"] + (6.0 if r["id"] == "n4" else 0.0)) for r in a]  # n4: 5 s on average
    # One item per path first (the paths in dataset order), each path's cheapest over both runs.
    assert [i["id"] for i in gate.record([a, b], right=3, abstained=0)["items"]] == ["n2", "n6", "n5"]
    assert [i["id"] for i in gate.record([a, b], right=5, abstained=0)["items"]] == ["n2", "n6", "n5", "n4", "n3"]


def test_a_pool_of_candidates_spreads_over_every_open_set_keeps_the_current_items_and_whole_corpora():
    current = {"items": [{"set": "news", "id": "q-kept", "type": "factoid", "expected": "right"}]}
    from rag.evaluation.gate_pool import pool

    candidates = pool(4, current)
    sets = {i["set"] for i in candidates["items"]}
    assert sets == set(evaluate.open_sets())
    assert sum(i["set"] == "pydocs" for i in candidates["items"]) == 4
    assert candidates["items"][-1] == current["items"][0] and candidates["documents"] == {}
    report = {i["id"] for i in load_jsonl(evaluate.EVAL_SETS["pydocs"][1]) if i.get("split", "report") == "report"}
    assert {i["id"] for i in candidates["items"] if i["set"] == "pydocs"} <= report


def test_a_slice_keeps_each_items_gold_documents_and_the_documents_of_its_top_hits():
    from types import SimpleNamespace

    hits = {"q1": ["a.txt", "b.txt", "a.txt"], "q2": ["c.txt"]}
    asked = []

    def search(question, k):
        asked.append(k)
        return [SimpleNamespace(chunk=SimpleNamespace(doc_id=d)) for d in hits[question][:k]]

    items = [{"question": "q1", "support": [{"doc": "gold.txt"}]}, {"question": "q2"}]
    assert gate.slice_documents(search, items, 2) == ["a.txt", "b.txt", "c.txt", "gold.txt"]
    assert asked == [2, 2]


def test_the_gate_indexes_only_its_slice_of_a_set_in_an_index_of_its_own(tmp_path, monkeypatch):
    from rag.evaluation import evaluate

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("kept.txt", "gone.txt"):
        (corpus / name).write_text("text", encoding="utf-8")
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text(json.dumps({"id": "x1", "question": "q?", "answerable": False, "keywords": [],
                                   "type": "unanswerable", "split": "report"}) + "\n", encoding="utf-8")
    monkeypatch.setattr(evaluate, "EVAL_SETS", {"big": (corpus, dataset)})
    monkeypatch.setattr(evaluate, "load_gate", lambda: {"items": [{"set": "big", "id": "x1"}],
                                                         "documents": {"big": ["kept.txt"]}})
    indexed = []

    class Stop(Exception):
        pass

    class Pipe:
        def index(self, roots, progress=False, exclude=frozenset()):
            indexed.append((self.settings.index_dir.name, set(exclude)))
            raise Stop

    from rag.config import Settings

    pipe = Pipe()
    pipe.settings = Settings()  # run_eval points it at each set's index
    args = SimpleArgs(gate=True, index_root=str(tmp_path / "root"))
    with pytest.raises(Stop):
        evaluate.run_eval(pipe, args)
    assert indexed == [("index-big-gate", {"gone.txt"})]


class SimpleArgs:
    def __init__(self, **kw):
        self.corpus = self.dataset = None
        self.set = None
        self.split = "report"
        self.per_set = None
        self.limit = None
        self.out = None
        self.__dict__.update(kw)


def test_a_subset_spreads_over_the_whole_split():
    items = [{"id": n, "split": "report" if n % 2 else "tune"} for n in range(40)]
    picked = select_items(items, "report", 5)
    assert [i["id"] for i in picked] == [1, 9, 17, 25, 33]
    assert select_items(items, "tune", None) == [i for i in items if i["split"] == "tune"]
