"""The Summarize tab's Compare, with the fake embedder and generator: the wiring to `Pipeline.compare`, the
findings under their headings with each side linked to its own document's source, and escaping."""

from __future__ import annotations

import re

import gradio as gr
import pytest

import app
from rag.ui.compare import compare_events

OLD = "The licence allows copying. The licence was published in 1991. Warranty is disclaimed in full."
NEW = "The licence allows copying. The licence was published in 2007. It adds a patent grant to every user."
EVIL = '<img src=x onerror="alert(1)">.txt'
SUMMARIES = ("The licence allows copying [1]. The licence was published in 1991 [1]. Warranty is disclaimed in "
             "full [1].", "The licence allows copying [1]. The licence was published in 2007 [1]. It adds a patent "
             "grant to every user [1].")


@pytest.fixture
def two_versions(fake_pipeline):
    fake_pipeline.add_documents([("v1.txt", OLD.encode()), (EVIL, NEW.encode())])
    fake_pipeline.generator.replies.extend(SUMMARIES)
    return fake_pipeline


def test_compare_streams_both_summaries_then_the_cited_findings(two_versions):
    shown = list(compare_events(app.Backend(two_versions), "v1.txt", EVIL, "", None))
    assert any("<progress" in s for s in shown[:-1]) and "Comparing…" in shown[-2]
    out = shown[-1]
    assert "<img" not in out and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.txt" in out
    assert [re.sub(r" \(\d+\)", "", h) for h in re.findall(r"<h4[^>]*>([^<]*)</h4>", out)] == [
        "Both say", "They differ", "Only one says"]
    assert "Both say (1)" in out and "They differ (1)" in out and "Only one says (2)" in out
    # Every side links to a source entry of its own document.
    sources = dict(re.findall(r'<details class="rag-source" id="cmp-(\d+)"><summary>\[\d+\] ([^<]*)</summary>', out))
    sides = re.findall(r'<strong>([^<]*)</strong>: [^<]* <a class="cite" href="#cmp-(\d+)">', out)
    assert len(sides) == 6 and all(sources[n] == doc for doc, n in sides)
    assert "The licence was published in 2007." in out and "1991" in out


def test_compare_needs_two_different_indexed_documents_and_says_so_in_one_line(two_versions):
    backend = app.Backend(two_versions)
    with pytest.raises(gr.Error, match="Choose two documents"):
        list(compare_events(backend, "v1.txt", None, "", None))
    with pytest.raises(gr.Error, match="two different documents") as caught:
        list(compare_events(backend, "v1.txt", "v1.txt", "", None))
    assert "\n" not in caught.value.message


def test_the_compare_parts_are_in_the_summarize_tab(fake_pipeline):
    blocks = app.build_app(fake_pipeline)
    ids = {c.get("props", {}).get("elem_id") for c in blocks.config["components"]}
    assert {"compare", "compare-a", "compare-b", "compare-about", "compare-stop", "comparison"} <= ids
