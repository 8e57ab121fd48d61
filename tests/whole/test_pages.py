"""A cited PDF page rendered with the cited sentence boxed (pypdfium2 and fpdf, no model)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from rag.errors import BadInput
from rag.whole.pages import find_quote, render_cited_page

LINES = ["The first page speaks of apples and nothing else.",
         "The board met on 3 May. The standard tariff rises to 2.18 euros per cubic metre.",
         "A closing line about pears."]


@pytest.fixture
def pdf(tmp_path):
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.set_font("Helvetica", size=12)
    doc.multi_cell(w=0, text=LINES[0])
    doc.add_page()
    doc.set_font("Helvetica", size=12)
    for line in LINES[1:]:
        doc.multi_cell(w=0, text=line)
        doc.ln(20)
    path = tmp_path / "notes.pdf"
    doc.output(str(path))
    return path


def highlighted(png: bytes, box) -> bool:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    left, top, right, bottom = box
    return image.getpixel((left, (top + bottom) // 2)) != (255, 255, 255) and image.size[0] > right


def test_the_cited_sentence_is_boxed_on_its_page_and_nothing_else(pdf):
    tariff = render_cited_page(pdf, 2, "The standard tariff rises to 2.18 euros per cubic metre.")
    pears = render_cited_page(pdf, 2, "A closing line about pears.")
    assert tariff.page == 2 and tariff.png.startswith(b"\x89PNG")
    assert len(tariff.boxes) == 1 and len(pears.boxes) == 1
    (t_left, _, _, t_bottom), (p_left, p_top, _, _) = tariff.boxes[0], pears.boxes[0]
    # The tariff sentence starts after "The board met on 3 May." on its line; the pears line is lower.
    assert t_left > p_left + 50 and p_top > t_bottom
    assert highlighted(tariff.png, tariff.boxes[0])


def test_a_quote_not_on_the_page_draws_no_box(pdf):
    assert render_cited_page(pdf, 1, "The standard tariff rises").boxes == ()


def test_a_page_outside_the_pdf_is_bad_input(pdf):
    with pytest.raises(BadInput, match="page 9 is not in the PDF"):
        render_cited_page(pdf, 9, "apples")


def test_quotes_are_found_whatever_the_spaces_and_quote_marks():
    text = "It’s  the\r\ntariff."
    assert text[find_quote(text, "It's the tariff").start] == "I"
    assert find_quote(text, "no such words") is None


def test_words_are_found_across_line_breaks_and_quote_marks():
    from rag.whole.pages import find_words

    words = ["It’s", "the", "tariff,", "not", "the", "fee."]
    assert find_words(words, "It's the tariff, not") == range(0, 4)
    assert find_words(words, "the fee.") == range(4, 6)
    assert find_words(words, "tariff fee") is None


SCANNED = Path(__file__).resolve().parents[2] / "eval" / "scans" / "corpus" / "field-notes.pdf"


@pytest.mark.skipif(not shutil.which("tesseract"), reason="tesseract is installed by `make test`")
def test_on_a_scanned_page_the_cited_words_tesseract_reads_are_boxed_and_no_others():
    # The scanned page has no text layer; its sentences as the index holds them (eval/scans/dataset.jsonl).
    camp = render_cited_page(SCANNED, 1, "The camp was named Basecamp Osprey after the")
    leader = render_cited_page(SCANNED, 1, "The leader of the expedition was Dr. Ingrid Halvorsen")
    assert len(camp.boxes) == 1 and len(leader.boxes) == 1
    (c_left, _, _, c_bottom), (l_left, l_top, _, _) = camp.boxes[0], leader.boxes[0]
    # "The camp ..." starts mid-line after "camp beside the Harrow stream."; the leader's line is lower.
    assert c_left > l_left + 100 and l_top > c_bottom
    assert highlighted(camp.png, camp.boxes[0])
    assert render_cited_page(SCANNED, 1, "words that are on no page at all").boxes == ()


@pytest.mark.skipif(not shutil.which("tesseract"), reason="tesseract is installed by `make test`")
def test_a_scanned_pages_words_are_read_once_for_every_quote_shown_on_it(monkeypatch):
    import rag.documents.ocr as ocr
    import rag.whole.pages as pages

    calls = []
    real = ocr.ocr_words
    monkeypatch.setattr(ocr, "ocr_words", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(pages, "_WORDS", {})
    first = render_cited_page(SCANNED, 1, "The camp was named Basecamp Osprey after the")
    second = render_cited_page(SCANNED, 1, "The leader of the expedition was Dr. Ingrid Halvorsen")
    assert first.boxes and second.boxes and len(calls) == 1
