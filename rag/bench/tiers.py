"""`rag bench`, per model tier: generation through the pipeline against raw llama-cpp-python on the same
messages, and the thread count and batch size prompt processing runs fastest with on this machine."""

from __future__ import annotations

import statistics
import time

from ..config import Settings
from ..errors import RagError


def installed_tiers(limit: int | None = None) -> list[str]:
    """The names of the installed tiers, smallest first; the first `limit` of them."""
    from ..answer.models import TIERS, is_installed

    return [t.name for t in sorted(TIERS, key=lambda t: t.size) if is_installed(t)][:limit]


class RecordingGenerator:
    """The pipeline's real generator, untouched, keeping the messages it was last given and when."""

    def __init__(self, generator):
        self.generator = generator
        self.messages: list[dict] = []
        self.called_at = 0.0

    def __getattr__(self, name):
        return getattr(self.generator, name)

    def stream(self, messages: list[dict], max_tokens: int = 128, **options):
        self.messages = messages
        self.called_at = time.perf_counter()
        return self.generator.stream(messages, max_tokens, **options)  # the real iterator: no layer per token


def raw_stream(llm, messages: list[dict], settings: Settings) -> tuple[float, list[float], int]:
    """Raw llama-cpp-python on `messages` from an empty context: (start, token times, prompt tokens)."""
    llm.reset()  # no prompt cache: the raw side processes the whole prompt, as the pipeline did
    started, stamps = time.perf_counter(), []
    for chunk in llm.create_chat_completion(messages=messages, stream=True, max_tokens=settings.max_tokens,
                                            temperature=settings.temperature):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    # The prompt's own token count, from the model's chat template (cached now, so one cheap token).
    usage = llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)["usage"]
    return started, stamps, usage["prompt_tokens"]


def bench_tier(settings: Settings, embedder, questions: tuple[str, ...], warmup: str) -> tuple[dict, list[dict]]:
    """One tier: time to first token, prompt and decode tokens/s through `Pipeline.stream` and raw.

    Returns the figures and the last messages the pipeline sent.
    """
    from ..pipeline import Pipeline
    from ..records import Answer

    generator = RecordingGenerator(Pipeline(settings, embedder=embedder).generator)
    pipeline = Pipeline(settings, embedder=embedder, generator=generator)
    pipeline.ask(warmup)  # a running app has the index and BM25 loaded, and has answered
    rows = []
    for question in questions:
        generator.llm.reset()  # both sides process the whole prompt (an app would reuse the system prompt's)
        stamps, answer, began = [], None, time.perf_counter()
        for item in pipeline.stream(question):
            if isinstance(item, Answer):
                answer = item
            else:
                stamps.append(time.perf_counter())
        answer_s = time.perf_counter() - began
        if len(stamps) < 2:
            rows.append({"question": question, "skipped": answer.mode})
            continue
        raw_start, raw_stamps, prompt_tokens = raw_stream(generator.llm, generator.messages, settings)
        if len(raw_stamps) < 2:
            rows.append({"question": question, "skipped": "raw side gave under two tokens"})
            continue
        rows.append({
            "question": question, "prompt_tokens": prompt_tokens, "tokens": len(stamps),
            "first_token_s": round(answer.timings_ms["first_token"] / 1000, 3), "answer_s": round(answer_s, 3),
            "pipeline_prompt_tok_s": prompt_tokens / (stamps[0] - generator.called_at),
            "raw_prompt_tok_s": prompt_tokens / (raw_stamps[0] - raw_start),
            "pipeline_decode_tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
            "raw_decode_tok_s": (len(raw_stamps) - 1) / (raw_stamps[-1] - raw_stamps[0])})
    done = [r for r in rows if "skipped" not in r]
    if not done:
        raise RagError(f"no bench question got two tokens or more from {settings.model}: {rows}")
    ttft = [r["first_token_s"] for r in done]
    # As a running app answers: no reset, so the fixed system prompt and examples come from the KV
    # cache the previous question left, and llama.cpp processes only the rest of the prompt.
    warm, evaluated, totals, checks = [], [], [], []
    for question in questions:
        answer = pipeline.ask(question)
        totals.append(answer.timings_ms["total"] / 1000)
        if answer.receipt.get("check_evaluated") is not None:
            checks.append(answer.receipt["check_evaluated"])
        if "first_token" in answer.timings_ms:
            warm.append(answer.timings_ms["first_token"] / 1000)
            evaluated.append(answer.receipt.get("prompt_evaluated") or 0)

    def median(key):
        return round(statistics.median(r[key] for r in done), 2)

    row = {"tier": settings.model, "answers": len(done), "k": settings.top_k,
            "ttft_p50_s": _percentile(ttft, 50), "ttft_p95_s": _percentile(ttft, 95),
            "warm_ttft_p50_s": _percentile(warm, 50) if warm else None,
            "warm_ttft_p95_s": _percentile(warm, 95) if warm else None,
            "warm_prompt_evaluated": statistics.median(evaluated) if evaluated else None,
            # A whole answer as a running app gives it: generation plus the support check, whose tokens
            # (all but the check question came from the KV cache) are counted too.
            "warm_answer_p50_s": _percentile(totals, 50), "warm_answer_p95_s": _percentile(totals, 95),
            "warm_check_evaluated": statistics.median(checks) if checks else None,
            "answer_s": median("answer_s"), "prompt_tokens": median("prompt_tokens"),
            "pipeline_prompt_tok_s": median("pipeline_prompt_tok_s"), "raw_prompt_tok_s": median("raw_prompt_tok_s"),
            "pipeline_decode_tok_s": median("pipeline_decode_tok_s"), "raw_decode_tok_s": median("raw_decode_tok_s"),
            "prompt_ratio": round(median("pipeline_prompt_tok_s") / median("raw_prompt_tok_s"), 3),
            "decode_ratio": round(median("pipeline_decode_tok_s") / median("raw_decode_tok_s"), 3),
            "threads": settings.threads, "questions": rows}
    return row, generator.messages


def sweep_threads_and_batch(settings: Settings, messages: list[dict], threads: tuple[int, ...],
                            batches: tuple[int, ...], runs: int) -> dict:
    """Raw prompt and decode tokens/s of one tier for each (threads, n_batch), best of `runs` each."""
    from ..answer.generate import load_llama
    from ..answer.models import resolve_model

    path = str(resolve_model(settings.model))
    cells = []
    for n_threads in threads:
        for n_batch in batches:
            llm = load_llama(model_path=path, n_ctx=settings.n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                             n_batch=n_batch, seed=settings.seed)
            prompt, decode, tokens = [], [], 0
            for _ in range(runs):
                start, stamps, tokens = raw_stream(llm, messages, settings)
                prompt.append(tokens / (stamps[0] - start))
                if len(stamps) > 1:
                    decode.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            llm.close()
            cells.append({"threads": n_threads, "n_batch": n_batch, "prompt_tokens": tokens,
                          "prompt_tok_s": round(max(prompt), 1), "decode_tok_s": round(max(decode or [0.0]), 1)})
    best = max(cells, key=lambda c: c["prompt_tok_s"])
    return {"tier": settings.model, "runs": runs, "cells": cells, "best": best,
            "best_decode_threads": max(cells, key=lambda c: c["decode_tok_s"])["threads"]}


def _percentile(values: list[float], pct: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, pct)), 3)
