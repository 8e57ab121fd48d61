"""The short-answer policy without a model: finding an answer in the passages, scoring it, calibrating."""

import random

import pytest

from rag.answer.phrase import locate_phrase
from rag.answer.reader import Reader, has_expected_answer_type, verdict, wants_explanation
from rag.evaluation.calibrate import apply_policy, fit, leave_one_corpus_out, select_features
from rag.evaluation.evaluate import auroc, signal_table, summarize
from rag.records import Citation

TEXT = ("The museum, which opened in 1998, employs about 1,200 people. Its director, Ana Ruiz, said the "
        "“Bletchley Declaration” was not signed by Brazil.")


def passage(text=TEXT, pid=1, start=100):
    return Citation(id=pid, doc="d.txt", page=None, start=start, end=start + len(text), text=text)


@pytest.mark.parametrize("reply,shown", [
    ("about 1200 people", "about 1,200 people"),
    ("About 1,200 People.", "about 1,200 people"),
    ("the Bletchley Declaration", "Bletchley Declaration"),
    ('"Bletchley Declaration"', "Bletchley Declaration"),
    ("Ana  Ruiz", "Ana Ruiz"),
])
def test_a_copied_phrase_is_found_after_normalisation_and_shown_in_the_passages_words(reply, shown):
    found = locate_phrase(reply, [passage()])
    assert found and found.text == shown and not found.snapped
    assert TEXT[found.start - 100:found.end - 100] == shown


@pytest.mark.parametrize("reply,shown", [
    ("Bletchley Declarations", "Bletchley Declaration"),
    ("the museum's director Ana Ruiz", "director, Ana Ruiz"),
])
def test_a_near_miss_is_snapped_to_the_passages_own_words(reply, shown):
    found = locate_phrase(reply, [passage()])
    assert found and found.snapped and found.text == shown


@pytest.mark.parametrize("reply", ["about 1,300 people", "1999", "not opened in 1998", "Ana Gomez"])
def test_a_phrase_with_another_number_name_or_negation_is_never_snapped(reply):
    assert locate_phrase(reply, [passage()]) is None


def test_cited_passages_are_searched_first():
    first, second = passage("Ana Ruiz runs it.", 1, 0), passage("Ana Ruiz runs it.", 2, 500)
    assert locate_phrase("Ana Ruiz", [first, second], cited=(2,)).passage.id == 2


@pytest.mark.parametrize("question,expected", [
    ("Why did China propose the initiative?", True),
    ("How does the declaration describe the risks?", True),
    ("How many nations signed?", False),
    ("How long is the cure period?", False),
    ("Who signed it?", False),
])
def test_why_and_how_questions_get_sentence_answers(question, expected):
    assert wants_explanation(question) is expected


def test_the_badge_says_likely_uncertain_or_not_found():
    assert verdict(0.92, False) == "likely answer"
    assert verdict(0.4, False) == "uncertain: check the source"
    assert verdict(0.99, True) == "not found in the documents"


def test_a_missing_signal_moves_the_calibrated_score_neither_way():
    weights = {"bias": 0.3, "coef": {"p_abstain": -2.0, "coverage": 1.0}, "mean": {"p_abstain": 0.2, "coverage": 0.5},
               "scale": {"p_abstain": 0.1, "coverage": 0.2}, "threshold": 0.5}
    reader = Reader(lambda t: 1.0, 1.0, weights)
    at_mean = reader.confidence({"p_abstain": 0.2, "coverage": 0.5})
    assert reader.confidence({"p_abstain": None, "coverage": 0.5}) == pytest.approx(at_mean)
    assert reader.confidence({"p_abstain": 0.9, "coverage": 0.5}) < at_mean < reader.confidence(
        {"p_abstain": 0.0, "coverage": 0.5})


def test_answer_type_checks_numbers_dates_and_names():
    assert not has_expected_answer_type("How many nations signed?", "the nations")
    assert has_expected_answer_type("When was it signed?", "November 2023")
    assert not has_expected_answer_type("Who spoke?", "the spokesman")


# --- calibration on synthetic eval rows ----------------------------------------------------------
def synthetic_rows(n=400, seed=0, corpora=("a", "b", "c")):
    """Rows like the eval's: a signal that tells right from wrong (p_abstain), and pure noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answerable = rng.random() < 0.55
        right = answerable and rng.random() < 0.8
        p_abstain = min(1.0, max(0.0, rng.gauss(0.15 if right else 0.6, 0.15)))
        row = {"id": f"x{i}", "question": f"question {i}?", "answer": "an answer", "gold": "gold", "keywords": [],
               "corpus": corpora[i % len(corpora)], "split": "tune" if i % 2 else "report",
               "type": "factoid" if answerable else "unanswerable", "answerable": answerable,
               "candidate": "an answer", "passages": {"1": "It is an answer."}, "candidate_correct": right,
               "candidate_em": float(right),
               "candidate_f1": float(right), "confidence": 0.0,
               "candidate_final": {"sentences": 1, "supported": 1, "recalled": 1, "cites": 1, "precise": 1},
               "signals": {"p_abstain": p_abstain, "coverage": rng.random(), "retrieval": rng.random()},
               "gold_quotes": 0, "retrieved_quotes": 0, "rr": 0.0, "raw": "x", "seconds": 1.0,
               "raw_scores": {"sentences": 0, "supported": 0, "recalled": 0, "cites": 0, "precise": 0}}
        rows.append(row)
    return rows


def test_forward_selection_keeps_the_signal_that_predicts_and_drops_noise():
    rows = synthetic_rows()
    chosen = select_features([r for r in rows if r["split"] == "tune"])
    assert chosen[:1] == ("p_abstain",)
    assert "coverage" not in chosen and "retrieval" not in chosen


def test_the_threshold_keeps_false_refusals_within_ten_percent_on_the_tune_half():
    rows = synthetic_rows()
    weights = fit([r for r in rows if r["split"] == "tune"])
    tune = summarize(apply_policy([r for r in rows if r["split"] == "tune"], weights))
    assert tune["false_refusal_rate"]["value"] <= 0.10
    assert tune["refusal_recall"]["value"] > 0.5
    report = summarize(apply_policy([r for r in rows if r["split"] == "report"], weights))
    assert report["confidence_auroc"]["value"] > 0.8


def test_leave_one_corpus_out_scores_each_corpus_with_a_fit_made_without_it():
    rows = synthetic_rows()
    out = leave_one_corpus_out(rows, ("p_abstain",))
    assert set(out) == {"a", "b", "c"}
    assert all(0 <= m["refusal_recall"] <= 1 and m["confidence_auroc"] > 0.8 for m in out.values())


def test_auroc_and_the_signal_table():
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auroc([0.1, 0.5], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([1.0], [True]) is None
    table = signal_table(apply_policy(synthetic_rows(), fit(synthetic_rows()[1::2])))
    assert table["p_abstain"]["right"] < 0.2 and 0.35 < table["coverage"]["right"] < 0.65


def test_rag_calibrate_fits_several_reports_saves_the_tier_and_rescores_the_report_half(tmp_path, monkeypatch, capsys):
    import json

    from rag import cli
    from rag.evaluation import calibrate

    monkeypatch.setattr(calibrate, "CALIBRATION_FILE", tmp_path / "calibration.json")
    rows = synthetic_rows()
    paths = []
    for corpus in ("a", "b", "c"):
        path = tmp_path / f"{corpus}.json"
        path.write_text(json.dumps({"rows": [r for r in rows if r["corpus"] == corpus], "sets": [corpus],
                                    "tier": "fake-tier", "items": 0, "headline": "report", "model": "m",
                                    "embedder": "e", "commit": "c", "date": "d", "thresholds": {},
                                    "threshold_failures": [],
                                    "checker": {"judge": {"accuracy": 1, "kappa": 1, "n": 1},
                                                "judge_held_out": {"accuracy": 1, "kappa": 1, "n": 1},
                                                "verifier": {"accuracy": 1, "kappa": 1, "n": 1},
                                                "judge_accuracy_by_kind": {}}}))
        paths.append(str(path))
    assert cli.main(["calibrate", *paths]) == 0
    saved = json.loads((tmp_path / "calibration.json").read_text())["fake-tier"]
    assert list(saved["coef"])[:1] == ["p_abstain"] and saved["fitted_on"] == sum(r["split"] == "tune" for r in rows)
    report = json.loads((tmp_path / "a-calibrated.json").read_text())
    assert len(report["rows"]) == len(rows) and set(report["leave_one_out"]) == {"a", "b", "c"}
    assert report["metrics"]["confidence_auroc"]["value"] > 0.8
    assert "fitted on" in capsys.readouterr().out

    # --bias-only: the yes/no bias is fitted on the tune rows' first-step odds; the weights stay as saved.
    for r in [r for r in rows if r["split"] == "tune"][:4]:
        r.update(answerable=True, short_answers=["No"])
        r["signals"]["choices"] = {"Yes": 0.8, "No": 0.1, "NONE": 0.1}
    path = tmp_path / "yesno.json"
    path.write_text(json.dumps({**json.loads(open(paths[0]).read()), "rows": rows, "sets": ["a", "b", "c"]}))
    assert cli.main(["calibrate", str(path), "--bias-only"]) == 0
    kept = json.loads((tmp_path / "calibration.json").read_text())["fake-tier"]
    # "No" wins from a bias of log(8) = 2.08 on (the 2.10 step) to the last step, 5.0: the middle is 3.55.
    assert kept.pop("choice_bias") == {"No": 3.55} and kept == saved


def test_the_support_check_runs_only_when_the_calibration_weighs_it_or_every_signal_is_measured():
    weights = {"bias": 0.0, "coef": {"coverage": 1.0}, "mean": {"coverage": 0.5}, "scale": {"coverage": 0.2},
               "threshold": 0.0}
    calls = []

    def check(statement, backer):
        calls.append(statement)
        return 0.9

    for measure_all, expected in ((False, None), (True, 0.9)):
        reader = Reader(lambda t: 1.0, 1.0, weights, measure_all=measure_all)
        reading = reader.read("Who runs the museum?", "Ana Ruiz", [passage()], 0.5, {"p_abstain": 0.01}, check)
        assert reading.answer and reading.signals["p_support"] == expected
    assert len(calls) == 1
    assert Reader(lambda t: 1.0, 1.0, None).uses("p_support")
