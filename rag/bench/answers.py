"""`rag bench`, answers as a person gets them here: per tier, a running app's time to first token against
the physical floor (raw llama.cpp evaluating the same new prompt tokens after the same cached prefix),
seconds per answer, why-questions against short ones, and new prompt tokens per answer.

The questions are the eval's own (tune half) over the bundled corpus, short ones and why-questions
interleaved, each tier warmed as a front end is at start-up.
"""

from __future__ import annotations

import statistics
import sys
import time

from ..config import PROJECT_ROOT, Settings

SHORT = (
    "How many nations signed the Bletchley Declaration?",
    "Who wrote the article on President Xi’s global AI collaboration?",
    "In which month of 2023 did China enact its generative AI regulation?",
    "Which generative AI model does the Xi article give as an example?",
    "What term was named word of the year in 2023, according to the Xi article?",
    "At which event did Xi give pre-recorded remarks stressing cooperation over confrontation?",
)
WHY = (
    "Why does the author consider the Bletchley Declaration significant?",
    "Why is the MIIT’s cooperation with the United States considered worthwhile?",
    "Why has the principle that AI rules should not be dictated by a few developed countries gained support?",
    "Why does Xi stress cooperation over confrontation?",
)
WARMUP = "What is the name of the AI governance proposal China has put forward?"
# The bounds: first token within 1.2x the floor, why within 1.3x short, p50/p95 per answer.
FLOOR_RATIO = 1.2
WHY_RATIO = 1.3
ANSWER_P50_S = 4.0
ANSWER_P95_S = 8.0


def corpus_index(settings: Settings, embedder, directory) -> Settings:
    """The bundled corpus indexed into `directory`; the settings that answer from it."""
    from ..pipeline import Pipeline

    settings = settings.replace(index_dir=directory)
    Pipeline(settings, embedder=embedder).index([PROJECT_ROOT / "corpus"])
    return settings


def floor_seconds(generator, messages: list[dict], cached: int) -> float:
    """Raw llama.cpp's seconds to evaluate the prompt's tokens after its first `cached`, from the same state:
    the kept prefix restored as llama.cpp state, whatever else was cached evaluated untimed."""
    llm = generator.llm
    tokens = generator.encode(messages)
    llm.reset()
    start = 0
    for prefix, state in generator.prefixes.items():
        if len(prefix) <= cached and tuple(tokens[:len(prefix)]) == prefix:
            generator.restore_state(prefix, state)
            start = len(prefix)
            break
    llm.n_tokens = start
    if start < cached:
        llm.eval(tokens[start:cached])
    t0 = time.perf_counter()
    llm.eval(tokens[cached:])
    return time.perf_counter() - t0


def bench_tier_answers(settings: Settings, embedder, questions: tuple[str, ...], rounds: int = 1) -> dict:
    """One tier, warm as a front end leaves it: per answer its first token, floor, total and new tokens."""
    from ..pipeline import Pipeline
    from ..records import Answer
    from .tiers import RecordingGenerator

    generator = RecordingGenerator(Pipeline(settings, embedder=embedder).generator)
    pipeline = Pipeline(settings, embedder=embedder, generator=generator)
    pipeline.warm()
    pipeline.ask(WARMUP)
    rows = []
    for _ in range(rounds):
        for question in questions:
            began, first, answer = time.perf_counter(), None, None
            for item in pipeline.stream(question):
                if isinstance(item, Answer):
                    answer = item
                elif first is None:
                    first = time.perf_counter() - began
            total = time.perf_counter() - began
            receipt = answer.receipt
            row = {"question": question, "why": question in WHY, "answer_s": round(total, 3),
                   "mode": answer.mode, "new_tokens": receipt.get("prompt_evaluated"),
                   "cached_tokens": receipt.get("prompt_cached"), "prompt_tokens": receipt.get("prompt_tokens"),
                   "timings_ms": answer.timings_ms}
            if first is not None and receipt.get("prompt_evaluated") is not None:
                row["first_token_s"] = round(first, 3)
                row["floor_s"] = round(floor_seconds(generator.generator, generator.messages,
                                                     receipt["prompt_cached"]), 3)
            rows.append(row)
    return summarize(settings.model, rows)


def summarize(tier: str, rows: list[dict]) -> dict:
    """The tier's figures from its answers' rows."""
    timed = [r for r in rows if "first_token_s" in r]
    short = [r["answer_s"] for r in rows if not r["why"]]
    why = [r["answer_s"] for r in rows if r["why"]]
    totals = [r["answer_s"] for r in rows]
    new = [r["new_tokens"] for r in rows if r["new_tokens"] is not None]
    out = {"tier": tier, "answers": len(rows),
           "answer_p50_s": _pct(totals, 50), "answer_p95_s": _pct(totals, 95),
           "short_p50_s": _pct(short, 50), "why_p50_s": _pct(why, 50),
           "why_over_short": round(statistics.median(why) / statistics.median(short), 3) if short and why else None,
           "new_tokens_p50": _pct(new, 50), "new_tokens_p95": _pct(new, 95), "rows": rows}
    if timed:
        out.update(first_token_p50_s=_pct([r["first_token_s"] for r in timed], 50),
                   floor_p50_s=_pct([r["floor_s"] for r in timed], 50),
                   first_token_over_floor=round(statistics.median(
                       r["first_token_s"] / r["floor_s"] for r in timed if r["floor_s"] > 0), 3))
    out["met"] = {"answer_p50": out["answer_p50_s"] is not None and out["answer_p50_s"] <= ANSWER_P50_S,
                  "answer_p95": out["answer_p95_s"] is not None and out["answer_p95_s"] <= ANSWER_P95_S,
                  "why_over_short": out["why_over_short"] is not None and out["why_over_short"] <= WHY_RATIO,
                  "first_token_over_floor": out.get("first_token_over_floor", 99) <= FLOOR_RATIO}
    return out


def answer_lines(tiers: dict) -> list[str]:
    """The per-tier table for bench.md."""
    lines = ["", "## Answers as a running app gives them (bundled corpus, eval questions)", "",
             "| tier | first token p50 / floor p50 s (ratio, target ≤ 1.2) | s per answer p50 / p95 "
             "(≤ 4 / ≤ 8) | why ÷ short p50 (≤ 1.3) | new prompt tokens p50 / p95 |",
             "|---|---|---|---|---|"]
    for row in tiers.values():
        lines.append(f"| {row['tier']} | {row.get('first_token_p50_s')} / {row.get('floor_p50_s')} "
                     f"({row.get('first_token_over_floor')}) | {row['answer_p50_s']} / {row['answer_p95_s']} | "
                     f"{row['why_over_short']} ({row['short_p50_s']} / {row['why_p50_s']}) | "
                     f"{row['new_tokens_p50']:g} / {row['new_tokens_p95']:g} |")
    return lines


def _pct(values: list[float], pct: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, pct)), 3) if values else None


def bench_answers(config, tiers: list[str], default: str, work, rounds: int, ui_runs: int,
                  http: bool = True, questions: int = 12) -> dict:
    """Every tier's answers (see `bench_tier_answers`) and, on the default tier, the UI against the CLI;
    the product's own settings and embedder, the bundled corpus indexed into `work`."""
    import resource

    from ..pipeline import Pipeline
    from .frontends import bench_ui_against_cli

    settings = Settings.load(config)
    indexer = Pipeline(settings.replace(index_dir=work), embedder=None)
    indexer.index([PROJECT_ROOT / "corpus"])
    settings, embedder = indexer.settings, indexer.embedder
    questions = tuple(q for pair in zip(SHORT, WHY + WHY, strict=False) for q in pair)[:questions]
    out = {"threads": settings.threads, "tiers": {}, "questions": len(questions), "rounds": rounds}
    for tier in tiers:
        print(f"[bench] answers: {tier}", file=sys.stderr, flush=True)
        out["tiers"][tier] = bench_tier_answers(settings.replace(model=tier), embedder, questions, rounds)
    print(f"[bench] the UI against the CLI: {default}", file=sys.stderr, flush=True)
    pipeline = Pipeline(settings.replace(model=default), embedder=embedder)
    pipeline.warm()
    out["ui"] = bench_ui_against_cli(pipeline, questions[:4], ui_runs, http)
    # The bench itself holds every tier and two pipelines; an app's own peak is the peak_rss figure.
    out["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def answers_markdown(report: dict) -> str:
    """bench.md for `rag bench --answers`: the machine, the figures, and the answers' sections."""
    from .frontends import ui_lines

    m = report["machine"]
    lines = [f"# Benchmark: answers ({report['mode']} sizes)", "",
             f"{report['date']} · {m['cpu']} · {m['cores']} cores ({report['answers']['threads']} threads used) · "
             f"llama-cpp-python {m['llama-cpp-python']} · load average {m['load_average_start'][0]} at start, "
             f"{m['load_average_end'][0]} at end · "
             f"{report['seconds']} s in all", "",
             "| figure | value | target | met | measured as |", "|---|---|---|---|---|"]
    for f in report["figures"].values():
        lines.append(f"| {f['label']} | {f['value']:g} {f['unit']} | {f['op']} {f['target']:g} "
                     f"{f['unit']} | {'yes' if f['met'] else 'no'} | {f['measured']} |")
    lines += answer_lines(report["answers"]["tiers"]) + ui_lines(report["answers"]["ui"])
    phases = ", ".join(f"{k} {v['seconds']} s ({v['other_cpu']:.0%})" for k, v in report["phases"].items())
    lines += ["", f"Phases, with the share of the CPU other processes took meanwhile: {phases}."]
    return "\n".join(lines) + "\n"
