"""Tiny files that describe a lot of work: a page listed thousands of times, a page of compressed text,
an ODT cell repeated 2,500 times. Each is read once, or stopped while it is counted (issue 26, items 1-3).

The files are made here, a few KB each, as raw PDF bytes or with odfpy.
"""

from __future__ import annotations

import os
import tracemalloc
import zlib
from pathlib import Path

import pytest
from test_hostile_files import GOOD, fake_pipeline, folder_with, pdf_listing_one_page, raw_pdf, text_op

from rag.documents.ingest import ReadLimits, read_document
from rag.documents.isolation import IsolatedReader
from rag.errors import BadInput, UnreadableDocument

TEXT = b"Zorblax festival notes. " * 2_000  # 48,000 characters of text on one page


# --- PDFs ---------------------------------------------------------------------------------------------
def pdf_of_pages(pages: list[tuple[int, int]], streams: list[bytes], listed: list[int] | None = None) -> bytes:
    """A PDF of page objects; page i draws content stream `pages[i][0]` with resources `pages[i][1]`;
    its page tree lists the pages `listed` (each once, in order, by default).

    Objects: 1 catalog, 2 page tree, 3 font, 4 image, 5 resources (font), 6 resources (image),
    then the streams, then the pages.
    """
    first_stream, first_page = 7, 7 + len(streams)
    listed = range(len(pages)) if listed is None else listed
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in listed)
    pixels = bytes(range(64)) * 16  # a 32 x 32 grey image
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%b] >>" % (len(listed), kids),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width 32 /Height 32 /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Length %d >>\nstream\n%b\nendstream" % (len(pixels), pixels),
        b"<< /Font << /F1 3 0 R >> >>",
        b"<< /XObject << /Im1 4 0 R >> >>",
    ]
    for content in streams:
        packed = zlib.compress(content, 9)
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%b\nendstream" % (len(packed), packed))
    for stream, resources in pages:
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources %d 0 R /Contents %d 0 R >>"
                       % (resources, first_stream + stream))
    return raw_pdf(*objects)


def drawing_the_image(variant: int) -> bytes:
    """A content stream that draws the image over the page; `variant` makes each stream a distinct object."""
    return b"q 612 0 0 792 0 0 cm /Im1 Do Q %% %d" % variant


def test_a_page_listed_forty_times_is_read_and_indexed_once_and_keeps_its_page_count():
    data = pdf_listing_one_page(40, text_op(TEXT))  # about 1 KB
    doc = read_document(Path("reuse.pdf"), "reuse.pdf", data)
    assert len(doc.pages) == 40
    assert doc.text.count("Zorblax") == 2_000  # 80,000 before: the page's text once per listing


def test_distinct_pages_drawing_one_content_stream_are_read_once():
    data = pdf_of_pages([(0, 5)] * 30, [text_op(TEXT)])
    doc = read_document(Path("shared.pdf"), "shared.pdf", data)
    assert len(doc.pages) == 30 and doc.text.count("Zorblax") == 2_000


def test_an_upload_may_yield_text_in_proportion_to_its_size_while_rag_index_reads_it_whole(tmp_path):
    page = text_op(b"Zorblax " * 50_000)  # 400,000 characters from a file of about 1 KB
    data = pdf_listing_one_page(1, page)
    assert len(read_document(Path("dense.pdf"), "dense.pdf", data).text) > 390_000
    pipeline = fake_pipeline(tmp_path)
    pipeline.index([folder_with(tmp_path, {})])
    with pytest.raises(BadInput, match=r"^dense\.pdf: more than 100,000 characters of text \(upload_text_ratio\)$"):
        pipeline.add_documents([("dense.pdf", data)])
    assert not pipeline.uploads_dir.exists()


def test_the_files_of_one_upload_share_one_text_budget(tmp_path):
    pipeline = fake_pipeline(tmp_path, max_upload_chars=100_000)
    pipeline.index([folder_with(tmp_path, {})])
    notes = [(f"notes-{i}.txt", (GOOD + "\n") * 700) for i in range(3)]  # 45,500 characters each
    with pytest.raises(BadInput, match=r"^notes-2\.txt: the files of this upload hold more than 100,000 "):
        pipeline.add_documents([(name, text.encode()) for name, text in notes])
    assert not pipeline.uploads_dir.exists()
    report = pipeline.add_documents([(name, text.encode()) for name, text in notes[:2]])
    assert set(report.added) == {"notes-0.txt", "notes-1.txt"}


@pytest.fixture
def fake_tesseract(tmp_path, monkeypatch) -> Path:
    """A `tesseract` on PATH that logs each call and reads every image as one line of text."""
    folder, log = tmp_path / "bin", tmp_path / "tesseract-calls"
    folder.mkdir()
    script = folder / "tesseract"
    script.write_text(f'#!/bin/sh\necho "$$" >> {log}\ncat > /dev/null\necho "Scanned Zorblax page."\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    log.write_text("")
    return log


def ocr_calls(log: Path) -> int:
    return len(log.read_text().splitlines())


@pytest.mark.timeout(120)
def test_an_image_page_listed_300_times_is_read_by_ocr_once(tmp_path, fake_tesseract):
    data = pdf_of_pages([(0, 6)], [drawing_the_image(0)], listed=[0] * 300)
    with IsolatedReader(ReadLimits(ocr_cache=str(tmp_path / "ocr"))) as reader:
        doc = reader.read(Path("scan.pdf"), "scan.pdf", data)
    assert len(doc.pages) == 300 and doc.text.count("Scanned Zorblax page.") == 1
    assert ocr_calls(fake_tesseract) == 1  # 300 before, about 1.5 s each with the real tesseract


@pytest.mark.timeout(120)
def test_distinct_pages_that_render_the_same_image_are_read_by_ocr_once(tmp_path, fake_tesseract):
    data = pdf_of_pages([(i, 6) for i in range(8)], [drawing_the_image(i) for i in range(8)])
    with IsolatedReader(ReadLimits()) as reader:
        doc = reader.read(Path("scan.pdf"), "scan.pdf", data)
    assert doc.text.count("Scanned Zorblax page.") == 1 and ocr_calls(fake_tesseract) == 1


@pytest.mark.timeout(120)
def test_an_upload_with_more_scanned_pages_than_its_ocr_budget_is_refused_before_any_is_read(
        tmp_path, fake_tesseract):
    data = pdf_of_pages([(i, 6) for i in range(60)], [drawing_the_image(i) for i in range(60)])
    pipeline = fake_pipeline(tmp_path)
    pipeline.index([folder_with(tmp_path, {})])
    with pytest.raises(BadInput, match=r"^scans\.pdf: 60 scanned pages, more than the 50 that may be read by "
                                       r"OCR \(max_ocr_pages\)$"):
        pipeline.add_documents([("scans.pdf", data)])
    assert ocr_calls(fake_tesseract) == 0
    with pytest.raises(UnreadableDocument, match=r"more than the 59 that may be read"):
        read_document(Path("scans.pdf"), "scans.pdf", data, ReadLimits(max_ocr_pages=59))


# --- ODT -------------------------------------------------------------------------------------------------
def odt_with_repeats(cell_text: str, columns: int, rows: int, spaces: int = 0) -> bytes:
    """An ODT holding one table cell of `cell_text` repeated `columns` times in a row repeated `rows` times,
    and a paragraph holding one `<text:s text:c="spaces"/>`."""
    import io

    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableRow
    from odf.text import P, S

    document = OpenDocumentText()
    paragraph = P(text="Zorblax")
    if spaces:
        paragraph.addElement(S(c=spaces))
    document.text.addElement(paragraph)
    table = Table(name="T")
    row = TableRow(numberrowsrepeated=rows)
    cell = TableCell(numbercolumnsrepeated=columns)
    cell.addElement(P(text=cell_text))
    row.addElement(cell)
    table.addElement(row)
    document.text.addElement(table)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def peak_bytes_reading(data: bytes, limits: ReadLimits) -> tuple[int, str]:
    """The peak memory Python allocates while reading an ODT, and the reason it is refused."""
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableDocument) as refused:
            read_document(Path("repeat.odt"), "repeat.odt", data, limits)
        return tracemalloc.get_traced_memory()[1], str(refused.value)
    finally:
        tracemalloc.stop()


def test_an_odt_cell_repeated_2500_times_stops_at_the_limit_while_it_is_counted():
    data = odt_with_repeats("Zorblax " * 25_000, 50, 50)  # 200,000 characters, 2,500 times: 500 million
    assert len(data) < 10_000
    peak, reason = peak_bytes_reading(data, ReadLimits(max_pdf_chars=1_000_000))
    assert reason == "repeat.odt: more than 1,000,000 characters of text (max_pdf_chars)"
    assert peak < 40 * 2**20  # 500 MB of cell copies before


def test_an_odt_space_repeated_fifty_million_times_is_one_space():
    data = odt_with_repeats("cell", 1, 1, spaces=50_000_000)
    tracemalloc.start()
    try:
        doc = read_document(Path("spaces.odt"), "spaces.odt", data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert doc.text.startswith("Zorblax") and len(doc.text) < 100
    assert peak < 40 * 2**20  # 50 MB of spaces before (two billion fill the reader's whole gigabyte)


def test_an_uploaded_odt_may_yield_text_in_proportion_to_its_size(tmp_path):
    data = odt_with_repeats("Zorblax " * 1_000, 50, 50)  # 20 million characters described in a few KB
    pipeline = fake_pipeline(tmp_path)
    pipeline.index([folder_with(tmp_path, {})])
    with pytest.raises(BadInput, match=r"^repeat\.odt: more than 100,000 characters of text \(upload_text_ratio\)$"):
        pipeline.add_documents([("repeat.odt", data)])
