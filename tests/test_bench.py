"""The benchmark harness, at its smallest sizes, so that it cannot rot."""

from __future__ import annotations

import json

import pytest

from rag.cli import main

FIGURES = {"indexing_throughput", "reindex_unchanged", "retrieval_latency", "time_to_first_token",
           "decode_speed", "cold_ask", "peak_rss", "index_load", "one_file_update"}


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

    markdown = (tmp_path / "bench.md").read_text(encoding="utf-8")
    for figure in report["figures"].values():
        assert f"| {figure['label']} |" in markdown
