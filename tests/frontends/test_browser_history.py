"""Saved conversations in Debian's chromium, over the real bundled models: a question asked is listed in
the sidebar, survives a restart of the app, reopens with its citations, and exports as Markdown."""

# ruff: noqa: F811 (the browser fixture imported from test_browser is a parameter here)
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import running_app, serving_app
from playwright.sync_api import expect
from test_browser import BLETCHLEY, PAGE_TIMEOUT_MS, ask, browser, open_page  # noqa: F401 (browser is a fixture)
from test_browser_collections import pick
from test_collections import ZORBLAX, folder_with

from rag.config import Settings
from rag.history import FILE_NAME

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HOSTILE_TITLE = '<img src=x onerror="window.__xss=1"> Bletchley'


def test_a_conversation_is_listed_survives_a_restart_reopens_with_its_citations_and_exports(
        browser, tmp_path, real_embedder, real_generator):
    from rag.pipeline import Pipeline

    with running_app(tmp_path, real_embedder, real_generator) as url:
        page = open_page(browser, url, accept_downloads=True)
        expect(page.locator("#history-list")).not_to_contain_text(BLETCHLEY)
        ask(page, BLETCHLEY)
        entry = page.locator("#history-list label", has_text=BLETCHLEY)
        expect(entry).to_have_count(1)
        expect(entry).to_contain_text(" UTC")
        expect(entry.locator("input")).to_be_checked()
        expect(page.locator("#history-title textarea, #history-title input")).to_have_value(BLETCHLEY)
        page.reload()
        # The list comes from the reloaded page's start-up calls: past Playwright's 5 s with the CPU
        # throttled to the slower kind's speed (docs/development.md), so it gets a page load's time.
        expect(page.locator("#history-list label", has_text=BLETCHLEY)).to_have_count(1, timeout=PAGE_TIMEOUT_MS)
        page.context.close()
    assert (tmp_path / "index" / FILE_NAME).stat().st_size > 0

    # The app started again over the same index folder, now with a second collection: a new pipeline,
    # a new server.
    Pipeline(Settings.load(index_dir=tmp_path / "index", collection="alpha"), embedder=real_embedder,
             generator=real_generator).index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=real_embedder,
                        generator=real_generator)
    with serving_app(pipeline) as url:
        page = open_page(browser, url, accept_downloads=True)
        expect(page.locator("#chat .rag-badge")).to_have_count(0)
        # Reopened from another collection, the conversation takes its own collection back, and the
        # picker's change keeps the reopened chat.
        pick(page, "alpha")
        page.locator("#history-list label", has_text=BLETCHLEY).click()
        expect(page.locator("#collection input")).to_have_value("default")
        expect(page.locator("#chat")).to_contain_text(BLETCHLEY)
        expect(page.locator("#chat .rag-answer")).to_contain_text("28")
        expect(page.locator("#chat .rag-badge")).to_have_text("✓ likely answer")
        expect(page.locator("#chat a.cite").first).to_have_text("[1]")
        expect(page.locator("#sources details#src-1 mark")).to_contain_text("28 nations")
        expect(page.locator("#history-title textarea, #history-title input")).to_have_value(BLETCHLEY)

        # Renamed with markup: the sidebar shows it as text and nothing runs.
        page.locator("#history-title textarea, #history-title input").fill(HOSTILE_TITLE)
        page.locator("#history-rename").click()
        expect(page.locator("#history-list label", has_text="Bletchley").first).to_contain_text(HOSTILE_TITLE)
        assert page.evaluate("() => window.__xss") is None
        assert page.locator('img[src="x"]').count() == 0

        with page.expect_download() as download:
            page.locator("#history-export").click()
        assert download.value.suggested_filename == "conversation-1.md"
        text = Path(download.value.path()).read_text(encoding="utf-8")
        page.context.close()
    lines = text.splitlines()
    assert lines[0] == '# &lt;img src=x onerror="window.\\_\\_xss=1"&gt; Bletchley'
    assert f"## 1. {BLETCHLEY}" in lines and any(line.startswith("**Answer:** 28") for line in lines)
    source = next(i for i, line in enumerate(lines) if line.startswith("- [1] xi-global-ai-collaboration.txt, chars"))
    assert lines[source + 1].startswith("  > ") and "**" in lines[source + 1] and "28 nations" in lines[source + 1]
