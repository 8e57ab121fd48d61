"""`rag bench`: speed and memory of the real pipeline against its targets, as JSON and Markdown.

The corpus is the pydoc text of the Python standard library, rendered into a temporary folder.
The machine may be shared and noisy, so every figure is a median of several runs, every
comparison is a ratio of two sides measured in the same run, and the report says how much of
the CPU other processes took while each phase ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..answer.models import DEFAULT_TIER
from ..config import PROJECT_ROOT, Settings
from ..errors import RagError
from .answers import ANSWER_P50_S, ANSWER_P95_S, FLOOR_RATIO, WHY_RATIO, answer_lines, answers_markdown, bench_answers
from .cold import bench_cold_ask, bench_cold_search, bench_embedding_paths, bench_peak_rss
from .embedders import embedder_figure, embedder_lines, embedders_markdown, run_embedder_bench
from .frontends import UI_RATIO, ui_lines
from .report import figure, machine_info, markdown_report, phase
from .summaries import summary_lines, summary_markdown, summary_phase
from .tiers import bench_tier, installed_tiers, sweep_threads_and_batch

# Rendered first, so that even a small slice of the corpus answers QUESTIONS.
CORE_MODULES = ("heapq", "bisect", "textwrap", "shlex", "fnmatch", "colorsys", "base64", "secrets",
                "glob", "zlib", "statistics", "json")
# Importing these opens a window or a browser, prints, or drags in Tk.
SIDE_EFFECT_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data"}
QUESTIONS = (
    "Which function returns the n largest elements from a dataset?",
    "How do I insert an item into a sorted list and keep it sorted?",
    "How can I wrap a paragraph of text to a given width?",
    "How do I quote a string so that it is safe to use in a shell command line?",
    "How do I check whether a filename matches a shell-style wildcard pattern?",
    "How do I convert a colour from RGB to HSV coordinates?",
    "How do I encode bytes with Base64?",
    "How do I generate a secure random URL-safe token?",
    "How do I find all path names matching a pattern?",
    "How do I compute a CRC-32 checksum of some data?",
    "How do I compute the median of a list of numbers?",
    "How do I serialize a Python object to a JSON formatted string?",
)
WARMUP_QUESTION = "What does the heapq module provide?"
# Time to first token on 2 cores, by tier ("" for any other tier): the targets.
TTFT_TARGETS = {"smollm2-135m": 1.5, "": 4.0}
# Chunks each embedding path embeds for its chunks/s, by mode.
EMBED_CHUNKS = {"tiny": 32, "quick": 200, "full": 1000}
# The thread counts and n_batch values tried on the default tier, and the runs per pair, by mode.
SWEEPS = {"tiny": ((1, 2), (64, 512), 1), "quick": ((1, 2), (64, 128, 256, 512), 2),
          "full": ((1, 2), (64, 128, 256, 512), 3)}


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does: the three modes differ only here."""

    name: str
    modules: int | None  # pydoc modules rendered; None means every importable one
    corpus_kb: int  # the slice of pydoc text that is indexed,
    files: int  # split into this many files,
    runs: int  # in this many shards, one per indexing run; also the re-index runs (at least 3)
    rows: tuple[int, ...]  # retrieval index sizes
    queries: int  # timed queries per retrieval size and index kind
    questions: int  # answers generated for time to first token and decode speed
    max_tokens: int | None  # tokens per answer; None keeps the setting (the product's default)
    cold_runs: int  # new `rag ask` processes
    rss_runs: int  # peak-memory processes (their peak barely varies)


TINY = Sizes("tiny", len(CORE_MODULES), 4, 60, 2, (2_000,), 20, 1, 16, 1, 1)
QUICK = Sizes("quick", None, 80, 1_000, 3, (10_000, 100_000), 60, 4, 64, 2, 1)
FULL = Sizes("full", None, 600, 1_500, 5, (10_000, 100_000, 1_000_000), 200, 8, None, 3, 2)


def run_bench(args) -> int:
    """The `rag bench` command: measure every figure, write bench.json and bench.md."""
    from ..index.embed import SentenceTransformerEmbedder
    from ..index.store import Store
    from ..pipeline import Pipeline

    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    out = Path(args.out or PROJECT_ROOT / "eval" / "reports")
    settings = Settings.load(args.config, top_k=4)
    settings = settings.replace(max_tokens=sizes.max_tokens or settings.max_tokens)
    began = time.perf_counter()
    report = {"mode": sizes.name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info(),
              "sizes": asdict(sizes), "figures": {}, "phases": {}}
    figures, phases = report["figures"], report["phases"]
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        if getattr(args, "summary", False):
            with phase(phases, "summary"):
                summary_phase(args, report, work)
            return finish(report, out, args, began)
        with phase(phases, "corpus"):
            texts = render_pydoc(work / "pydoc", sizes.modules)
            shards = split_corpus(texts, work / "corpus", sizes.files, sizes.corpus_kb * 1000, sizes.runs)
            report["corpus"] = {"modules": len(texts), "megabytes": round(sum(map(len, texts)) / 1e6, 2)}
        chunker = {"size": settings.chunk_size, "overlap": settings.chunk_overlap}
        if getattr(args, "answers", False):
            with phase(phases, "answers"):
                answers_phase(args, sizes, work, report)
            return finish(report, out, args, began)
        if getattr(args, "embedders", False) or sizes.name != "quick":
            with phase(phases, "embedders"):
                report["embedders"] = bench_embedder_table(args, sizes, texts, chunker)
                figures["embedding_speed"] = embedder_figure(report["embedders"])
            if getattr(args, "embedders", False):
                return finish(report, out, args, began)
        embedder = SentenceTransformerEmbedder(settings.embed_model)
        with phase(phases, "indexing"):
            figures["indexing_throughput"], figures["reindex_unchanged"] = bench_indexing(
                shards, Store(work / "index"), embedder, chunker)
        with phase(phases, "retrieval"):
            figures["retrieval_latency"], figures["index_load"], figures["one_file_update"], \
                report["retrieval"] = bench_retrieval(Store(work / "index").load(), embedder, sizes, work)
        with phase(phases, "generation"):
            figures["time_to_first_token"], figures["decode_speed"], figures["prompt_speed"] = bench_generation(
                settings.replace(index_dir=work / "index"), embedder, sizes, report)
            figures["warm_first_token"], figures["warm_answer"] = report.pop("warm")
        if sizes.name != "tiny":  # `--answers --tiny` and `--summary --tiny` run them alone at their smallest
            with phase(phases, "answers"):
                answers_phase(args, sizes, work, report)
            with phase(phases, "summary"):
                summary_phase(args, report, work)
        with phase(phases, "processes"):
            Pipeline(settings.replace(index_dir=work / "corpus-index"), embedder=embedder).index()
            env = {**os.environ, "RAG_INDEX_DIR": str(work / "corpus-index"),
                   **({"RAG_CONFIG": str(args.config)} if args.config else {})}
            figures["cold_ask"] = bench_cold_ask(env, sizes.cold_runs, work)
            if DEFAULT_TIER in installed_tiers() and sizes.name != "tiny":
                figures["cold_ask_default"] = bench_cold_ask(env, sizes.cold_runs, work, DEFAULT_TIER, 8.0, None)
            figures["cold_search"] = bench_cold_search(env, sizes.cold_runs, work)
            figures["query_embedding"] = bench_embedding_paths(
                embedder, [c.text for c in Store(work / "index").load().chunks][:EMBED_CHUNKS[sizes.name]],
                sizes.cold_runs)
            figures["peak_rss"] = bench_peak_rss(env, sizes.rss_runs, work,
                                                 installed_tiers(1)[0] if sizes.name == "tiny" else "")
    return finish(report, out, args, began)


def answers_phase(args, sizes: Sizes, work: Path, report: dict) -> None:
    """Answers as a running app gives them, per tier, and the UI against the CLI (rag/bench/answers.py)."""
    tiers = installed_tiers(1 if sizes.name == "tiny" else None)
    if not tiers:
        raise RagError("no model tier is installed: run `rag models install`")
    default = DEFAULT_TIER if DEFAULT_TIER in tiers else tiers[0]
    rounds, ui_runs = {"tiny": (1, 1), "quick": (1, 1), "full": (2, 2)}[sizes.name]
    report["answers"] = bench_answers(args.config, tiers, default, work / "answers-index", rounds, ui_runs,
                                      http=sizes.name != "tiny", questions=4 if sizes.name == "tiny" else 12)
    row, ui = report["answers"]["tiers"][default], report["answers"]["ui"]
    figures = report["figures"]
    figures["peak_rss"] = bench_peak_rss({**os.environ, "RAG_INDEX_DIR": str(work / "answers-index"),
                                          **({"RAG_CONFIG": str(args.config)} if args.config else {})}, 1, work)
    figures["answer_seconds"] = figure(
        f"warm seconds per answer ({default})", row["answer_p50_s"], "s", "<=", ANSWER_P50_S,
        f"p50 (p95 {row['answer_p95_s']} s, target ≤ {ANSWER_P95_S:g}) of {row['answers']} eval questions, short "
        f"and why interleaved, fixed prefixes kept; {report['answers']['threads']} threads",
        met_also=row["met"]["answer_p95"], tier=default)
    if row.get("first_token_over_floor") is not None:
        figures["first_token_floor"] = figure(
            f"first token ÷ raw evaluation of the new tokens ({default})", row["first_token_over_floor"], "×",
            "<=", FLOOR_RATIO, f"p50 first token {row['first_token_p50_s']} s against raw llama.cpp "
            f"{row['floor_p50_s']} s evaluating the same {row['new_tokens_p50']:g} new tokens (p50)", tier=default)
    if row["why_over_short"] is not None:
        figures["why_over_short"] = figure(
            f"why ÷ short seconds per answer ({default})", row["why_over_short"], "×", "<=", WHY_RATIO,
            f"p50 {row['why_p50_s']} s against {row['short_p50_s']} s", tier=default)
    figures["ui_over_cli"] = figure(
        f"web UI ÷ CLI seconds per answer ({default})", ui["ui_over_cli_with_queue"], "×", "<=", UI_RATIO,
        f"p50 UI {ui['ui_p50_s']} s (chat action, Gradio postprocessing and queue added) against `rag chat` "
        f"{ui['cli_p50_s']} s, same questions; the split is in the answers section", tier=default)


def finish(report: dict, out: Path, args, began: float) -> int:
    """Write bench.json and bench.md and print the report."""
    figures = report["figures"]
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - began, 1)
    out.mkdir(parents=True, exist_ok=True)
    if "retrieval" in report:
        markdown = markdown_report(report) + "\n".join(embedder_lines(report.get("embedders"))) + "\n"
    elif "answers" in report:
        markdown = answers_markdown(report)
    elif "summary" in report:
        markdown = summary_markdown(report)
    else:
        markdown = embedders_markdown(report)
    if "answers" in report and "retrieval" in report:
        markdown += "\n".join(answer_lines(report["answers"]["tiers"]) + ui_lines(report["answers"]["ui"])
                              + summary_lines(report.get("summary"))) + "\n"
    (out / "bench.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "bench.md").write_text(markdown, encoding="utf-8")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(markdown)
        print(f"reports: {out / 'bench.json'}, {out / 'bench.md'}")
    missed = [f["label"] for f in figures.values() if not f["met"]]
    if missed:
        print(f"rag bench: targets missed: {'; '.join(missed)}", file=sys.stderr)
    return 0


# --- the corpus ---------------------------------------------------------------------------------
def render_pydoc(dest: Path, limit: int | None) -> list[str]:
    """The pydoc text of the first `limit` stdlib modules (CORE_MODULES first), one string each."""
    names = list(CORE_MODULES) + sorted(
        n for n in sys.stdlib_module_names
        if n not in CORE_MODULES and n not in SIDE_EFFECT_MODULES and not n.startswith("_"))
    dest.mkdir(parents=True)
    # In a child process, so that importing two hundred modules leaves the bench untouched.
    code = "import sys; from rag.bench.run import write_pydoc; write_pydoc(sys.argv[1], sys.argv[2:])"
    done = subprocess.run([sys.executable, "-c", code, str(dest), *names[:limit]], cwd=dest, timeout=600,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode:
        raise RagError(f"rendering the pydoc corpus failed: {done.stderr[-800:]}")
    return [p.read_text(encoding="utf-8") for p in sorted(dest.glob("*.txt"))]


def write_pydoc(dest: str, names: list[str]) -> None:
    """Write `NNN-module.txt` with each module's pydoc text; modules that fail to import are skipped."""
    import io
    import pydoc

    for number, name in enumerate(names):
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                text = pydoc.render_doc(__import__(name), renderer=pydoc.plaintext)
        except BaseException:  # noqa: B036 - an import may raise anything, SystemExit included
            continue
        Path(dest, f"{number:03d}-{name}.txt").write_text(text, encoding="utf-8")


def bench_embedder_table(args, sizes: Sizes, texts: list[str], chunker: dict) -> dict:
    """The embedder table (rag/bench/embedders.py) on chunks of the pydoc corpus."""
    import random

    from ..documents.chunk import chunk_document
    from ..records import Document

    chunks = [c.text for number, text in enumerate(texts) for c in chunk_document(
        Document(id=f"{number}", path="", sha256="", text=text), chunker["size"], chunker["overlap"])]
    count = {"tiny": 16, "quick": 300}.get(sizes.name, 1000)
    sample = random.Random(0).sample(chunks, min(count, len(chunks)))
    return run_embedder_bench(args, sample)


def split_corpus(texts: list[str], dest: Path, files: int, max_bytes: int, shards: int) -> list[Path]:
    """The first `max_bytes` of the texts, cut at line ends into `files` files in `shards` folders."""
    lines = "\n\n".join(texts).encode("utf-8")[:max_bytes].decode("utf-8", "ignore").splitlines(True)
    starts = [i for i, line in enumerate(lines) if line.strip()]  # so no file is blank
    if len(starts) < files:
        raise RagError(f"{max_bytes:,} bytes of pydoc text hold {len(starts)} lines, "
                       f"too few for {files} files")
    cuts = [0] + [starts[k * len(starts) // files] for k in range(1, files)] + [len(lines)]
    folders = [dest / f"shard-{k}" for k in range(shards)]
    for number in range(files):
        folder = folders[number * shards // files]
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(lines[cuts[number]:cuts[number + 1]])
        (folder / f"part-{number:05d}.txt").write_text(text, encoding="utf-8")
    return folders


# --- the figures --------------------------------------------------------------------------------
def bench_indexing(shards: list[Path], store, embedder, chunker: dict) -> tuple[dict, dict]:
    """Indexing throughput against raw `SentenceTransformer.encode`, then a re-index with no changes.

    Run i adds shard i to the same index, so that no chunk is embedded twice and the last run
    leaves the whole corpus indexed for the re-index. The raw side encodes the chunks run i embedded.
    """
    from ..index.embed import SentenceTransformerEmbedder
    from ..index.indexer import update_index

    # Loads sentence-transformers, which the embedder then uses for every batch (it is the faster path
    # once loaded), so both sides run the same code and the ratio is the pipeline's overhead alone.
    embedder.model.encode(["warm-up: load the model outside the timings"] * embedder.batch_size)
    runs = []
    for number, shard in enumerate(shards):
        t0 = time.perf_counter()
        report = update_index(store, shards[: number + 1], embedder, chunker)
        pipeline_s = time.perf_counter() - t0
        texts = [c.text for c in report.state.chunks[len(report.state.chunks) - report.embedded:]]
        t0 = time.perf_counter()
        embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True,
                              convert_to_numpy=True)
        raw_s = time.perf_counter() - t0
        files = list(shard.iterdir())
        runs.append({"files": len(files), "chunks": len(texts),
                     "megabytes": sum(f.stat().st_size for f in files) / 1e6,
                     "pipeline_s": round(pipeline_s, 3), "raw_s": round(raw_s, 3)})
    pipe = {u: statistics.median(r[u] / r["pipeline_s"] for r in runs) for u in ("chunks", "megabytes")}
    raw = {u: statistics.median(r[u] / r["raw_s"] for r in runs) for u in ("chunks", "megabytes")}
    throughput = figure(
        "indexing throughput", pipe["chunks"] / raw["chunks"], "× raw", ">=", 0.85,
        f"pipeline {pipe['chunks']:.1f} chunks/s ({pipe['megabytes'] * 60:.2f} MB/min) ÷ raw encode "
        f"{raw['chunks']:.1f} chunks/s ({raw['megabytes'] * 60:.2f} MB/min), same texts, batch size "
        f"{embedder.batch_size}; median of {len(runs)} runs, each adding {runs[0]['files']:,} files "
        f"({runs[0]['chunks']:,} chunks) to the index",
        sides={"pipeline": {"chunks_per_s": pipe["chunks"], "mb_per_min": pipe["megabytes"] * 60},
               "raw_encode": {"chunks_per_s": raw["chunks"], "mb_per_min": raw["megabytes"] * 60}},
        runs=runs)

    # A fresh embedder, as a new `rag index` process has: an unchanged corpus must not need the model.
    fresh = SentenceTransformerEmbedder(embedder.source)
    reports = [update_index(store, shards, fresh, chunker) for _ in range(max(3, len(shards)))]
    files, chunks = sum(r["files"] for r in runs), reports[0].chunks
    embedded = max(r.embedded for r in reports)
    reindex = figure(
        "re-index, unchanged corpus", statistics.median(r.seconds for r in reports), "s", "<=", 2.0,
        f"{files:,} files, {chunks:,} chunks, {embedded} chunks embedded; median of {len(reports)}",
        met_also=embedded == 0, embedded=embedded, files=files, chunks=chunks,
        runs=[round(r.seconds, 3) for r in reports])
    return throughput, reindex


def bench_retrieval(base, embedder, sizes: Sizes, work: Path) -> tuple[dict, dict, dict, dict]:
    """Hybrid k=5 latency on synthetic indexes grown from the corpus's chunks, exact and HNSW.

    Each size is written as a real index: a new process times its load (with the first search),
    and another commits a one-file update to it; both report their peak memory.
    """
    import numpy as np

    from ..index.retrieve import LocalIndex, Retriever
    from ..index.store import HNSW_THRESHOLD, Store, make_faiss_index
    from ..records import Chunk

    rng = np.random.default_rng(7)
    base_vectors, base_texts = base.vectors(), [c.text for c in base.chunks]
    queries = [QUESTIONS[i % len(QUESTIONS)] for i in range(sizes.queries)]
    query_vectors = embedder.embed(list(QUESTIONS))
    rows = []
    for n in sizes.rows:
        vectors = grow_vectors(base_vectors, n, rng)
        texts = [base_texts[i % len(base_texts)] for i in range(n)]
        chunks = [Chunk(f"synthetic-{i // 10}#{i % 10}", f"synthetic-{i // 10}", text, 0, len(text))
                  for i, text in enumerate(texts)]
        documents = {f"synthetic-{d}": {"path": f"synthetic-{d}", "sha256": "", "chunks": min(10, n - 10 * d),
                                        "pages": 1} for d in range((n + 9) // 10)}
        store = Store(work / f"scale-{n}")
        product = "hnsw" if n >= HNSW_THRESHOLD else "flat"
        t0 = time.perf_counter()
        with store.lock():
            state = store.write(chunks, vectors, {"embedder": embedder.name, "dim": embedder.dim,
                                                  "documents": documents})
        row = {"rows": n, "product_index": product, "write_s": round(time.perf_counter() - t0, 2)}
        t0 = time.perf_counter()
        other = make_faiss_index(vectors, threshold=0 if product == "flat" else n + 1)
        indexes = {product: state.segments[0].index, "flat" if product == "hnsw" else "hnsw": other}
        row["hnsw_build_s"] = row["write_s"] if product == "hnsw" else round(time.perf_counter() - t0, 2)
        probes = np.vstack([query_vectors, grow_vectors(base_vectors, 200, rng)])
        _, truth = indexes["flat"].search(probes, 5)
        _, found = indexes["hnsw"].search(probes, 5)
        row["hnsw_recall_at_5"] = round(float(np.mean([len(set(a) & set(b)) / 5
                                                       for a, b in zip(found, truth, strict=True)])), 4)
        del vectors, texts, chunks
        row.update(_scale_child("load", store.directory))
        retriever = Retriever(LocalIndex(state), embedder)
        for kind, index in indexes.items():
            # The top 50, as the retriever asks of FAISS before fusing.
            ms = _latencies(lambda q, i=index: i.search(q[None, :], 50), query_vectors, sizes.queries)
            row[f"faiss_{kind}_p95_ms"] = _percentile(ms, 95)
            state.segments[0].cache["index"] = index  # the same chunks and BM25 over the other index kind
            retriever.search(queries[0], 5)
            ms = _latencies(lambda q, r=retriever: r.search(q, 5), queries, sizes.queries)
            row[f"{kind}_p50_ms"], row[f"{kind}_p95_ms"] = _percentile(ms, 50), _percentile(ms, 95)
        del indexes, retriever, state, other
        row.update(_scale_child("update", store.directory))
        shutil.rmtree(store.directory)
        rows.append(row)
        print(f"[bench] {n:,} rows: hybrid p95 {row['flat_p95_ms']} ms exact, {row['hnsw_p95_ms']} ms HNSW "
              f"(recall@5 {row['hnsw_recall_at_5']}); load {row['load_s']} s, one-file update "
              f"{row['update_s']} s", file=sys.stderr, flush=True)

    at = max((r for r in rows if r["rows"] <= 100_000), key=lambda r: r["rows"], default=rows[0])
    kind = at["product_index"]
    within = [r["rows"] for r in rows if r["flat_p95_ms"] <= 50.0]
    summary = {"rows": rows, "hnsw_threshold": HNSW_THRESHOLD,
               "exact_within_50ms_up_to": max(within, default=0)}
    latency = figure(
        f"retrieval p95, hybrid k=5, {at['rows']:,} rows", at[f"{kind}_p95_ms"], "ms", "<=", 50.0,
        f"p50 {at[f'{kind}_p50_ms']} ms; {sizes.queries} queries, query embedding included, on the "
        f"{kind} index the product uses at this size; all sizes below", rows=at["rows"])
    load = figure(
        f"index load, {at['rows']:,} rows", at["load_s"], "s", "<=", 1.0,
        f"a new process: Store.load (checksums, FAISS, postings) and the first hybrid candidate search; "
        f"peak memory {at['load_peak_mb']} MB; all sizes below", rows=at["rows"])
    big = rows[-1]
    update = figure(
        f"one-file update, {big['rows']:,} rows", big["update_s"], "s", "<=", 1.0,
        f"a new process: read the manifest and commit one document's 10 new chunks (scan and embedding "
        f"excluded); peak memory {big['update_peak_mb']} MB; all sizes below", rows=big["rows"])
    return latency, load, update, summary


SCALE_CHILD = """
import json, re, sys, time
from pathlib import Path
import numpy as np
import faiss  # imported before the clock starts, as a running app has it
from rag.records import Chunk
from rag.index.retrieve import LocalIndex
from rag.index.store import Store
what, directory = sys.argv[1], Path(sys.argv[2])
store = Store(directory)
t0 = time.perf_counter()
if what == "load":
    index = LocalIndex(store.load())
    index.candidates("How do I encode bytes with Base64?", index.state.vector(0), 50)
else:
    with store.lock():
        _, manifest = store.read_manifest()
        texts = [f"Edited part {k}: the synthetic document now says something new." for k in range(10)]
        chunks = [Chunk(f"synthetic-0#{k}", "synthetic-0", t, 0, len(t)) for k, t in enumerate(texts)]
        vectors = np.eye(10, manifest["dim"], dtype=np.float32)
        documents = {**manifest["documents"], "synthetic-0": {"path": "synthetic-0", "sha256": "edited",
                                                              "chunks": 10, "pages": 1}}
        store.write(chunks, vectors, {**manifest, "documents": documents})
seconds = time.perf_counter() - t0
peak = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024 / 1e6
print(json.dumps({f"{what}_s": round(seconds, 3), f"{what}_peak_mb": round(peak, 1)}))
"""


def _scale_child(what: str, directory: Path) -> dict:
    """Load the index at `directory`, or commit a one-file update to it, in a new process; time and peak."""
    done = subprocess.run([sys.executable, "-c", SCALE_CHILD, what, str(directory)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=1800, cwd=PROJECT_ROOT)
    if done.returncode:
        raise RagError(f"the {what} child failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def grow_vectors(base, n: int, rng):
    """`n` unit vectors scattered around the corpus's own chunk vectors, so they cluster like real ones."""
    import numpy as np

    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(n, start + 100_000))
        noise = rng.standard_normal((len(rows), base.shape[1]), dtype=np.float32)
        block = base[rows % len(base)] + 0.03 * noise
        out[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def bench_generation(settings: Settings, embedder, sizes: Sizes, report: dict) -> tuple[dict, dict, dict]:
    """Every installed tier (the smallest in --tiny) through the pipeline and raw; then, on the default tier,
    the thread count and n_batch prompt processing runs fastest with.

    The figures are the default tier's; report["tiers"] has a row per tier, and the speeds are stored
    for `rag models` (not from --tiny, whose answers are too short to time).
    """
    from ..answer.models import record_speed

    tiers = installed_tiers(1 if sizes.name == "tiny" else None)
    if not tiers:
        raise RagError("no model tier is installed: run `rag models install`")
    default = settings.model or DEFAULT_TIER
    default = default if default in tiers else tiers[0]
    rows, messages = {}, []
    for tier in tiers:
        print(f"[bench] generation: {tier}", file=sys.stderr, flush=True)
        rows[tier], last = bench_tier(settings.replace(model=tier), embedder, QUESTIONS[: sizes.questions],
                                      WARMUP_QUESTION)
        target = TTFT_TARGETS.get(tier, TTFT_TARGETS[""])
        rows[tier].update(ttft_target_s=target, ttft_met=rows[tier]["ttft_p50_s"] <= target)
        if tier == default:
            messages = last
        if sizes.name != "tiny":
            record_speed(tier, {"decode_tok_s": rows[tier]["pipeline_decode_tok_s"],
                                "prompt_tok_s": rows[tier]["pipeline_prompt_tok_s"],
                                "ttft_p50_s": rows[tier]["ttft_p50_s"], "answer_s": rows[tier]["answer_s"]})
    report["tiers"] = rows
    print(f"[bench] threads and n_batch: {default}", file=sys.stderr, flush=True)
    report["sweep"] = sweep_threads_and_batch(settings.replace(model=default), messages, *SWEEPS[sizes.name])
    row = rows[default]
    ttft = figure(
        f"time to first token ({default})", row["ttft_p50_s"], "s", "<=", row["ttft_target_s"],
        f"p50 of {row['answers']} questions (p95 {row['ttft_p95_s']} s), k={row['k']}, "
        f"{row['prompt_tokens']:g} prompt tokens per answer (counted from the messages sent), retrieval "
        f"included, models loaded, no prompt cache; warm, with the fixed prefix cached as in a running app: "
        f"p50 {row['warm_ttft_p50_s']} s, {row['warm_prompt_evaluated']} tokens processed", tier=default)
    decode = figure(
        f"decode speed ({default})", row["decode_ratio"], "× raw", ">=", 0.9,
        f"pipeline {row['pipeline_decode_tok_s']} tokens/s ÷ raw llama-cpp-python {row['raw_decode_tok_s']} "
        f"tokens/s, same messages, up to {settings.max_tokens} tokens; median of {row['answers']}", tier=default)
    prompt = figure(
        f"prompt speed ({default})", row["prompt_ratio"], "× raw", ">=", 0.9,
        f"pipeline {row['pipeline_prompt_tok_s']} tokens/s ÷ raw {row['raw_prompt_tok_s']} tokens/s over "
        f"{row['prompt_tokens']:g} prompt tokens; median of {row['answers']}", tier=default)
    report["warm"] = [
        figure(f"warm time to first token ({default})", row["warm_ttft_p50_s"], "s", "<=", 2.0,
               f"p50 of {row['answers']} questions in a running app (fixed prefix from the KV cache), "
               f"{row['warm_prompt_evaluated']} prompt tokens processed", tier=default),
        figure(f"warm seconds per answer ({default})", row["warm_answer_p50_s"], "s", "<=", 6.0,
               f"p50 (p95 {row['warm_answer_p95_s']} s) of whole answers, retrieval, generation and the support "
               f"check ({row['warm_check_evaluated']} tokens processed, the rest from the KV cache)", tier=default)]
    return ttft, decode, prompt


# --- helpers and the report ---------------------------------------------------------------------
def _latencies(call, items, count: int) -> list[float]:
    """Milliseconds of `call(item)` for `count` items, cycling through `items`."""
    ms = []
    for i in range(count):
        t0 = time.perf_counter()
        call(items[i % len(items)])
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def _percentile(values: list[float], pct: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, pct)), 2)
