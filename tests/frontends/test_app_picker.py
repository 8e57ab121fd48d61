"""The Chat tab's "Ask about" picker and the ask endpoint's `documents`, with the fake embedder and generator."""

from __future__ import annotations

import gradio as gr
import pytest

import app

XI = "xi-global-ai-collaboration.txt"
OTHER = "global-backing-for-china-ai-governance.txt"
BLETCHLEY = "How many nations signed the Bletchley Declaration?"
XI_SENTENCE = "The signing of the Bletchley Declaration"  # in XI only


def answered(backend: app.Backend, documents: list[str] | None):
    """The Answer record of one question asked in the chat with the picker holding `documents`."""
    backend.pipeline.generator.replies.append("NONE")
    *_, (chat, turns, sources, box) = backend.respond(BLETCHLEY, [], 4, app.DEFAULT_MODEL, 0.0, None, documents)
    return turns[-1]["record"]


def test_a_question_with_one_picked_document_reads_only_its_passages(fake_pipeline):
    backend = app.Backend(fake_pipeline)
    assert XI in {p.doc for p in answered(backend, []).passages}  # unpicked, the other document is read too
    assert {p.doc for p in answered(backend, [OTHER]).passages} == {OTHER}
    assert XI_SENTENCE not in fake_pipeline.generator.prompts[-1][-1]["content"]


def test_a_picked_name_with_glob_characters_picks_only_itself(fake_pipeline):
    fake_pipeline.add_documents([("notes[1].txt", b"The Bletchley Declaration was signed by 28 nations."),
                                 ("notes1.txt", b"The Bletchley Declaration was signed in Bletchley Park.")])
    record = answered(app.Backend(fake_pipeline), ["notes[1].txt"])
    assert {p.doc for p in record.passages} == {"notes[1].txt"}


def test_the_picker_lists_the_collections_documents_and_keeps_only_picks_still_indexed(fake_pipeline):
    backend = app.Backend(fake_pipeline)
    picker = backend.picker_view(None, [OTHER, XI])
    assert set(picker.choices) == {(d, d) for d in (XI, OTHER)} and picker.value == [OTHER, XI]
    backend.remove(XI)
    assert backend.picker_view(None, [OTHER, XI]).value == [OTHER]
    assert backend.picker_view("empty-one", [OTHER]).value == []


def test_a_picked_document_removed_meanwhile_is_a_one_line_error(fake_pipeline):
    backend = app.Backend(fake_pipeline)
    backend.remove(XI)
    with pytest.raises(gr.Error, match=f"no indexed document matches &#x27;{XI}&#x27;") as caught:
        answered(backend, [XI])
    assert "\n" not in caught.value.message


def test_the_ask_endpoint_takes_documents(fake_pipeline):
    blocks = app.build_app(fake_pipeline)
    parameters = blocks.get_api_info()["named_endpoints"]["/ask"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == ["question", "documents"]
    fake_pipeline.generator.replies.append("NONE")
    out = app.Backend(fake_pipeline).ask(BLETCHLEY, documents=["global-*"])
    assert out["question"] == BLETCHLEY and {c["doc"] for c in out["citations"]} <= {OTHER}
    assert XI_SENTENCE not in fake_pipeline.generator.prompts[-1][-1]["content"]
