"""The collection and document pickers in Debian's chromium, over the real models: a question goes to the picked
collection, and only to the documents picked in "Ask about"."""

from __future__ import annotations

import pytest
from conftest import running_app
from playwright.sync_api import expect
from test_browser import ANSWER_TIMEOUT_MS, ask, browser, open_page  # noqa: F401 (browser: a fixture)
from test_collections import ASK_ZORBLAX, ZORBLAX, folder_with

from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = [pytest.mark.browser, pytest.mark.integration]

XI = "xi-global-ai-collaboration.txt"
OTHER = "global-backing-for-china-ai-governance.txt"
# Asked of every document, the answer cites XI; both documents speak of it.
ABOUT_GOVERNANCE = "What does China want for the governance of AI?"


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder, real_generator):
    """The app over a copy of the corpus (the default collection) and collection "alpha" (Zorblax)."""
    root = tmp_path_factory.mktemp("browser-collections")
    with running_app(root, real_embedder, real_generator) as url:
        alpha = Pipeline(Settings.load(index_dir=root / "index", collection="alpha"), real_embedder, real_generator)
        alpha.index([folder_with(root, "zorblax.txt", ZORBLAX)])
        yield url


@pytest.fixture
def page(browser, server):  # noqa: F811 (browser is test_browser's fixture)
    page = open_page(browser, server)
    yield page
    page.context.close()


def open_ask_about(page, *names: str) -> None:
    """Open the "Ask about" picker as a user does, and see that it offers exactly `names`."""
    page.locator("#ask-about input").click()
    options = page.get_by_role("option")
    expect(options).to_have_count(len(names))
    for name in names:
        expect(options.filter(has_text=name)).to_have_count(1)


def pick(page, name: str) -> None:
    """Choose a collection in the picker, as a user does: open the list, click the name."""
    page.locator("#collection input").click()
    page.get_by_role("option", name=name, exact=True).click()
    expect(page.locator("#collection input")).to_have_value(name)


def test_picking_a_collection_answers_from_its_document_and_the_default_never_cites_it(page):
    expect(page.locator("#collection input")).to_have_value("default")
    pick(page, "alpha")
    ask(page, ASK_ZORBLAX)
    expect(page.locator("#chat .rag-answer").last).to_contain_text("Edna Pocklington")
    expect(page.locator("#sources")).to_contain_text("zorblax.txt")
    expect(page.locator("#sources mark")).to_contain_text("founded in 1874 by the baker Edna Pocklington")

    pick(page, "default")
    expect(page.locator("#chat .rag-badge")).to_have_count(0)  # another collection starts a fresh chat
    ask(page, ASK_ZORBLAX)
    expect(page.locator("#sources .rag-badge")).to_have_text("✗ not found in the documents")
    expect(page.locator("#chat")).not_to_contain_text("Edna Pocklington")
    expect(page.locator("#sources")).not_to_contain_text("zorblax.txt")


def test_the_pickers_show_the_picked_collections_documents_and_an_answer_cites_only_the_picked_one(page):
    open_ask_about(page, XI, OTHER)
    page.get_by_role("option", name=OTHER, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.locator("#ask-about")).to_contain_text(OTHER)
    ask(page, ABOUT_GOVERNANCE)
    cited = page.locator("#sources details.rag-source summary")
    expect(cited.first).to_be_visible()
    names = cited.all_inner_texts()
    assert names and all(OTHER in name for name in names), names

    pick(page, "alpha")
    open_ask_about(page, "zorblax.txt")
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Documents").click()
    expect(page.locator("#documents")).to_contain_text("zorblax.txt", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#documents")).not_to_contain_text("xi-global-ai-collaboration.txt")
    page.get_by_role("tab", name="Chat").click()
    pick(page, "default")
    page.get_by_role("tab", name="Documents").click()
    expect(page.locator("#documents")).to_contain_text("xi-global-ai-collaboration.txt", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#documents")).not_to_contain_text("zorblax.txt")
