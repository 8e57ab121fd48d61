"""The benchmark harness, at its smallest sizes, so that it cannot rot."""

from __future__ import annotations

import json

import pytest

from rag.cli import main

FIGURES = {"indexing_throughput", "reindex_unchanged", "retrieval_latency", "time_to_first_token",
           "decode_speed", "prompt_speed", "cold_ask", "cold_search", "query_embedding", "peak_rss", "index_load",
           "one_file_update", "warm_first_token", "warm_answer", "embedding_speed"}


@pytest.mark.integration
def test_tiny_bench_writes_every_figure_with_a_positive_value(tmp_path, capsys):
    assert main(["bench", "--tiny", "--json", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == report
    assert set(report["figures"]) == FIGURES
    for name, figure in report["figures"].items():
        assert isinstance(figure["value"], float | int) and figure["value"] > 0, name
        assert isinstance(figure["met"], bool), name
    assert report["figures"]["reindex_unchanged"]["embedded"] == 0
    assert report["figures"]["reindex_unchanged"]["files"] == report["sizes"]["files"]
    assert report["machine"]["cores"] >= 1
    tier = report["figures"]["time_to_first_token"]["tier"]
    assert report["tiers"][tier]["prompt_tokens"] > 0 and report["tiers"][tier]["answers"] >= 1
    assert {(c["threads"], c["n_batch"]) for c in report["sweep"]["cells"]} == {(1, 64), (1, 512), (2, 64), (2, 512)}
    assert report["figures"]["cold_search"]["heavy_imports"] == []
    # A whole answer in a running app includes the support check, which processes only its own turn.
    assert report["tiers"][tier]["warm_check_evaluated"] is None or report["tiers"][tier]["warm_check_evaluated"] < 100
    assert report["figures"]["query_embedding"]["paths"]["rag ask / search / chat (one query)"] == "numpy"

    # The embedder table: today's fp32 and the default int8 on the same chunks, agreeing closely.
    table = report["embedders"]
    assert table["default"] in table["rows"] and "fp32, sentence-transformers (today)" in table["rows"]
    assert table["rows"][table["default"]]["embedder"] == "all-MiniLM-L6-v2 int8 (bundled)"
    assert 0.97 < table["rows"][table["default"]]["cosine_to_fp32"] < 1.0
    assert report["figures"]["embedding_speed"]["default"] == "all-MiniLM-L6-v2 int8 (bundled)"

    markdown = (tmp_path / "bench.md").read_text(encoding="utf-8")
    for figure in report["figures"].values():
        assert f"| {figure['label']} |" in markdown
    assert "## Embedders" in markdown


@pytest.mark.integration
def test_the_embedders_section_runs_alone(tmp_path, capsys):
    assert main(["bench", "--tiny", "--embedders", "--json", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert set(report["figures"]) == {"embedding_speed"}
    rows = report["embedders"]["rows"]
    assert all(row["chunks_per_s"] > 0 for row in rows.values())
    assert rows["fp32, sentence-transformers (today)"]["cosine_to_fp32"] == pytest.approx(1.0, abs=1e-5)
    assert "| int8, ONNX Runtime, one text per run |" in (tmp_path / "bench.md").read_text(encoding="utf-8")
