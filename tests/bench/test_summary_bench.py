"""`rag bench --summary`: a summary's seconds per page against reading the document once, with fakes."""

from __future__ import annotations

import json

import pytest
from conftest import CORPUS, FakeEmbedder, FakeGenerator
from test_summarize import TRUE

from rag.bench import summaries
from rag.cli import main
from rag.config import Settings
from rag.pipeline import Pipeline

DOC = CORPUS / "global-backing-for-china-ai-governance.txt"


class SlowGenerator(FakeGenerator):
    """A fake model that takes 0.05 s a reply, so the summary's seconds are known to within the overhead."""

    def stream(self, messages, max_tokens=128, **options):
        import time

        time.sleep(0.05)
        yield from super().stream(messages, max_tokens)


def fake_pipeline_for(settings: Settings) -> Pipeline:
    return Pipeline(settings, embedder=FakeEmbedder(), generator=SlowGenerator(TRUE, ""))


def test_the_summary_row_is_seconds_per_page_against_the_documents_tokens_at_the_measured_speed(tmp_path):
    pipeline = fake_pipeline_for(Settings.load(index_dir=tmp_path / "index"))
    row = summaries.bench_summary(pipeline, DOC, tmp_path / "docs", speed=lambda gen, text: 1000.0)
    words = len(DOC.read_text(encoding="utf-8").split())
    assert row["document"] == DOC.name and row["unit"] == "500 words" and row["pages"] == round(words / 500, 2)
    assert row["document_tokens"] == pytest.approx(words, rel=0.02)  # the fake counts a token a word
    assert row["floor_s"] == pytest.approx(row["document_tokens"] / 1000, abs=0.01)
    assert row["model_calls"] == 2 and 0.1 <= row["seconds"] < 1.0  # two parts, 0.05 s each
    # The ratio is of the unrounded figures; seconds and floor are shown to 0.01 s, so compare in seconds.
    assert row["ratio"] * row["floor_s"] == pytest.approx(row["seconds"], abs=0.007)
    assert row["seconds_per_page"] == pytest.approx(row["seconds"] / row["pages"], abs=0.01)
    assert row["sentences_shown"] == 1 and row["written_tokens"] > 0 and len(row["step_seconds"]) == 2


def test_the_summary_section_runs_alone_and_reports_the_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(summaries, "open_pipeline", fake_pipeline_for)
    monkeypatch.setattr(summaries, "raw_prompt_speed", lambda gen, text: 50.0)
    assert main(["bench", "--summary", "--summary-doc", str(DOC), "--json", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == report
    assert set(report["figures"]) == {"summary_floor"} and set(report["phases"]) == {"summary"}
    f = report["figures"]["summary_floor"]
    assert f["value"] == report["summary"]["ratio"] > 0 and f["target"] == 1.5 and f["met"] is True
    assert report["summary"]["raw_prompt_tok_s"] == 50.0 and report["summary"]["tier"] in f["label"]
    markdown = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert f"| {f['label']} |" in markdown and "s per page" in markdown and DOC.name in markdown
