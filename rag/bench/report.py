"""The bench's report: the machine it ran on, how busy the machine was, and the Markdown table."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path


@contextlib.contextmanager
def phase(phases: dict, name: str):
    """Time a phase, and note the share of the machine's CPU that other processes took meanwhile."""
    print(f"[bench] {name}...", file=sys.stderr, flush=True)
    t0, busy0, own0 = time.perf_counter(), *cpu_seconds()
    yield
    seconds, busy, own = time.perf_counter() - t0, *cpu_seconds()
    other = max(0.0, (busy - busy0) - (own - own0)) / (seconds * (os.cpu_count() or 1))
    phases[name] = {"seconds": round(seconds, 1), "other_cpu": round(other, 2)}
    print(f"[bench] {name}: {seconds:.1f} s; other processes took {other:.0%} of the CPU",
          file=sys.stderr, flush=True)


def cpu_seconds() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine, and of this process with its reaped children."""
    import resource

    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    own = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy, own


def machine_info() -> dict:
    """CPU model, cores, memory and the versions of the libraries that do the work."""
    def field(path: str, key: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        return ""

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    memory = field("/proc/meminfo", "MemTotal").split()
    return {"cpu": field("/proc/cpuinfo", "model name") or platform.processor(), "cores": os.cpu_count(),
            "ram_gib": round(int(memory[0]) / 2**20, 1) if memory else None,
            "python": platform.python_version(), "platform": platform.platform(),
            **{dist: version(dist) for dist in ("torch", "faiss-cpu", "llama-cpp-python",
                                                "sentence-transformers", "numpy")},
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def markdown_report(report: dict) -> str:
    m, retrieval = report["machine"], report["retrieval"]
    lines = [f"# Benchmark ({report['mode']})", "",
             f"{report['date']} · {m['cpu']} · {m['cores']} cores · {m['ram_gib']} GiB RAM · "
             f"Python {m['python']} · torch {m['torch']} · faiss {m['faiss-cpu']} · llama-cpp-python "
             f"{m['llama-cpp-python']} · sentence-transformers {m['sentence-transformers']} · "
             f"load average {m['load_average_start'][0]} at start, {m['load_average_end'][0]} at end · "
             f"{report['seconds']} s in all", ""]
    if report["mode"] == "tiny":
        lines += ["`--tiny` sizes only show that the harness runs; the targets are meant for full sizes.", ""]
    lines += ["| figure | value | target | met | measured as |", "|---|---|---|---|---|"]
    for f in report["figures"].values():
        lines.append(f"| {f['label']} | {f['value']:g} {f['unit']} | {f['op']} {f['target']:g} "
                     f"{f['unit']} | {'yes' if f['met'] else 'no'} | {f['measured']} |")
    lines += ["", "## Retrieval by index size", "",
              "Synthetic indexes: vectors scattered around the corpus's chunk vectors, texts the corpus's "
              "chunks repeated. Hybrid latency includes embedding the query; the FAISS columns time the "
              "index alone (top 50, as the retriever asks). Recall@5 is HNSW's top 5 against exact "
              "search's.", "",
              "| rows | product uses | exact: p50 / p95 ms | HNSW: p50 / p95 ms | FAISS exact p95 ms | "
              "FAISS HNSW p95 ms | HNSW recall@5 | HNSW build s | load s (peak MB) | "
              "one-file update s (peak MB) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in retrieval["rows"]:
        lines.append(f"| {r['rows']:,} | {r['product_index']} | {r['flat_p50_ms']} / {r['flat_p95_ms']} | "
                     f"{r['hnsw_p50_ms']} / {r['hnsw_p95_ms']} | {r['faiss_flat_p95_ms']} | "
                     f"{r['faiss_hnsw_p95_ms']} | {r['hnsw_recall_at_5']} | {r['hnsw_build_s']} | "
                     f"{r['load_s']} ({r['load_peak_mb']}) | {r['update_s']} ({r['update_peak_mb']}) |")
    lines += ["", f"Exact search kept hybrid p95 within 50 ms up to {retrieval['exact_within_50ms_up_to']:,} "
              f"rows of those measured; the product switches to HNSW at {retrieval['hnsw_threshold']:,} "
              "rows (`store.HNSW_THRESHOLD`)."]
    lines += tier_lines(report.get("tiers", {}), report.get("sweep"))
    paths = report["figures"].get("query_embedding", {}).get("paths", {})
    if paths:
        lines += ["", "## Embedding paths", "", "| command | embeds with |", "|---|---|"]
        lines += [f"| {command} | {path} |" for command, path in paths.items()]
    phases = ", ".join(f"{k} {v['seconds']} s ({v['other_cpu']:.0%})" for k, v in report["phases"].items())
    lines += ["", f"Phases, with the share of the CPU other processes took meanwhile: {phases}. "
              f"Corpus: the pydoc text of {report['corpus']['modules']} stdlib modules "
              f"({report['corpus']['megabytes']} MB), of which the first {report['sizes']['corpus_kb']} kB "
              f"were indexed as {report['sizes']['files']:,} files."]
    return "\n".join(lines) + "\n"


def figure(label: str, value: float, unit: str, op: str, target: float, measured: str,
           met_also: bool = True, **detail) -> dict:
    """One figure of the report: its value against its target, and how it was measured."""
    met = (value <= target if op == "<=" else value >= target) and met_also
    return {"label": label, "value": round(value, 4), "unit": unit, "op": op, "target": target,
            "met": met, "measured": measured, **detail}


def tier_lines(tiers: dict, sweep: dict | None) -> list[str]:
    """The per-tier generation table and the threads × n_batch sweep, as Markdown lines."""
    if not tiers:
        return []
    lines = ["", "## Generation by model tier", "",
             "Both sides process the whole prompt (no prompt cache); the raw side is llama-cpp-python given "
             "the very messages the pipeline sent. Prompt tokens are counted from those messages. "
             "Warm TTFT is the same questions asked again as a running app asks them: the fixed system "
             "prompt and examples come from the KV cache the previous question left, and llama.cpp "
             "processes only the rest (its own count, median).", "",
             "| tier | TTFT p50 / p95 s (target) | warm TTFT p50 / p95 s (tokens processed) | s per answer | "
             "prompt tokens | prompt tok/s pipeline / raw | decode tok/s pipeline / raw | threads |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t in tiers.items():
        warm = (f"{t['warm_ttft_p50_s']} / {t['warm_ttft_p95_s']} ({t['warm_prompt_evaluated']:g})"
                if t.get("warm_ttft_p50_s") is not None else "")
        lines.append(f"| {name} | {t['ttft_p50_s']} / {t['ttft_p95_s']} (≤ {t['ttft_target_s']:g}, "
                     f"{'met' if t['ttft_met'] else 'missed'}) | {warm} | {t['answer_s']} | {t['prompt_tokens']:g} | "
                     f"{t['pipeline_prompt_tok_s']} / {t['raw_prompt_tok_s']} ({t['prompt_ratio']:g}×) | "
                     f"{t['pipeline_decode_tok_s']} / {t['raw_decode_tok_s']} ({t['decode_ratio']:g}×) | "
                     f"{t['threads']} |")
    if sweep:
        best = sweep["best"]
        lines += ["", f"Raw llama-cpp-python on {sweep['tier']}, the same messages, best of {sweep['runs']} "
                  f"each: prompt processing was fastest with {best['threads']} threads and n_batch "
                  f"{best['n_batch']} ({best['prompt_tok_s']} tokens/s); decoding with "
                  f"{sweep['best_decode_threads']} threads.", "",
                  "| threads | n_batch | prompt tok/s | decode tok/s |", "|---|---|---|---|"]
        lines += [f"| {c['threads']} | {c['n_batch']} | {c['prompt_tok_s']} | {c['decode_tok_s']} |"
                  for c in sweep["cells"]]
    return lines
