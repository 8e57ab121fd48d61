"""The UI's Summarize tab, the cited PDF page in the sources panel and the file route, with fakes."""

from __future__ import annotations

import gradio as gr
import httpx
import pytest
from conftest import serving_app
from test_summarize import TRUE_NUMBER

import app
from rag.records import Citation
from rag.whole.summarize import Point, Summary
from rag.whole.ui import cited_pages_html, file_link, summarize_events, summary_html

EVIL_DOC = '<img src=x onerror="alert(1)">.txt'
EVIL_TEXT = "Intro <script>alert(1)</script> the treaty was signed by 14 countries. End"


@pytest.fixture
def with_pdf(fake_pipeline, corpus_copy):
    """The fake pipeline with a two-page text PDF indexed too."""
    from fpdf import FPDF

    pdf = FPDF()
    for text in ("The first page speaks of apples.", "The board met in May. The tariff rises to 2.18 euros."):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(w=0, text=text)
    pdf.output(str(corpus_copy / "notes.pdf"))
    fake_pipeline.index([corpus_copy])
    return fake_pipeline


def test_the_summary_is_escaped_and_each_marker_links_its_source():
    start = EVIL_TEXT.index("the treaty")
    passage = Citation(1, EVIL_DOC, None, 0, len(EVIL_TEXT), EVIL_TEXT)
    point = Point("The treaty <b>was</b> signed by 14 countries.", passage, (start, start + 40))
    out = summary_html(Summary(EVIL_DOC, "short", (point,), True,
                               {"verified": 1, "sentences_chosen": 1, "dropped": 0, "seconds": 3}))
    assert "<script" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;b&gt;was&lt;/b&gt;" in out and "&lt;script&gt;" in out
    assert 'href="#sum-1">[1]</a>.' in out and 'id="sum-1"' in out
    assert "<mark>the treaty was signed by 14 countries." in out


def test_the_summarize_tab_is_in_the_app(fake_pipeline):
    blocks = app.build_app(fake_pipeline)
    ids = {c.get("props", {}).get("elem_id") for c in blocks.config["components"]}
    assert {"summarize", "summarize-doc", "summarize-stop", "summary"} <= ids


def test_summarize_streams_the_time_progress_and_the_verified_summary(fake_pipeline):
    fake_pipeline.generator.replies = [str(TRUE_NUMBER), "none"]
    shown = list(summarize_events(app.Backend(fake_pipeline), "global-backing-for-china-ai-governance.txt",
                                  "short", None))
    assert shown[0].startswith("<p>Summarizing global-backing-for-china-ai-governance.txt: 2 part(s)")
    assert "<progress" in shown[1] and "1 of 2 steps" in shown[1] and "substantial international" in shown[1]
    assert "substantial international support" in shown[-1]
    assert "1 of the 1 sentences chosen from the document verified" in shown[-1]


def test_summarize_of_an_unknown_document_is_an_error_toast(fake_pipeline):
    with pytest.raises(gr.Error, match="no indexed document"):
        list(summarize_events(app.Backend(fake_pipeline), "missing.txt", "short", None))


def test_a_pdf_citation_shows_its_page_with_the_sentence_boxed_and_a_link_to_that_page(with_pdf):
    doc = with_pdf.source("notes.pdf")
    passage = next(p for p in doc.passages if p.page == 2)
    start = passage.start + passage.text.index("The tariff")
    cited = Citation(3, "notes.pdf", 2, passage.start, passage.end, passage.text, (start, passage.end))
    out = cited_pages_html(with_pdf, [cited, Citation(1, "a.txt", None, 0, 3, "abc")])
    assert out.count("data:image/png;base64,") == 1
    assert 'href="/rag/file?doc=notes.pdf&amp;collection=#page=2"' in out
    assert "not in the page&#x27;s text layer" not in out


def test_a_file_link_escapes_the_name():
    assert file_link('a"<b>.pdf', "", 3) == "/rag/file?doc=a%22%3Cb%3E.pdf&amp;collection=#page=3"


def test_the_file_route_serves_only_indexed_pdfs(with_pdf):
    with serving_app(with_pdf) as url:
        ok = httpx.get(url + "rag/file", params={"doc": "notes.pdf"}, timeout=30)
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/pdf"
        assert ok.content.startswith(b"%PDF")
        for doc in ("../corpus/notes.pdf", str(with_pdf.source("notes.pdf").document.path),
                    "xi-global-ai-collaboration.txt"):
            assert httpx.get(url + "rag/file", params={"doc": doc}, timeout=30).status_code == 404
