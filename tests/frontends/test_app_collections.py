"""The UI's collection picker, without a browser: questions, uploads and removals go to the picked collection."""

from __future__ import annotations

import gradio as gr
import pytest
from conftest import FakeEmbedder, FakeGenerator
from test_collections import ASK_ZORBLAX, ZORBLAX, folder_with

import app
from rag.config import Settings
from rag.pipeline import Pipeline


@pytest.fixture
def backend(fake_pipeline, tmp_path):
    """The app's backend over the fake pipeline's default collection, plus collection "alpha" (Zorblax)."""
    alpha = Pipeline(fake_pipeline.settings.replace(collection="alpha"), embedder=fake_pipeline.embedder,
                     generator=fake_pipeline.generator)
    alpha.index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    return app.Backend(fake_pipeline)


def last_sources(events) -> str:
    return [e for e in events if isinstance(e[2], str)][-1][2]


def test_the_picker_lists_every_collection_and_shows_the_default_first(backend):
    view = backend.collections_view()
    assert view.choices == [("default", "default"), ("alpha", "alpha")] and view.value == "default"
    assert backend.collections_view("alpha").value == "alpha"


def test_a_question_in_the_picked_collection_cites_only_its_documents(backend):
    backend.pipeline.generator.replies.extend(["Edna Pocklington", "Edna Pocklington"])
    in_alpha = last_sources(list(backend.respond(ASK_ZORBLAX, [], 4, app.DEFAULT_MODEL, 0.0, "alpha")))
    assert "zorblax.txt" in in_alpha and "rag-badge abstained" not in in_alpha
    in_default = last_sources(list(backend.respond(ASK_ZORBLAX, [], 4, app.DEFAULT_MODEL, 0.0, "default")))
    assert "zorblax.txt" not in in_default


def test_uploads_and_removals_go_to_the_picked_collection(backend, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("The Zorblax parade has painted carts pulled by goats.", encoding="utf-8")
    status, table, _ = backend.add_files([str(upload)], "alpha")
    assert "notes.txt: added" in status and "notes.txt" in table and "zorblax.txt" in table
    assert "notes.txt" not in backend.documents_view("default")[0]
    status, table, _ = backend.remove("notes.txt", "alpha")
    assert "Removed notes.txt" in status and "notes.txt" not in table and "zorblax.txt" in table


def test_a_new_name_starts_a_collection_with_its_first_upload(backend, tmp_path):
    upload = tmp_path / "first.txt"
    upload.write_text("The first note of a new collection.", encoding="utf-8")
    backend.add_files([str(upload)], "fresh")
    assert (Settings.load(index_dir=backend.pipeline.settings.index_dir).index_dir / "collections" / "fresh"
            / "CURRENT").is_file()
    assert "first.txt" in backend.documents_view("fresh")[0]


def test_a_bad_collection_name_is_an_error_toast(backend):
    with pytest.raises(gr.Error, match="collection name"):
        list(backend.respond(ASK_ZORBLAX, [], 4, app.DEFAULT_MODEL, 0.0, "../etc"))
    with pytest.raises(gr.Error, match="collection name"):
        backend.documents_view("Bad Name")


def test_the_collection_pipeline_shares_the_models_of_the_default_one(tmp_path):
    base = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=FakeEmbedder(), generator=FakeGenerator())
    backend = app.Backend(base)
    alpha = backend.in_collection(base, "alpha")
    assert alpha.embedder is base.embedder and alpha.generator is base.generator
    assert backend.in_collection(base, "alpha") is alpha and backend.in_collection(base, "default") is base


def test_a_saved_turn_records_the_collection_it_was_answered_from(backend):
    backend.pipeline.generator.replies.extend(["Edna Pocklington", "Edna Pocklington"])
    saved = app.SavedConversations(backend)
    steps = list(saved.respond(None, True, ASK_ZORBLAX, [], 4, app.DEFAULT_MODEL, 0.0, "alpha"))
    conversation = [s[4] for s in steps if isinstance(s[4], int)][-1]
    assert saved.store.conversation(conversation).collection == "alpha"
    assert "zorblax.txt" in saved.store.turns(conversation)[0].answer.citations[0].doc


def test_the_documents_tab_shows_the_collections_watched_folders_and_last_sync(backend, tmp_path):
    from rag.watch import write_state

    folder = tmp_path / "<b>notes</b>"
    alpha = backend.in_collection(backend.pipeline, "alpha")
    write_state(alpha, [folder], running=True)
    shown, _ = backend.documents_view("alpha")
    assert f"Watched: <code>{str(tmp_path)}/&lt;b&gt;notes&lt;/b&gt;</code> · last sync 20" in shown
    assert "(watching now)" in shown and "zorblax.txt" in shown
    write_state(alpha, [folder], running=False)  # the watcher stopped: its last sync is kept
    assert "last sync 20" in backend.documents_view("alpha")[0]
    assert "(the watcher is not running)" in backend.documents_view("alpha")[0]
    assert "No folder is watched for this collection" in backend.documents_view(None)[0]
