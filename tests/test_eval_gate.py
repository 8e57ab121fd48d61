"""CI runs the whole eval with the real models and fails when a metric falls below eval/thresholds.json."""

import json

import pytest

from rag.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_eval_meets_every_checked_in_threshold(tmp_path, capsys):
    status = main(["eval", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "eval.json").read_text())
    assert (tmp_path / "eval.md").read_text().startswith("# Eval report")
    assert report["items"] >= 60
    assert report["threshold_failures"] == [], report["threshold_failures"]
    assert status == 0
    # The judge is validated against the hand labels on every run.
    assert report["checker"]["judge"]["n"] >= 150


def test_the_eval_gate_fails_when_a_threshold_is_missed(tmp_path, monkeypatch):
    from rag import evaluate

    strict = {"answer_correctness": {"min": 1.01}}
    monkeypatch.setattr(evaluate, "load_thresholds", lambda: strict)
    assert main(["eval", "--limit", "2", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["threshold_failures"] and "answer_correctness" in report["threshold_failures"][0]
