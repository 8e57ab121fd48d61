"""This machine's speed per tier: measured in a few seconds, kept in models/speed.json, said at start-up."""

import pytest

from rag.answer import speed
from rag.answer.generate import LlamaGenerator
from rag.answer.models import read_speeds, record_speed
from rag.cli import main


def test_an_answers_cost_here_comes_from_the_recorded_speeds(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path))  # only the bundled smollm2 is installed there
    assert speed.cost_lines("smollm2-135m") == [
        "smollm2-135m (in use): speed here not measured yet (`rag models bench`, a few seconds)"]
    record_speed("smollm2-135m", {"prompt_tok_s": 100.0, "decode_tok_s": 40.0, "measured": "2026-12-06"}, tmp_path)
    # 110 new prompt tokens at 100/s, 8 reply tokens at 40/s, and 0.3 s of retrieval and context.
    assert speed.answer_seconds(read_speeds(tmp_path)["smollm2-135m"]) == pytest.approx(1.6)
    assert speed.cost_lines() == ["smollm2-135m: about 1.6 s an answer here (100 prompt / 40 decode tokens/s, "
                                  "2026-12-06)"]
    record_speed("smollm2-135m", {"prompt_tok_s": 20.0, "decode_tok_s": 10.0, "measured": "2026-12-06"}, tmp_path)
    assert speed.cost_lines()[0].endswith("(20 prompt / 10 decode tokens/s, 2026-12-06), over the 4 s budget")


def test_a_smaller_tier_is_offered_with_its_cost_in_answers_only_when_the_one_in_use_misses_the_budget(
        tmp_path, monkeypatch):
    import rag.answer.models as models

    monkeypatch.setattr(speed, "is_installed", lambda tier: True)
    monkeypatch.setattr(models, "is_installed", lambda tier: True)
    monkeypatch.setattr(speed, "read_speeds", lambda: figures)
    slow, fast = {"prompt_tok_s": 21.0, "decode_tok_s": 10.0}, {"prompt_tok_s": 60.0, "decode_tok_s": 30.0}
    figures = {"qwen2.5-coder-1.5b": slow, "qwen2.5-coder-0.5b": fast}
    offer = speed.smaller_tier_offer("qwen2.5-coder-1.5b")
    assert offer.startswith("qwen2.5-coder-0.5b would answer in about 2.4 s here")
    assert "refused 60% of unanswerable ones (72%)" in offer and "RAG_MODEL=qwen2.5-coder-0.5b" in offer
    figures["qwen2.5-coder-1.5b"] = fast  # within the budget: nothing is offered
    assert speed.smaller_tier_offer("qwen2.5-coder-1.5b") is None
    figures.update({"qwen2.5-coder-1.5b": slow, "qwen2.5-coder-0.5b": slow})  # both over: nothing either
    assert speed.smaller_tier_offer("qwen2.5-coder-1.5b") is None
    assert speed.smaller_tier_offer("qwen2.5-coder-0.5b") is None  # the smallest with a quality record


@pytest.mark.integration
def test_the_speed_is_measured_once_at_start_and_again_by_rag_models_bench(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path))
    gen = LlamaGenerator("smollm2-135m", n_ctx=512, n_threads=1)
    since = gen.asked
    gen.asked += 1  # a question was asked during the warm-up: it is not held up by a measurement
    assert speed.measure_at_start(gen, since) is None and read_speeds(tmp_path) == {}
    figures = speed.measure_at_start(gen, gen.asked)
    assert figures["prompt_tok_s"] > 0 and figures["decode_tok_s"] > 0 and gen.llm.n_tokens == 0
    assert read_speeds(tmp_path)["smollm2-135m"]["source"] == "measured at start-up"
    assert speed.measure_at_start(gen, gen.asked) is None  # measured already

    assert main(["models", "bench", "smollm2-135m"]) == 0
    assert capsys.readouterr().out.startswith("smollm2-135m: ")
    assert read_speeds(tmp_path)["smollm2-135m"]["source"] == "rag models bench"
