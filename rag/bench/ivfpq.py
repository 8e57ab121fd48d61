"""Past a million chunks: FAISS IVF-PQ with its inverted lists on disk, measured (docs/scale-10m.md).

Not the product's index (that is `segments.make_faiss_index`: exact, then HNSW): this is the
measured point behind the 10M design. The vectors are the scale bench's synthetic ones (no model).
Built the way a 10M index would be, so memory stays bounded: train on a sample, add the vectors in
shards written to disk, merge the shards' lists into one `OnDiskInvertedLists` file
(`faiss.contrib.ondisk.merge_ondisk`), then a new process opens it (the lists are memory-mapped)
and searches. Recall@10 is against exact inner product, without and with re-ranking the top 100 by
the exact fp32 vectors read from a memory-mapped file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

NLIST = 4096  # coarse cells at most: about 4 x sqrt(N), a power of two, for N in the low millions
PQ_M = 48  # sub-quantizers of 8 bits: 48 bytes a vector (384 dims, 8 per sub-quantizer)
NPROBE = (16, 64)
RERANK = 100
TRAIN = 150_000
SHARD = 500_000


def bench_ivfpq_section(rows: int, work: Path, queries: int) -> dict:
    """The scale report's section for IVF-PQ at `rows` vectors."""
    t0 = time.perf_counter()
    section = {"rows": rows, "load_average_start": [round(x, 2) for x in os.getloadavg()],
               "synthetic": "vectors (clustered unit vectors); no embedding model",
               "ivfpq": bench_ivfpq(rows, work / "ivfpq", queries)}
    section["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    section["seconds"] = round(time.perf_counter() - t0, 1)
    return section


def bench_ivfpq(rows: int, work: Path, queries: int = 200, seed: int = 20261130) -> dict:
    """Build IVF-PQ on disk for `rows` synthetic vectors; time, size, load, memory, latency, recall."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    from .synthetic import progress as _progress
    from .synthetic import synthesize

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = synthesize(rows, queries, seed=seed, texts=False)
    vectors = data.vectors
    nlist = int(min(NLIST, 2 ** round(np.log2(4 * np.sqrt(rows)))))
    out = {"rows": rows, "nlist": nlist, "pq_bytes": PQ_M, "synthesize_s": round(time.perf_counter() - t0, 1)}
    np.save(work / "vectors.npy", vectors)  # the fp32 vectors the re-ranking reads from disk
    np.save(work / "queries.npy", data.query_vectors)

    t0 = time.perf_counter()
    index = faiss.index_factory(vectors.shape[1], f"IVF{nlist},PQ{PQ_M}np", faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(seed).choice(rows, min(TRAIN, rows), replace=False)]
    index.train(sample)
    out["train_s"] = round(time.perf_counter() - t0, 1)
    faiss.write_index(index, str(work / "trained.index"))
    _progress(f"IVF-PQ {rows:,}: trained in {out['train_s']} s")
    t0 = time.perf_counter()
    shards = []
    for start in range(0, rows, SHARD):
        shard = faiss.read_index(str(work / "trained.index"))
        stop = min(rows, start + SHARD)
        shard.add_with_ids(vectors[start:stop], np.arange(start, stop, dtype=np.int64))
        shards.append(str(work / f"shard-{start // SHARD}.index"))
        faiss.write_index(shard, shards[-1])
        del shard
    merged = faiss.read_index(str(work / "trained.index"))
    merge_ondisk(merged, shards, str(work / "lists.ivfdata"))
    faiss.write_index(merged, str(work / "populated.index"))
    for name in shards:
        os.remove(name)
    out["add_s"] = round(time.perf_counter() - t0, 1)
    out["build_s"] = round(out["train_s"] + out["add_s"], 1)
    out["lists_mb"] = round((work / "lists.ivfdata").stat().st_size / 1e6, 1)
    out["index_file_mb"] = round((work / "populated.index").stat().st_size / 1e6, 1)
    out["vectors_file_mb"] = round((work / "vectors.npy").stat().st_size / 1e6, 1)
    _progress(f"IVF-PQ {rows:,}: built in {out['build_s']} s; lists {out['lists_mb']} MB on disk")

    truth = _exact(vectors, data.query_vectors, 10)
    np.save(work / "truth.npy", truth)
    del vectors, data, merged
    out.update(_search_child(work))
    return out


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The exact top-`k` rows by inner product, in blocks (no second copy of the vectors)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), 200_000):
        sims = queries @ vectors[start:start + 200_000].T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best_s = np.hstack([best_s, np.take_along_axis(sims, top, 1)])
        best_i = np.hstack([best_i, top + start])
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


CHILD = """
import json, sys
from rag.bench.ivfpq import search_child
print(json.dumps(search_child(sys.argv[1])))
"""


def search_child(work: str) -> dict:
    """In a new process: open the on-disk index, then search one query at a time at each nprobe."""
    import faiss
    import psutil

    from .synthetic import recall

    work_dir = Path(work)
    t0 = time.perf_counter()
    index = faiss.read_index(str(work_dir / "populated.index"))
    vectors = np.load(work_dir / "vectors.npy", mmap_mode="r")
    queries, truth = np.load(work_dir / "queries.npy"), np.load(work_dir / "truth.npy")
    index.nprobe = NPROBE[0]
    index.search(queries[:1], 10)
    out = {"load_s": round(time.perf_counter() - t0, 3),
           "load_rss_mb": round(psutil.Process().memory_info().rss / 1e6, 1)}
    for nprobe in NPROBE:
        index.nprobe = nprobe
        for rerank in (False, True):
            ms, found = [], []
            for q in queries:
                t0 = time.perf_counter()
                _, ids = index.search(q[None, :], RERANK if rerank else 10)
                ids = ids[0][ids[0] >= 0]
                if rerank:
                    exact = np.asarray(vectors[np.sort(ids)]) @ q
                    ids = np.sort(ids)[np.argsort(-exact)[:10]]
                found.append(list(ids[:10]))
                ms.append((time.perf_counter() - t0) * 1000)
            key = f"nprobe{nprobe}" + ("_rerank" if rerank else "")
            out[f"{key}_p50_ms"] = round(float(np.percentile(ms, 50)), 2)
            out[f"{key}_p95_ms"] = round(float(np.percentile(ms, 95)), 2)
            out[f"{key}_recall_at_10"] = recall(found, truth, 10)
    out["rss_after_searches_mb"] = round(psutil.Process().memory_info().rss / 1e6, 1)
    return out


def _search_child(work: Path) -> dict:
    from .synthetic import run_child

    return run_child(CHILD, str(work), what="IVF-PQ search")
