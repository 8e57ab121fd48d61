"""The web UI in Debian's chromium, over the real bundled models and a copy of the corpus.

Set RAG_UPDATE_SCREENSHOT=1 to refresh docs/screenshot.png from the answered question.
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import ROOT, running_app
from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ANSWER_TIMEOUT_MS = 240_000
# The first load of the app's page: Gradio's assets and its start-up calls. Playwright's default of 30 s
# was overrun on one core with a second test process beside it (`make test` with TEST_JOBS=2).
PAGE_TIMEOUT_MS = 120_000
BLETCHLEY = "How many nations signed the Bletchley Declaration?"
# A list question the model answers with one of its items ("privacy"): a confidence of about 0.5 with
# the tier's calibration (2026-12-07), mid-way between its threshold (0.29) and "likely" (0.70).
UNCERTAIN = "What worries were Beijing’s 2023 rules on content-generating AI meant to address?"
# The page's requests outside loopback are aborted and recorded here; the browser fixture then fails.
OUTSIDE_LOOPBACK = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/)(https?|wss?|ftp)://")
BLOCKED: list[str] = []


def loopback_context(browser, **options):
    """A browser context whose requests outside loopback are aborted, and recorded in BLOCKED."""
    context = browser.new_context(**options)
    context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    context.route(OUTSIDE_LOOPBACK, lambda route: BLOCKED.append(route.request.url) or route.abort())
    return context


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder, real_generator):
    """The app served once on a free loopback port, over a copy of the corpus."""
    with running_app(tmp_path_factory.mktemp("browser"), real_embedder, real_generator) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    assert BLOCKED == [], f"the browser tried to reach outside loopback: {BLOCKED}"


def open_page(browser, url: str, init_script: str | None = None, **options):
    """A page of the app at `url` in a new loopback-only context, once the question box shows."""
    context = loopback_context(browser, viewport={"width": 1400, "height": 900}, **options)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#question textarea")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    return page


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server)
    yield page
    page.context.close()


def ask(page, question: str) -> None:
    """Type a question and wait for the verified answer's badge in the sources panel."""
    answered = page.locator("#chat .rag-badge").count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#chat .rag-badge")).to_have_count(answered + 1, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#sources .rag-badge")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


def upload(page, name: str, text: str) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": text.encode("utf-8")}])
    expect(page.locator("#upload-status")).to_contain_text(f"{name}: added", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#documents")).to_contain_text(name)
    page.get_by_role("tab", name="Chat").click()


# Every event the server streams to the page, as the page's own fetch reads it: Gradio reads its event
# stream with fetch(), so the stream is teed into window.__events before Gradio's code sees it. (Watching
# the chat's DOM for drafts instead failed once on a loaded core: no draft was drawn before the verified
# answer, most likely because updates that arrive together are drawn once.)
RECORD_EVENTS = """
window.__events = "";
const pageFetch = window.fetch;
window.fetch = async (...args) => {
    const response = await pageFetch(...args);
    if (!(response.headers.get("content-type") || "").includes("text/event-stream") || !response.body) {
        return response;
    }
    const [mine, theirs] = response.body.tee();
    const reader = mine.getReader(), text = new TextDecoder();
    (async () => {
        for (;;) {
            const {done, value} = await reader.read();
            if (done) break;
            window.__events += text.decode(value, {stream: true});
        }
    })();
    return new Response(theirs, {status: response.status, statusText: response.statusText,
                                 headers: response.headers});
};
"""
DRAFT = re.compile(r'opacity:0\.6\\">([^<]*)<')


@pytest.fixture
def recording_page(browser, server):
    page = open_page(browser, server, init_script=RECORD_EVENTS)
    yield page
    page.context.close()


def test_answer_streams_cites_the_passage_and_the_marker_opens_it(recording_page, tmp_path):
    page = recording_page
    ask(page, BLETCHLEY)
    events = page.evaluate("() => window.__events")
    verified = events.find("rag-badge")
    drafts = {m.group(1) for m in DRAFT.finditer(events[:verified])} - {"", "Searching the documents…"}
    assert verified > 0 and drafts, f"no draft tokens were streamed before the verified answer: {events[:400]!r}"
    marker = page.locator("#chat a.cite").first
    expect(marker).to_have_text("[1]")
    source = page.locator("#sources details#src-1")
    expect(source).to_contain_text("28 nations")
    expect(source.locator("mark")).to_contain_text("28 nations")
    expect(page.locator("#chat .rag-badge").last).to_have_text("✓ likely answer")
    # The short answer comes first; its evidence sentence is quoted under it; the context receipt is shown.
    expect(page.locator("#chat .rag-answer").last).to_contain_text("28")
    expect(page.locator("#chat .rag-evidence").last).to_contain_text("signed by 28 nations")
    expect(page.locator("#sources .rag-receipt")).to_contain_text("prompt tokens")

    shot = ROOT / "docs" / "screenshot.png" if os.environ.get("RAG_UPDATE_SCREENSHOT") else tmp_path / "s.png"
    page.screenshot(path=str(shot))

    source.locator("summary").click()
    expect(source).not_to_have_attribute("open", "")
    marker.click()
    expect(source).to_have_attribute("open", "")
    expect(source.locator("mark")).to_be_in_viewport()
    assert len(page.context.pages) == 1


def test_uploaded_document_is_indexed_and_cited(page):
    upload(page, "zorblax-treaty.txt", "The Zorblax Treaty.\n\nThe Zorblax Treaty was signed by 14 "
           "countries in 2031. It governs the mining of helium on the Moon.\n")
    ask(page, "How many countries signed the Zorblax Treaty?")
    expect(page.locator("#sources")).to_contain_text("zorblax-treaty.txt")
    expect(page.locator("#sources")).to_contain_text("14 countries")
    expect(page.locator("#chat a.cite").first).to_be_visible()


def test_unanswerable_question_shows_the_abstention_badge(page):
    ask(page, "What is the GDP of Brazil?")
    expect(page.locator("#sources .rag-badge")).to_have_text("✗ not found in the documents")
    expect(page.locator("#chat")).to_contain_text("not found in the documents")
    expect(page.locator("#sources details")).to_have_count(0)


def test_the_badge_tells_an_uncertain_answer_and_an_abstention_apart(page):
    """Two more verdicts, each from a real answer: the calibrated confidence decides the words (the
    first test's Bletchley answer shows the third, "likely answer")."""
    badge = page.locator("#chat .rag-badge").last
    # One item of a list is a partial answer: the calibrated confidence marks it as uncertain.
    ask(page, UNCERTAIN)
    expect(badge).to_have_text("? uncertain: check the source")
    assert "estimated chance" in badge.get_attribute("title")
    ask(page, "Which countries refused to sign the Bletchley Declaration?")
    expect(badge).to_have_text("✗ not found in the documents")
    expect(page.locator("#chat").get_by_text("Closest passages (not an answer)").last).to_be_visible()
    expect(page.locator("#chat .rag-answer").last).to_have_text("I can't find that in the documents.")


def test_markup_in_a_document_shows_as_text_and_never_runs(page):
    upload(page, "quuxle-accord.txt", "The Quuxle Accord was signed by 9 moons in 2077. "
           '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> '
           "The Quuxle Accord limits comet tourism.\n")
    expect(page.locator("#documents")).to_contain_text("quuxle-accord.txt")
    ask(page, "How many moons signed the Quuxle Accord?")
    expect(page.locator("#sources")).to_contain_text("<script>window.__xss=1</script>")
    expect(page.locator("#sources")).to_contain_text('<img src=x onerror="window.__xss=2">')
    assert page.evaluate("() => window.__xss") is None
    assert page.locator('img[src="x"]').count() == 0


def test_ask_endpoint_returns_the_answer_json(server):
    from gradio_client import Client

    result = Client(server, verbose=False).predict(BLETCHLEY, api_name="/ask")
    assert {"question", "answer", "abstained", "sentences", "citations", "raw", "mode"} <= set(result)
    assert result["abstained"] is False and "28" in result["answer"]
    assert any("28 nations" in c["text"] for c in result["citations"])


def test_two_browsers_asking_at_once_both_get_answers(browser, server):
    pages = []
    for _ in range(2):
        page = loopback_context(browser).new_page()
        page.goto(server)
        pages.append(page)
    questions = [BLETCHLEY, "What did the Bletchley Declaration recognise?"]
    for page, question in zip(pages, questions, strict=True):
        page.locator("#question textarea").fill(question)
    for page in pages:
        page.locator("#question textarea").press("Enter")
    for page in pages:
        expect(page.locator("#sources .rag-badge")).to_be_visible(timeout=2 * ANSWER_TIMEOUT_MS)
    expect(pages[0].locator("#sources")).to_contain_text("28 nations")
    for page in pages:
        page.context.close()


def test_a_request_outside_loopback_is_aborted_and_recorded(browser):
    context = loopback_context(browser)
    page = context.new_page()
    # TEST-NET-1 is never routed: unblocked, the fetch would hang until the 10 s race below ends it.
    result = page.evaluate("""() => Promise.race([
        fetch("http://192.0.2.1/model.gguf").then(() => "loaded", (e) => "failed: " + e.message),
        new Promise((done) => setTimeout(() => done("timed out"), 10000))])""")
    context.close()
    assert BLOCKED == ["http://192.0.2.1/model.gguf"] and result.startswith("failed"), result
    BLOCKED.clear()
