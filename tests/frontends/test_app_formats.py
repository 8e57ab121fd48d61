"""The UI names where a passage is (slide, sheet range, heading, page), escaped, and accepts Office uploads."""

from __future__ import annotations

import dataclasses

import pytest
from format_files import make_pptx
from test_app import abstained_answer, evil_answer

import app
from rag.errors import BadInput

EVIL_LOCATION = "'<img src=x onerror=alert(3)>'!A1:C5"


def test_the_sources_panel_shows_a_slide_next_to_the_document_name():
    answer = evil_answer()
    slide = dataclasses.replace(answer.citations[0], doc="zephyr.pptx", page=None, location="slide 4")
    out = app.sources_html(dataclasses.replace(answer, citations=(slide,)))
    assert '[1] zephyr.pptx <span class="rag-page">· slide 4</span></summary>' in out


def test_a_page_is_shown_when_there_is_no_location():
    assert '<span class="rag-page">· page 2</span>' in app.sources_html(evil_answer())


def test_a_location_from_a_document_is_escaped_in_the_sources_and_the_closest_passages():
    answer = evil_answer()
    sheet = dataclasses.replace(answer.citations[0], location=EVIL_LOCATION)
    out = app.sources_html(dataclasses.replace(answer, citations=(sheet,)))
    assert "&#x27;&lt;img src=x onerror=alert(3)&gt;&#x27;!A1:C5" in out and "alert(3)>" not in out
    abstained = abstained_answer()
    closest = dataclasses.replace(abstained.passages[0], location=EVIL_LOCATION)
    out = app.answer_html(dataclasses.replace(abstained, passages=(closest,)))
    assert "&lt;img src=x onerror=alert(3)&gt;" in out and "alert(3)>" not in out


def test_the_upload_accepts_the_office_and_ebook_types():
    assert {".docx", ".pptx", ".xlsx", ".odt", ".epub", ".rtf"} <= set(app.UPLOAD_TYPES)


def test_an_uploaded_slide_deck_is_indexed_and_found_on_its_slide(fake_pipeline, tmp_path):
    deck = make_pptx(tmp_path / "zephyr.pptx").read_bytes()
    fake_pipeline.add_documents([("zephyr.pptx", deck)])
    hits = fake_pipeline.search("When does the Zephyr lander launch from Kourou?", 5)
    assert ("zephyr.pptx", "slide 4") in {(h.chunk.doc_id, h.chunk.location) for h in hits}


def test_an_upload_of_a_legacy_binary_file_named_docx_is_refused_on_the_server(fake_pipeline):
    with pytest.raises(BadInput, match=r"old\.docx: a legacy binary Office file"):
        fake_pipeline.add_documents([("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000))])
