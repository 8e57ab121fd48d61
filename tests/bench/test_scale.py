"""The scale section of the bench (`rag bench --scale N`) at small sizes, so that it cannot rot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.bench.scale import EF_SWEEP, LEXICAL_BY_JOIN, LEXICAL_FROM_POSTINGS, bench_faiss, bench_postgres, markdown
from rag.bench.synthetic import synthesize
from rag.cli import main
from rag.index.pgstore import EF_SEARCH as PG_EF_SEARCH
from rag.index.segments import EF_SEARCH
from rag.text import content_terms

pytestmark = pytest.mark.integration  # real FAISS indexes, new processes, and a real PostgreSQL below


def test_the_synthetic_corpus_has_stopwords_a_zipf_head_and_clusters():
    data = synthesize(4000, 20, seed=1)
    assert len(data.texts) == len(data.vectors) == 4000 and data.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(data.vectors, axis=1), 1, atol=1e-5)
    terms = [set(content_terms(t)) for t in data.texts]
    assert 20 < np.mean([len(t) for t in terms]) < 60  # stopwords are dropped, as in real text
    df = {}
    for chunk in terms:
        for term in chunk:
            df[term] = df.get(term, 0) + 1
    counts = sorted(df.values(), reverse=True)
    assert counts[0] > 80 and counts[len(counts) // 2] < 10  # a head in 2% of chunks or more, a long tail
    # Vectors cluster: each query's best chunk is far closer than a random one.
    sims = data.query_vectors @ data.vectors.T
    assert np.median(sims.max(axis=1)) > 3 * np.median(np.abs(sims).mean(axis=1))
    assert synthesize(4000, 20, seed=1).texts == data.texts  # deterministic


def test_rag_bench_scale_reports_every_faiss_figure_and_an_update_that_rewrites_nothing(tmp_path, capsys):
    assert main(["bench", "--scale", "20000", "--scale-backend", "faiss", "--scale-queries", "30",
                 "--json", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "bench-scale.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == report
    faiss = report["scale"]["faiss"]
    assert faiss["rows"] == 20000 and faiss["index_type"] == "flat" and faiss["searches"] == 30
    for key in ("build_s", "load_s", "load_rss_mb", "update_s", "search_p50_ms", "search_p95_ms"):
        assert faiss[key] > 0, key
    assert faiss["recall_at_10"] == 1.0  # exact search below the HNSW threshold
    # One document's update writes a small segment and a generation, not the index again.
    assert 0 < faiss["update_written_mb"] < faiss["disk_mb"] / 5
    assert "| hybrid p95, ms |" in (tmp_path / "bench-scale.md").read_text(encoding="utf-8")


def test_hnsw_recall_is_measured_against_exact_search(tmp_path):
    data = synthesize(6000, 40, seed=2)
    out = bench_faiss(data, tmp_path, 40, hnsw_threshold=1000)
    assert out["index_type"] == "hnsw" and out["recall_index"] == "hnsw"
    assert 0.8 <= out["recall_at_10"] <= 1.0 and out["recall_queries"] == 40
    assert "tombstoned" in out["update_did"]
    # The efSearch sweep: the product's efSearch gives the recall above; a wider search finds at least as much.
    sweep = {s["ef_search"]: s for s in out["ef_sweep"]}
    assert list(sweep) == list(EF_SWEEP) and out["ef_search"] == EF_SEARCH
    assert sweep[EF_SEARCH]["recall_at_10"] == out["recall_at_10"]
    assert sweep[512]["recall_at_10"] >= sweep[64]["recall_at_10"]
    assert all(s["dense_p95_ms"] > 0 for s in sweep.values())
    text = markdown({"rows": 6000, "synthetic": "x", "load_average_start": [], "load_average_end": [], "faiss": out})
    assert "| recall@10 vs exact |" in text and "faiss dense search alone, by efSearch" in text


# The session's PostgreSQL server and a fresh database per test, from the pgstore tests.
from test_pgstore import cluster, pg_url  # noqa: E402, F401


def test_postgres_scale_figures_and_both_bm25_queries_agree(pg_url):  # noqa: F811 (the fixture)
    data = synthesize(3000, 30, seed=3)
    out = bench_postgres(data, pg_url, 30, hnsw_threshold=1000)
    assert out["index_type"] == "hnsw" and out["postings"] > 3000 * 20
    assert 0.8 <= out["recall_at_10"] <= 1.0
    sweep = {s["ef_search"]: s for s in out["ef_sweep"]}
    assert list(sweep) == list(EF_SWEEP) and sweep[PG_EF_SEARCH]["recall_at_10"] == out["recall_at_10"]
    assert sweep[512]["recall_at_10"] >= sweep[64]["recall_at_10"]
    for key in ("build_s", "load_s", "update_s", "search_p95_ms", "lexical_join_p95_ms", "lexical_postings_p95_ms"):
        assert out[key] > 0, key
    import psycopg

    with psycopg.connect(pg_url) as conn:
        for query in data.queries:
            terms = sorted(set(content_terms(query)))
            joined = conn.execute(LEXICAL_BY_JOIN, {"terms": terms, "pool": 50}).fetchall()
            assert joined and conn.execute(LEXICAL_FROM_POSTINGS, {"terms": terms, "pool": 50}).fetchall() == joined


def test_rag_bench_scale_ivfpq_puts_56_bytes_a_vector_on_disk_and_reranking_only_adds_recall(tmp_path, capsys):
    assert main(["bench", "--scale", "5000", "--scale-backend", "ivfpq", "--scale-queries", "20",
                 "--json", "--out", str(tmp_path)]) == 0

    ivf = json.loads((tmp_path / "bench-scale.json").read_text(encoding="utf-8"))["scale"]["ivfpq"]
    assert ivf["lists_mb"] == round(5000 * (48 + 8) / 1e6, 1)  # the arithmetic of docs/scale-10m.md
    for nprobe in (16, 64):
        # The exact re-ranking keeps every true neighbour among the PQ top 100: never fewer than PQ's top 10.
        assert ivf[f"nprobe{nprobe}_rerank_recall_at_10"] >= ivf[f"nprobe{nprobe}_recall_at_10"] > 0
    assert ivf["load_s"] > 0 and ivf["load_rss_mb"] > 0
    assert "| nprobe | re-rank top 100 |" in (tmp_path / "bench-scale.md").read_text(encoding="utf-8")
