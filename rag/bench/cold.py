"""`rag bench`, new processes: cold `rag ask` and `rag search`, the embedding paths' costs, peak memory."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import PROJECT_ROOT
from ..errors import RagError
from .report import figure
from .tiers import installed_tiers

# Asked of the project's own corpus/ by the cold `rag ask` and by the peak-memory child.
CORPUS_QUESTION = "How many nations signed the Bletchley Declaration?"
FAST_TIER = "smollm2-135m"


def _rag_command() -> list[str]:
    rag = Path(sys.executable).with_name("rag")
    return [str(rag)] if rag.is_file() else [sys.executable, "-m", "rag.cli"]


def bench_cold_ask(env: dict, runs: int, work: Path, tier: str = "", target: float = 4.0,
                   exit_target: float | None = 6.0) -> dict:
    """A new `rag ask --json` process (the fast tier unless `tier` is named): seconds to its first token,
    to the answer, to exit.

    The first token is the answer's print time less what the answer's own timings say came after it.
    """
    tier = tier or (FAST_TIER if FAST_TIER in installed_tiers() else installed_tiers(1)[0])
    first, printed, exited = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryFile() as errors:
            t0 = time.perf_counter()
            proc = subprocess.Popen([*_rag_command(), "ask", "--json", "--model", tier, CORPUS_QUESTION],
                                    stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
                                    env={**env, "PYTHONUNBUFFERED": "1"}, cwd=work, text=True)
            line = proc.stdout.readline()
            printed.append(time.perf_counter() - t0)
            proc.stdout.read()
            proc.wait(timeout=600)
            exited.append(time.perf_counter() - t0)
            if proc.returncode or not line.strip():
                errors.seek(0)
                raise RagError(f"`rag ask` failed: {errors.read().decode(errors='replace')[-800:]}")
        answer = json.loads(line)
        timings = answer["timings_ms"]
        first.append(printed[-1] - (timings["total"] - timings.get("first_token", timings["total"])) / 1000)
    exit_s = statistics.median(exited)
    return figure(
        f"cold `rag ask` to first token ({tier})", statistics.median(first), "s", "<=", target,
        f"a new process until its first token; answer printed at {statistics.median(printed):.2f} s, "
        f"exit at {exit_s:.2f} s" + (f" (target {exit_target:g} s)" if exit_target else "") +
        f"; warm OS file cache, index of corpus/; median of {runs}",
        met_also=exit_target is None or exit_s <= exit_target, tier=tier, answer=answer["answer"],
        runs=[round(x, 3) for x in first],
        printed_s=[round(x, 3) for x in printed], exit_s=[round(x, 3) for x in exited])


COLD_CHILD = """
import sys, time
began = time.perf_counter()
from rag.cli import main
status = main(sys.argv[1:])
heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
print("BENCH", status, round(time.perf_counter() - began, 3), ",".join(heavy) or "-", file=sys.stderr)
"""


def bench_cold_search(env: dict, runs: int, work: Path) -> dict:
    """A new `rag search` process, start to exit, and whether it imported torch or transformers."""
    seconds, heavy = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", COLD_CHILD, "search", "-k", "4", CORPUS_QUESTION], env=env,
                              cwd=work, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        seconds.append(time.perf_counter() - t0)
        words = done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []
        if done.returncode or words[:2] != ["BENCH", "0"]:
            raise RagError(f"`rag search` failed: {done.stderr[-800:]}")
        heavy |= set(words[3].split(",")) - {"-"}
    return figure("cold `rag search`", statistics.median(seconds), "s", "<=", 2.0,
                   f"a new process from start to exit, k=4, index of corpus/; imported "
                   f"{', '.join(sorted(heavy)) or 'neither torch nor transformers'}; median of {runs}",
                   met_also=not heavy, heavy_imports=sorted(heavy), runs=[round(x, 3) for x in seconds])


EMBED_CHILD = """
import sys, time
began = time.perf_counter()
from rag.index.embed import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder(sys.argv[2])
model = embedder.numpy_model if sys.argv[1] == "numpy" else embedder.model
first = model.encode(["How many nations signed the Bletchley Declaration?"])
print(round(time.perf_counter() - began, 3))
"""


def bench_embedding_paths(embedder, texts: list[str], runs: int) -> dict:
    """Which path embeds what, and what each costs: a new process's import and first query, and chunks/s."""
    from ..index.embed import BULK_TEXTS, NUMPY, SentenceTransformerEmbedder

    cold = {}
    for path in (NUMPY, "sentence-transformers"):
        times = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", EMBED_CHILD, path, embedder.source], capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL, timeout=300)
            if done.returncode:
                raise RagError(f"the embedding child failed: {done.stderr[-800:]}")
            times.append(float(done.stdout.split()[-1]))
        cold[path] = statistics.median(times)
    rates = {}
    for path, encode in ((NUMPY, embedder.numpy_model.encode), ("sentence-transformers", embedder.model.encode)):
        t0 = time.perf_counter()
        encode(texts)
        rates[path] = len(texts) / (time.perf_counter() - t0)
    fresh = SentenceTransformerEmbedder(embedder.source)  # as in a new process: torch not loaded yet
    uses = {"rag ask / search / chat (one query)": fresh.path_for(1),
            "rag ask (question and its context's sentences)": fresh.path_for(40),
            f"rag index, up to {BULK_TEXTS} new chunks": fresh.path_for(BULK_TEXTS),
            f"rag index, more than {BULK_TEXTS} new chunks": fresh.path_for(BULK_TEXTS + 1)}
    return figure(
        "query embedding, cold", cold[NUMPY], "s", "<=", 1.0,
        f"a new process importing the embedder and embedding one question: numpy {cold[NUMPY]:.2f} s, "
        f"sentence-transformers {cold['sentence-transformers']:.2f} s; on {len(texts)} chunks numpy embeds "
        f"{rates[NUMPY]:.1f} chunks/s, sentence-transformers {rates['sentence-transformers']:.1f}; "
        f"median of {runs}", cold_s=cold, chunks_per_s=rates, paths=uses)


RSS_CHILD = """
import json, re, sys
from pathlib import Path
from rag.pipeline import Pipeline
root, question = sys.argv[1], sys.argv[2]
pipeline = Pipeline.from_settings()
pipeline.embedder.embed(["load the embedder"])
pipeline.generator
app = (Path(root) / "app.py").is_file()
if app:
    sys.path.insert(0, root)
    from app import build_app
    build_app(pipeline)
abstained = pipeline.ask(question).abstained
peak_kib = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"app": app, "abstained": abstained, "peak_kib": peak_kib}))
"""


def bench_peak_rss(env: dict, runs: int, work: Path, tier: str = "") -> dict:
    """Peak resident memory of a process with the pipeline, both models and the UI, after one answer
    (with the settings' model, or `tier`: `--tiny` takes the smallest, as for everything else).

    The child reports its own high-water mark (VmHWM). Its ru_maxrss, through wait4 or
    RUSAGE_CHILDREN, would not do: Linux carries the parent's resident size into the child's
    ru_maxrss at exec, and the bench itself holds both models by then.
    """
    peaks, child = [], {}
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", RSS_CHILD, str(PROJECT_ROOT), CORPUS_QUESTION],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={**env, "RAG_MODEL": tier} if tier else env, cwd=work, timeout=600)
        if done.returncode:
            raise RagError(f"the peak-memory child failed: {done.stderr[-800:]}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        peaks.append(child["peak_kib"] * 1024 / 1e6)
    what = "embedder, generator and app.build_app" if child["app"] else "embedder and generator (no app.py)"
    return figure("peak RSS", statistics.median(peaks), "MB", "<=", 2000.0,
                   f"VmHWM of a process with the {what}, after one answer; median of {runs}"
                   + (f"; the {tier} tier" if tier else ""),
                   app=child["app"], tier=tier or None, runs=[round(p, 1) for p in peaks])
