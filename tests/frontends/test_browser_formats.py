"""In Debian's chromium: a slide deck uploaded through the UI is cited by its slide, a workbook by its sheet range,
and a PDF by its page, shown in the sources panel with the cited sentence boxed: on a text PDF from its text
layer, on a scanned one over the words tesseract reads.

Set RAG_UPDATE_SCREENSHOT=1 to refresh docs/img/pdf-page.png from the cited PDF page.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urljoin

import pytest
from conftest import ROOT, running_app
from format_files import make_pptx, make_xlsx
from playwright.sync_api import expect
from test_browser import ANSWER_TIMEOUT_MS, ask, browser, open_page  # noqa: F401  (browser: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCANNED = ROOT / "eval" / "scans" / "corpus" / "field-notes.pdf"
MIME = {".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".pdf": "application/pdf"}
# The pixels of the highlight's outline (rag/whole/pages.py HIGHLIGHT) in the page image the browser shows.
HIGHLIGHT_PIXELS_JS = """
async (img) => {
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 245) < 4 && Math.abs(data[i + 1] - 158) < 4 && Math.abs(data[i + 2] - 11) < 4) count++;
  }
  return count;
}
"""


def make_report_pdf(path):
    """A two-page text PDF whose second page holds the fact asked about."""
    from fpdf import FPDF

    pages = [("Quillmoor Wetlands Survey 2029",
              "This report describes the spring survey of the Quillmoor wetlands. Volunteers walked the "
              "northern and eastern transects each morning for six weeks, recording every bird seen or heard."),
             ("Findings",
              "The water level stayed high until late May, and the southern meadows flooded twice. The survey "
              "counted 317 nesting grey herons along the eastern reed beds. Bitterns were heard on four mornings "
              "but never seen. Otters were recorded at the outflow twice, both times at dawn.\n\n"
              "Teal and wigeon left the open water in the second week of April, a fortnight earlier than in the "
              "2027 survey. Reed warblers arrived on 21 April and were singing along every transect by May.\n\n"
              "The volunteers recommend that the eastern reed beds stay closed to boats from March to July, and "
              "that the count be repeated in 2031 with the same transects and the same start times.")]
    pdf = FPDF()
    for title, text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.multi_cell(w=0, text=title)
        pdf.ln(4)
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(w=0, text=text)
    pdf.output(str(path))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder, real_generator):
    with running_app(tmp_path_factory.mktemp("browser-formats"), real_embedder, real_generator) as url:
        yield url


@pytest.fixture
def page(browser, server):  # noqa: F811  (browser is the imported fixture)
    page = open_page(browser, server)
    yield page
    page.context.close()


def upload_file(page, path) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(
        files=[{"name": path.name, "mimeType": MIME[path.suffix], "buffer": path.read_bytes()}])
    expect(page.locator("#upload-status")).to_contain_text(f"{path.name}: added", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#documents")).to_contain_text(path.name)
    page.get_by_role("tab", name="Chat").click()


def test_an_uploaded_deck_workbook_and_pdf_are_cited_by_slide_sheet_range_and_page(page, tmp_path):
    upload_file(page, make_pptx(tmp_path / "zephyr.pptx"))
    upload_file(page, make_xlsx(tmp_path / "sales.xlsx"))
    ask(page, "When does the Zephyr lander launch?")
    source = page.locator("#sources details#src-1")
    expect(source.locator("summary")).to_contain_text("zephyr.pptx")
    expect(source.locator("summary .rag-page")).to_have_text("· slide 4")
    expect(source).to_contain_text("12 March 2032")
    ask(page, "What was the revenue in Q3?")
    expect(page.locator("#sources summary", has_text="sales.xlsx").first.locator(".rag-page")).to_have_text(
        "· Revenue!A1:C5")
    expect(page.locator("#chat .rag-answer").last).to_contain_text("47.5")

    upload_file(page, make_report_pdf(tmp_path / "quillmoor.pdf"))
    ask(page, "How many nesting grey herons did the Quillmoor survey count?")
    marker = page.locator("#chat a.cite").last
    source = page.locator(f"#sources details#src-{marker.inner_text().strip('[]')}")
    expect(source.locator("summary")).to_contain_text("quillmoor.pdf")
    source.locator("summary").click()  # closed, so that the marker must open it
    expect(source).not_to_have_attribute("open", "")
    marker.click()
    image = source.locator(".rag-page-view img")
    expect(image).to_be_in_viewport()
    expect(image).to_have_attribute("alt", "page 2 of quillmoor.pdf")
    assert image.evaluate(HIGHLIGHT_PIXELS_JS) > 200  # the sentence's box is drawn on the page shown
    link = source.locator(".rag-page-view a")
    expect(link).to_have_text("Open quillmoor.pdf at page 2")
    served = page.request.get(urljoin(page.url, link.get_attribute("href").split("#")[0]))
    assert served.ok and served.headers["content-type"] == "application/pdf"
    assert link.get_attribute("href").endswith("#page=2")

    if os.environ.get("RAG_UPDATE_SCREENSHOT"):
        page.set_viewport_size({"width": 2000, "height": 1200})  # a sources panel wide enough to read the page
        marker.click()
        source.screenshot(path=str(ROOT / "docs" / "img" / "pdf-page.png"))

    # A scanned PDF (no text layer, read by OCR at upload): its cited words are boxed over the page's image.
    upload_file(page, SCANNED)
    ask(page, "How many rock samples did the survey team collect?")
    expect(page.locator("#chat .rag-answer").last).to_contain_text("214")
    scan_marker = page.locator("#chat a.cite").last
    scan_source = page.locator(f"#sources details#src-{scan_marker.inner_text().strip('[]')}")
    expect(scan_source.locator("summary")).to_contain_text("field-notes.pdf")
    scan_marker.click()
    scan = scan_source.locator(".rag-page-view img")
    expect(scan).to_be_in_viewport()
    expect(scan).to_have_attribute("alt", re.compile(r"page \d of field-notes\.pdf"))
    assert scan.evaluate(HIGHLIGHT_PIXELS_JS) > 200
    expect(scan_source.locator(".rag-page-view")).not_to_contain_text("shown unmarked")
