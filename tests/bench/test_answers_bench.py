"""The answers section of `rag bench`: its ratios, and the UI-against-CLI harness on the fake pipeline."""

import pytest

from rag.bench.answers import summarize
from rag.bench.frontends import Timed, bench_ui_against_cli


def row(why: bool, answer_s: float, first: float, floor: float, new: int) -> dict:
    return {"question": "q", "why": why, "answer_s": answer_s, "first_token_s": first, "floor_s": floor,
            "new_tokens": new}


def test_the_summary_compares_first_tokens_with_the_floor_and_why_questions_with_short_ones():
    rows = [row(False, 2.0, 1.0, 1.0, 100), row(False, 4.0, 3.0, 2.0, 120), row(True, 3.0, 1.1, 1.0, 130),
            row(True, 5.0, 2.6, 2.0, 150)]
    out = summarize("tier", rows)
    assert out["why_over_short"] == pytest.approx(4.0 / 3.0, abs=1e-3)
    assert out["first_token_over_floor"] == pytest.approx(1.2, abs=1e-3)  # median of 1.0, 1.5, 1.1, 1.3
    assert (out["new_tokens_p50"], out["answer_p50_s"]) == (125, 3.5)
    assert out["met"] == {"answer_p50": True, "answer_p95": True, "why_over_short": False,
                          "first_token_over_floor": True}


def test_timed_adds_up_the_seconds_spent_inside_a_call_and_an_iterator():
    calls = Timed(lambda x: x + 1)
    items = Timed(lambda n: iter(range(n)), iterate=True)
    assert calls(1) == 2 and list(items(3)) == [0, 1, 2]
    assert calls.seconds > 0 and items.seconds > 0


def test_the_ui_and_the_cli_answer_the_same_questions_and_the_ui_time_is_split(fake_pipeline):
    fake_pipeline.generator.replies += ["28 nations [1]"] * 8
    out = bench_ui_against_cli(fake_pipeline, ("How many nations signed the Bletchley Declaration?",
                                               "Who signed it?"), http=False)
    first, follow_up = out["rows"]
    assert not first["follow_up"] and follow_up["follow_up"]
    assert first["cli_s"] > 0 and first["total_s"] >= first["pipeline_s"] > 0 and first["updates"] >= 2
    assert first["save_s"] > 0 and first["gradio_postprocess_s"] > 0
    assert out["ui_over_cli_with_queue"] > 0 and isinstance(out["met"], bool)
