"""The web UI's saved conversations, fast: the sidebar's actions over the fake embedder and generator."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from conftest import FakeEmbedder, FakeGenerator

import app
from rag.history import FILE_NAME
from rag.pipeline import Pipeline

BLETCHLEY = "How many nations signed the Bletchley Declaration?"
GROUNDED = "The Bletchley Declaration was signed by 28 nations [1]."


def ask(saved: app.SavedConversations, question: str, conversation=None, turns=(), save=True) -> tuple:
    """Ask through the sidebar's ask event; the last (chat, turns, sources, box, conversation, listing, title)."""
    final = {}
    for step in saved.respond(conversation, save, question, list(turns), 4, app.DEFAULT_MODEL, 0.0):
        final.update({i: v for i, v in enumerate(step) if not isinstance(v, type(gr.skip()))})
    return tuple(final.get(i) for i in range(7))


@pytest.fixture
def saved(fake_pipeline) -> app.SavedConversations:
    fake_pipeline.generator.replies += [GROUNDED, GROUNDED]
    return app.SavedConversations(app.Backend(fake_pipeline))


def test_an_answer_is_saved_and_listed_by_its_first_question_and_date(saved, fake_pipeline):
    chat, turns, sources, box, conversation, listing, title = ask(saved, BLETCHLEY)
    assert "28 nations" in sources and isinstance(conversation, int) and title == BLETCHLEY
    [(label, value)] = listing.choices
    assert value == conversation and label.startswith(f"{BLETCHLEY} · 20") and label.endswith(" UTC")
    assert listing.value == conversation
    stored = saved.store.turns(conversation)
    assert [t.question for t in stored] == [BLETCHLEY] and stored[0].answer.citations
    assert (saved.store.conversation(conversation).model, saved.store.conversation(conversation).collection) == \
        ("qwen2.5-coder-1.5b", "default")


def test_with_save_conversations_off_nothing_is_stored(saved, fake_pipeline):
    chat, turns, sources, box, conversation, listing, title = ask(saved, BLETCHLEY, save=False)
    assert "28 nations" in sources and conversation is None and listing is None and title is None
    assert not (Path(fake_pipeline.settings.index_dir) / FILE_NAME).exists()
    assert saved.listing().choices == []


def test_a_conversation_reopened_after_a_restart_shows_its_citations_and_goes_on_with_its_history(
        saved, fake_pipeline):
    conversation = ask(saved, BLETCHLEY)[4]
    # A new app over the same index folder: new pipeline, backend and sidebar.
    generator = FakeGenerator("It was signed in November 2023 [1].")
    restarted = app.SavedConversations(app.Backend(Pipeline(fake_pipeline.settings, FakeEmbedder(), generator)))
    assert [value for _, value in restarted.listing().choices] == [conversation]

    chat, turns, sources, opened, title = restarted.reopen(conversation)
    assert opened == conversation and title == BLETCHLEY
    assert chat[0] == {"role": "user", "content": BLETCHLEY}
    assert '<a class="cite" href="#src-1">[1]</a>' in chat[1]["content"] and "rag-badge" in chat[1]["content"]
    assert 'id="src-1"' in sources and "28 nations" in sources

    _, after, _, _, same, _, _ = ask(restarted, "When was it signed?", conversation, turns)
    assert same == conversation and len(after) == 2
    # The reopened turns went to the model as the history of the follow-up.
    assert any(BLETCHLEY in m["content"] for m in generator.prompts[-1])
    assert [t.question for t in restarted.store.turns(conversation)] == [BLETCHLEY, "When was it signed?"]


def test_rename_delete_and_export_act_on_the_open_conversation(saved):
    first = ask(saved, "Which nations signed the declaration?")[4]
    second = ask(saved, BLETCHLEY)[4]
    listing, title = saved.rename(second, "  Bletchley count ")
    assert title == "Bletchley count" and listing.choices[0][0].startswith("Bletchley count · ")

    text, name = saved.export(second)
    assert name == f"conversation-{second}.md" and text.startswith("# Bletchley count\n")
    assert f"## 1. {BLETCHLEY}" in text and "- [1] xi-global-ai-collaboration.txt" in text

    chat, turns, sources, conversation, listing, title = saved.delete(second)
    assert (chat, turns, sources, conversation, title) == ([], [], app.NO_SOURCES, None, "")
    assert [value for _, value in listing.choices] == [first]


@pytest.mark.parametrize("action", ["rename", "delete", "export"])
def test_an_action_without_an_open_conversation_says_what_to_do(saved, action):
    args = (None, "title") if action == "rename" else (None,)
    with pytest.raises(gr.Error, match="Open a saved conversation"):
        getattr(saved, action)(*args)


def test_an_answer_that_cannot_be_saved_is_still_shown_and_a_toast_says_so(saved, fake_pipeline):
    path = Path(fake_pipeline.settings.index_dir) / FILE_NAME
    path.write_bytes(b"not a database" * 200)
    shown = []
    with pytest.raises(gr.Error, match="The answer was not saved: .*not a readable conversation store"):
        for step in saved.respond(None, True, BLETCHLEY, [], 4, app.DEFAULT_MODEL, 0.0):
            shown.append(step)
    assert "28 nations" in shown[-1][2]


def test_the_app_builds_with_the_sidebar_and_the_save_toggle(fake_pipeline):
    blocks = app.build_app(fake_pipeline)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    assert {"history", "history-list", "history-new", "history-export", "save-history"} <= ids
    assert "/ask" in blocks.get_api_info()["named_endpoints"]
