"""Each answer mode's fixed prefix (system prompt, examples) is evaluated once and then restored from its
kept KV state, never evaluated again; counted in tokens on the real llama.cpp (the fast SmolLM2 tier)."""

import pytest
from conftest import CORPUS

from rag.answer.generate import LlamaGenerator
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration

WHY = "Why did China propose the Global AI Governance Initiative?"
SHORT = "How many nations signed the Bletchley Declaration?"
WHY_AGAIN = "Why does Xi stress cooperation over confrontation?"


def smol(store: bool = False):
    """The fast tier; without its disk store unless asked, so each counts its own evaluations from cold."""
    gen = LlamaGenerator("smollm2-135m", n_ctx=2048, n_threads=2)
    if not store:
        gen.store = None
    return gen


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, real_embedder):
    pipeline = Pipeline(Settings.load(index_dir=tmp_path_factory.mktemp("prefix") / "index", min_relevance=0.0),
                        embedder=real_embedder, generator=smol())
    pipeline.index([CORPUS])
    return pipeline


def evaluated(pipeline, question):
    answer = pipeline.ask(question)
    return answer, answer.receipt["prompt_evaluated"], answer.receipt["prompt_cached"]


def test_a_why_question_after_a_short_one_evaluates_none_of_the_explanation_prefix(pipeline):
    gen = pipeline.generator
    explanation = len(gen.encode_prefix(pipeline.fixed_messages("sentence")))
    short = len(gen.encode_prefix(pipeline.fixed_messages("short")))
    assert explanation > 150 and short > 30  # the system prompt and two example turns; the short prompt
    evaluated(pipeline, WHY)
    _, _, cached = evaluated(pipeline, SHORT)
    assert cached < short  # the first short question evaluates its mode's prompt, and keeps it
    answer, new, cached = evaluated(pipeline, WHY_AGAIN)
    # The context held the short prompt; the explanation prefix came back from its kept state.
    assert cached >= explanation
    messages = pipeline.messages(list(answer.passages), WHY_AGAIN, "sentence")
    assert new + cached == len(gen.encode(messages))


def test_a_restored_prefix_gives_the_same_answer_as_evaluating_it_afresh(pipeline):
    evaluated(pipeline, WHY)
    evaluated(pipeline, SHORT)
    restored, _, cached = evaluated(pipeline, WHY_AGAIN)
    assert cached > 0
    fresh_pipeline = Pipeline(pipeline.settings, embedder=pipeline.embedder, generator=smol())
    fresh, fresh_new, fresh_cached = evaluated(fresh_pipeline, WHY_AGAIN)
    assert fresh_cached == 0
    assert restored.raw == fresh.raw and restored.text == fresh.text


def test_warming_up_keeps_every_modes_prefix_so_the_first_question_evaluates_only_its_own_part(
        tmp_path, real_embedder):
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index", min_relevance=0.0),
                        embedder=real_embedder, generator=smol())
    pipeline.index([CORPUS])
    pipeline.warm()
    gen = pipeline.generator
    assert len(gen.prefixes) == 3
    _, new, cached = evaluated(pipeline, SHORT)
    assert cached >= len(gen.encode_prefix(pipeline.fixed_messages("short")))
    assert gen.remember(pipeline.fixed_messages("short")) == 0  # kept already: nothing evaluated


def test_a_background_warm_up_keeps_the_prefix_in_steps_and_stops_once_a_question_is_asked(pipeline):
    warming = Pipeline(pipeline.settings, embedder=pipeline.embedder, generator=smol())
    gen = warming.generator
    short = warming.fixed_messages("short")
    since = gen.asked
    gen.asked += 1  # a question came first
    assert gen.remember(short, since) == 0 and not gen.prefixes
    assert gen.remember(short, gen.asked) == len(gen.encode_prefix(short))
    assert len(gen.prefixes) == 1
    answer, _, cached = evaluated(warming, SHORT)
    assert cached >= len(gen.encode_prefix(short))
    # Evaluated in steps, the prefix gives the very answer it gives evaluated at once.
    assert answer.raw == pipeline.ask(SHORT).raw


def test_the_rewrite_prefix_is_kept_and_the_statement_check_evaluates_only_its_own_turn(pipeline):
    checking = Pipeline(pipeline.settings.replace(rewrite_with_model=True, measure_all_signals=True),
                        embedder=pipeline.embedder, generator=smol())
    gen = checking.generator
    history = [{"role": "user", "content": SHORT}, {"role": "assistant", "content": "28 nations"}]
    instruction = len(gen.encode_prefix(checking.rewrite_messages([], "")[:1]))
    checking.rewrite_follow_up("Who signed it?", history)
    assert gen.last_cached < instruction  # the first rewrite evaluates the instruction, and keeps it
    answer = checking.ask(SHORT)  # another mode's prompt in the context meanwhile
    check = answer.receipt["check_evaluated"]
    # The check turn is "Statement: The answer to "<question>" is: <answer> / Does passage [n] say this?".
    turn = gen.count_tokens(f'Statement: The answer to "{SHORT}" is: {answer.raw} Does passage [1] say this? '
                            "Reply yes or no.")
    assert 0 < check <= turn + gen.count_tokens(answer.raw) + 12 < answer.receipt["prompt_tokens"]
    checking.rewrite_follow_up("When was it signed?", history)
    assert gen.last_cached >= instruction


def test_a_new_process_reads_each_prefix_from_disk_and_answers_as_if_it_had_evaluated_it(pipeline, tmp_path,
                                                                                          monkeypatch):
    """The states a warm-up keeps are written to the cache folder; the next generator (a new `rag ask`,
    the UI after a restart) reads them instead of evaluating, and gives the very answer of a cold one."""
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    first = Pipeline(pipeline.settings, embedder=pipeline.embedder, generator=smol(store=True))
    first.warm()
    prefixes = [first.generator.encode_prefix(m) for m in first.fixed_prefixes()]
    files = [first.generator.store.file(tuple(t)) for t in prefixes]
    assert all(f.exists() for f in files) and sorted((tmp_path / "cache" / "prefixes").glob("*.kv")) == sorted(files)

    second = Pipeline(pipeline.settings, embedder=pipeline.embedder, generator=smol(store=True))
    assert [second.generator.remember(m) for m in second.fixed_prefixes()] == [0, 0, 0]
    answer, _, cached = evaluated(second, WHY_AGAIN)
    assert cached >= len(second.generator.encode_prefix(second.fixed_messages("sentence")))
    cold, _, cold_cached = evaluated(Pipeline(pipeline.settings, embedder=pipeline.embedder, generator=smol()),
                                     WHY_AGAIN)
    assert cold_cached == 0 and answer.raw == cold.raw and answer.text == cold.text

    # A torn file is never handed to llama.cpp: the prefix is evaluated again and the file written whole.
    files[0].write_bytes(files[0].read_bytes()[:-4096])
    third = smol(store=True)
    assert third.remember(first.fixed_prefixes()[0]) == len(prefixes[0])
    assert smol(store=True).remember(first.fixed_prefixes()[0]) == 0
