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

    chat, turns, sources, opened, title, model, collection = restarted.reopen(conversation)
    assert opened == conversation and title == BLETCHLEY
    assert model == app.DEFAULT_MODEL and collection.value == "default"
    assert chat[0] == {"role": "user", "content": BLETCHLEY}
    assert '<a class="cite" href="#src-1">[1]</a>' in chat[1]["content"] and "rag-badge" in chat[1]["content"]
    assert 'id="src-1"' in sources and "28 nations" in sources

    _, after, _, _, same, _, _ = ask(restarted, "When was it signed?", conversation, turns)
    assert same == conversation and len(after) == 2
    # The reopened turns went to the model as the history of the follow-up.
    assert any(BLETCHLEY in m["content"] for m in generator.prompts[-1])
    assert [t.question for t in restarted.store.turns(conversation)] == [BLETCHLEY, "When was it signed?"]


def test_a_reopened_conversation_switches_back_to_its_collection_and_model_and_keeps_its_chat(
        saved, fake_pipeline, tmp_path):
    from test_collections import ASK_ZORBLAX, ZORBLAX, folder_with

    from rag.answer.models import DEFAULT_TIER
    from rag.index.collections import remove_collection

    alpha = fake_pipeline.settings.replace(collection="alpha")
    Pipeline(alpha, embedder=fake_pipeline.embedder, generator=fake_pipeline.generator).index(
        [folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    fake_pipeline.generator.replies[:] = ["Edna Pocklington"]
    final = {}
    for step in saved.respond(None, True, ASK_ZORBLAX, [], 4, app.DEFAULT_MODEL, 0.0, "alpha"):
        final.update({i: v for i, v in enumerate(step) if not isinstance(v, type(gr.skip()))})
    conversation = final[4]
    assert saved.store.conversation(conversation).collection == "alpha"

    # A restarted app, its pickers at the default collection and a model given by path.
    models = (app.DEFAULT_MODEL, "0.5b", "/models/my-model.gguf")
    restarted = app.SavedConversations(app.Backend(Pipeline(fake_pipeline.settings, FakeEmbedder(),
                                                            FakeGenerator())), models)
    chat, turns, _, _, _, model, collection = restarted.reopen(conversation)
    assert collection.value == "alpha" and model == app.DEFAULT_MODEL and "Pocklington" in chat[1]["content"]
    # The picker's change that follows keeps the reopened chat; a change to another collection clears it.
    assert all(isinstance(v, type(gr.skip())) for v in restarted.backend.collection_changed("alpha", turns))
    assert restarted.backend.collection_changed("default", turns) == ([], [], app.NO_SOURCES)
    assert restarted.backend.collection_changed("alpha", []) == ([], [], app.NO_SOURCES)

    # The model picker's choice that answers under the saved name; none when that model is gone.
    assert restarted.model_choice(DEFAULT_TIER) == app.DEFAULT_MODEL
    assert restarted.model_choice("0.5b") == "0.5b"
    assert restarted.model_choice("my-model.gguf") == "/models/my-model.gguf"
    assert isinstance(restarted.model_choice("gone.gguf"), type(gr.skip()))

    # A collection removed since: the picker stays where it is.
    remove_collection(fake_pipeline.settings, "alpha")
    assert isinstance(restarted.reopen(conversation)[6], type(gr.skip()))


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
