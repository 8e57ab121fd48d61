"""In Debian's chromium: a slide deck uploaded through the UI is cited by its slide, a workbook by its sheet range."""

from __future__ import annotations

import pytest
from conftest import running_app
from format_files import make_pptx, make_xlsx
from playwright.sync_api import expect
from test_browser import ANSWER_TIMEOUT_MS, ask, browser, open_page  # noqa: F401  (browser: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MIME = {".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


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


def test_an_uploaded_deck_and_workbook_are_cited_by_slide_and_sheet_range(page, tmp_path):
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
