"""`rag bench --summary`: the seconds a cited summary takes per page, against reading the document once.

The floor is the document's tokens at this machine's raw prompt speed, measured in the same run on the
same loaded model (llama.cpp evaluating the document's own first part, best of two): no summary can read
a document faster than that. The figure is the summary's seconds over the floor (issue 28: at most 1.5×),
with both per page (a PDF's pages, or 500 words of a text document).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..config import PROJECT_ROOT, Settings
from ..errors import RagError
from ..whole.summarize import PART_TOKENS, Summary
from .report import figure

SUMMARY_RATIO = 1.5
WORDS_PER_PAGE = 500
DEFAULT_DOCUMENT = PROJECT_ROOT / "corpus" / "xi-global-ai-collaboration.txt"


def raw_prompt_speed(generator, text: str, tokens: int = PART_TOKENS, runs: int = 2) -> float:
    """Tokens/s llama.cpp evaluates the first `tokens` of `text` at as one prompt (best of `runs`); the
    model's context is left empty, so the generator evaluates its next prompt afresh."""
    llm = generator.llm
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:tokens]
    best = float("inf")
    for _ in range(runs):
        llm.reset()
        began = time.perf_counter()
        llm.eval(ids)
        best = min(best, time.perf_counter() - began)
    llm.reset()
    return len(ids) / best


def pages_of(document) -> tuple[float, str]:
    """(pages, unit): a paged document's pages, else its words in 500-word pages."""
    if len(document.pages) > 1 or document.path.lower().endswith(".pdf"):
        return float(len(document.pages)), "page"
    return round(len(document.text.split()) / WORDS_PER_PAGE, 2), f"{WORDS_PER_PAGE} words"


def bench_summary(pipeline, document: Path, folder: Path, speed=None) -> dict:
    """Index `document` alone under `folder`, summarize it (no cache) and time it against its floor, with
    the prompt speed that `speed(generator, text)` measures (default: `raw_prompt_speed`)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(document, folder / document.name)
    pipeline.index([folder])
    source = pipeline.source(document.name)
    job = pipeline.summarize(source, "short")
    count = pipeline.generator.count_tokens
    doc_tokens = sum(count(p.text) for p in source.passages)
    tokens_per_s = (speed or raw_prompt_speed)(pipeline.generator, source.document.text)
    began = time.perf_counter()
    events = list(job.run())
    seconds = time.perf_counter() - began
    summary = next(e for e in events if isinstance(e, Summary))
    pages, unit = pages_of(source.document)
    floor = doc_tokens / tokens_per_s
    return {"document": source.doc, "pages": pages, "unit": unit, "document_tokens": doc_tokens,
            "prompt_tokens": job.prompt_tokens(), "raw_prompt_tok_s": round(tokens_per_s, 1),
            "floor_s": round(floor, 2), "seconds": round(seconds, 2),
            "seconds_per_page": round(seconds / pages, 2), "floor_seconds_per_page": round(floor / pages, 2),
            "ratio": round(seconds / floor, 3), "model_calls": len(job.model_seconds),
            "step_seconds": [round(x, 1) for x in job.model_seconds],
            "written_tokens": job.reply_tokens, "sentences_shown": len(summary.points),
            "faithfulness": summary.stats["faithfulness"]}


def summary_figure(row: dict, tier: str) -> dict:
    return figure(
        f"summary ÷ read-once floor ({tier})", row["ratio"], "×", "<=", SUMMARY_RATIO,
        f"{row['seconds']} s to summarize {row['document']} ({row['pages']:g} × {row['unit']}: "
        f"{row['seconds_per_page']} s per {row['unit']}) against reading its {row['document_tokens']:,} tokens "
        f"once at {row['raw_prompt_tok_s']} tokens/s raw ({row['floor_s']} s, {row['floor_seconds_per_page']} s "
        f"per {row['unit']}); {row['model_calls']} model calls reading {row['prompt_tokens']:,} prompt tokens and "
        f"writing {row['written_tokens']:,}, no cache", tier=tier,
        seconds_per_page=row["seconds_per_page"], floor_seconds_per_page=row["floor_seconds_per_page"])


def summary_phase(args, report: dict, work: Path) -> None:
    """The summary section: one document summarized on the default tier (or `--model`), into the report."""
    from .tiers import installed_tiers

    settings = Settings.load(args.config)
    tiers = installed_tiers()
    if not tiers:
        raise RagError("no model tier is installed: run `rag models install`")
    from ..answer.models import DEFAULT_TIER

    tier = settings.model or (DEFAULT_TIER if DEFAULT_TIER in tiers else tiers[0])
    document = Path(getattr(args, "summary_doc", None) or DEFAULT_DOCUMENT)
    if not document.is_file():
        raise RagError(f"{document}: no such document to summarize")
    pipeline = open_pipeline(settings.replace(index_dir=work / "summary-index", model=tier))
    report["summary"] = {**bench_summary(pipeline, document, work / "summary-docs"), "tier": tier}
    report["figures"]["summary_floor"] = summary_figure(report["summary"], tier)


def open_pipeline(settings: Settings):
    from ..pipeline import Pipeline

    return Pipeline(settings)


def summary_lines(row: dict | None) -> list[str]:
    """The summary section of bench.md."""
    if not row:
        return []
    return ["", f"## A summary's seconds per page (a page: {row['unit']})", "",
            "| tier | document | pages | s per page | floor s per page | ratio | model calls | raw prompt tok/s |",
            "|---|---|---|---|---|---|---|---|",
            f"| {row['tier']} | {row['document']} | {row['pages']:g} | {row['seconds_per_page']} | "
            f"{row['floor_seconds_per_page']} | {row['ratio']:g}× | {row['model_calls']} | "
            f"{row['raw_prompt_tok_s']} |"]


def summary_markdown(report: dict) -> str:
    """bench.md for `rag bench --summary`: the machine, the figure and the section."""
    m = report["machine"]
    lines = [f"# Benchmark: summary ({report['mode']})", "",
             f"{report['date']} · {m['cpu']} · {m['cores']} cores · llama-cpp-python {m['llama-cpp-python']} · "
             f"load average {m['load_average_start'][0]} at start, {m['load_average_end'][0]} at end · "
             f"{report['seconds']} s in all", "",
             "| figure | value | target | met | measured as |", "|---|---|---|---|---|"]
    for f in report["figures"].values():
        lines.append(f"| {f['label']} | {f['value']:g} {f['unit']} | {f['op']} {f['target']:g} "
                     f"{f['unit']} | {'yes' if f['met'] else 'no'} | {f['measured']} |")
    return "\n".join(lines + summary_lines(report.get("summary"))) + "\n"
