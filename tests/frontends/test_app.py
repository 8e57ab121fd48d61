"""Fast tests of the web UI's helpers and actions, with the fake embedder and generator."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pytest

import app
from rag.records import Answer, Citation, Sentence

EVIL_NAME = '<img src=x onerror="alert(1)">.txt'
EVIL_TEXT = ("Intro <script>alert(1)</script> the treaty was signed by 14 countries. "
             "<img src=x onerror=alert(2)> End")


def evil_answer() -> Answer:
    claim = "the treaty was signed by 14 countries."
    start = 100 + EVIL_TEXT.index(claim)
    citation = Citation(1, EVIL_NAME, 2, 100, 100 + len(EVIL_TEXT), EVIL_TEXT,
                        highlight=(start, start + len(claim)))
    return Answer(question="How many?", text="The treaty was signed by 14 countries [1]. <b>bold</b> [7]",
                  abstained=False, sentences=(Sentence("The treaty was signed by 14 countries.", (1,), True),),
                  citations=(citation,), raw="raw", confidence=0.91, verdict="likely answer")


def abstained_answer() -> Answer:
    closest = Citation(1, "<b>a</b>.txt", None, 0, 30, "Brazil's <i>economy</i> grew fast.")
    return Answer(question="GDP?", text="I can't find that in the documents.", abstained=True, sentences=(),
                  citations=(), raw="", passages=(closest,), verdict="not found in the documents")


def test_build_app_returns_blocks_with_the_ask_endpoint(fake_pipeline):
    blocks = app.build_app(fake_pipeline)
    assert isinstance(blocks, gr.Blocks)
    assert "/ask" in blocks.get_api_info()["named_endpoints"]


def test_sources_html_escapes_document_text_and_file_names():
    out = app.sources_html(evil_answer())
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.txt" in out
    assert "&lt;img src=x onerror=alert(2)&gt;" in out


def test_sources_html_marks_the_supporting_sentence_and_links_each_source():
    out = app.sources_html(evil_answer())
    assert "<mark>the treaty was signed by 14 countries.</mark>" in out
    assert '<details class="rag-source" id="src-1" open>' in out
    assert "page 2" in out


def test_sources_html_without_a_highlight_shows_the_whole_passage_unmarked():
    c = Citation(1, "a.txt", None, 0, 9, "some text")
    answer = Answer(question="q", text="some text [1].", abstained=False,
                    sentences=(Sentence("some text.", (1,), True),), citations=(c,), raw="")
    out = app.sources_html(answer)
    assert "<mark>" not in out and "some text" in out


def test_the_badge_says_what_the_calibrated_confidence_says():
    assert app.support_badge(evil_answer()) == "likely answer"
    uncertain = dataclasses.replace(evil_answer(), confidence=0.45, verdict="uncertain: check the source")
    assert app.support_badge(uncertain) == "uncertain: check the source"
    assert 'class="rag-badge uncertain"' in app.answer_html(uncertain) and "45% estimated chance" in app.answer_html(
        uncertain)
    assert app.support_badge(abstained_answer()) == "not found in the documents"
    assert 'class="rag-badge abstained"' in app.sources_html(abstained_answer())


def test_an_abstention_offers_the_closest_passages_marked_as_not_an_answer_and_escaped():
    out = app.answer_html(abstained_answer())
    assert "Closest passages (not an answer)" in out
    assert "&lt;i&gt;economy&lt;/i&gt;" in out and "<i>" not in out and "&lt;b&gt;a&lt;/b&gt;.txt" in out
    assert out.index("rag-badge") < out.index("Closest passages")


def test_a_sentence_answer_is_never_set_in_the_headline_style():
    out = app.answer_html(evil_answer())
    assert app.ANSWER_STYLE not in out and app.SENTENCE_STYLE in out
    short = dataclasses.replace(evil_answer(), text="14 countries [1]",
                                sentences=(Sentence("14 countries", (1,), True),))
    assert app.ANSWER_STYLE in app.answer_html(short)


def test_answer_html_escapes_model_output_and_links_only_cited_markers():
    out = app.answer_html(evil_answer())
    assert '<a class="cite" href="#src-1">[1]</a>' in out
    assert "&lt;b&gt;bold&lt;/b&gt; [7]" in out
    assert "likely answer" in out


def test_the_short_answer_comes_first_and_its_evidence_sentence_is_quoted_escaped():
    out = app.answer_html(evil_answer())
    assert out.index('class="rag-answer"') < out.index('class="rag-evidence"')
    assert "“the treaty was signed by 14 countries.” <a class=\"cite\" href=\"#src-1\">[1]</a>" in out


def test_the_context_receipt_is_one_line_in_the_sources_panel():
    receipt = {"prompt_tokens": 212, "passages": 4, "sentences_sent": 5, "sentences_left_out": 12,
               "chunks_left_out": ["a.txt:0-40"]}
    assert app.receipt_line(receipt) == ("212 prompt tokens · 4 passages · 5 of 17 sentences sent · "
                                         "1 passages did not fit")
    answer = dataclasses.replace(evil_answer(), receipt=receipt)
    assert "212 prompt tokens" in app.sources_html(answer)
    warm = {**receipt, "prompt_evaluated": 64, "prompt_cached": 150, "chunks_left_out": []}
    assert app.receipt_line(warm) == ("212 prompt tokens (150 from the KV cache) · 4 passages · "
                                      "5 of 17 sentences sent")
    cold = {**warm, "prompt_evaluated": 214, "prompt_cached": 0}
    assert app.receipt_line(cold).startswith("212 prompt tokens · 4 passages")


def test_chat_messages_escape_questions_and_keep_links_only_on_the_latest_answer():
    first = {"question": "<script>x</script>", "answer": "a", "html": app.answer_html(evil_answer())}
    second = {"question": "and then?", "answer": "b", "html": app.answer_html(evil_answer())}
    messages = app.chat_messages([first, second])
    assert messages[0] == {"role": "user", "content": "&lt;script&gt;x&lt;/script&gt;"}
    assert 'href="#src-1"' not in messages[1]["content"] and "[1]" in messages[1]["content"]
    assert 'href="#src-1"' in messages[3]["content"]


def test_respond_streams_the_draft_then_the_verified_answer(fake_pipeline):
    fake_pipeline.generator.replies.append("The Bletchley Declaration was signed by 28 nations [1].")
    steps = list(app.Backend(fake_pipeline).respond(
        "How many nations signed the Bletchley Declaration?", [], 4, app.DEFAULT_MODEL, 0.0))
    drafts = [chat[-1]["content"] for chat, *_ in steps[1:-1]]
    assert drafts and all(d.startswith('<em style="opacity:0.6">') for d in drafts)
    chat, turns, sources, box = steps[-1]
    assert box == "" and turns[-1]["answer"].startswith("The Bletchley")
    assert '<a class="cite" href="#src-1">[1]</a>' in chat[-1]["content"]
    assert "28 nations" in sources and 'id="src-1"' in sources


def test_respond_turns_pipeline_errors_into_gradio_errors(fake_pipeline):
    with pytest.raises(gr.Error, match="empty"):
        list(app.Backend(fake_pipeline).respond("   ", [], 4, app.DEFAULT_MODEL, 0.0))


def test_respond_passes_earlier_turns_as_history(fake_pipeline):
    fake_pipeline.generator.replies.append("The Bletchley Declaration was signed by 28 nations [1].")
    earlier = [{"question": "Who signed the Bletchley Declaration?", "answer": "28 nations [1].", "html": ""}]
    steps = list(app.Backend(fake_pipeline).respond("When was it signed?", earlier, 4, app.DEFAULT_MODEL, 0.0))
    assert steps[-1][1][0] == earlier[0] and len(steps[-1][1]) == 2
    assert "Bletchley" in fake_pipeline.generator.prompts[-1][-1]["content"]


def test_upload_of_a_disallowed_type_is_refused_and_loses_nothing(fake_pipeline, tmp_path):
    before = fake_pipeline.documents()
    bad = tmp_path / "payload.exe"
    bad.write_bytes(b"MZ not a document")
    with pytest.raises(gr.Error, match="only"):
        app.Backend(fake_pipeline).add_files([str(bad)])
    assert fake_pipeline.documents() == before


def test_refused_upload_names_the_file_escaped_since_toasts_render_html(fake_pipeline, tmp_path):
    bad = tmp_path / "<img src=x onerror=alert(1)>.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(gr.Error) as caught:
        app.Backend(fake_pipeline).add_files([str(bad)])
    assert "&lt;img src=x onerror=alert(1)&gt;.exe" in caught.value.message
    assert "<img" not in caught.value.message


def test_upload_adds_new_documents_and_reports_unreadable_ones(fake_pipeline, tmp_path):
    good, empty = tmp_path / "zorblax.txt", tmp_path / "empty.txt"
    good.write_text("The Zorblax Treaty was signed by 14 countries in 2031.", encoding="utf-8")
    empty.write_text("   ", encoding="utf-8")
    status, table, dropdown = app.Backend(fake_pipeline).add_files([str(good), str(empty)])
    assert "✓ zorblax.txt: added" in status and "✗ skipped empty.txt" in status
    ids = {d["id"] for d in fake_pipeline.documents()}
    assert "zorblax.txt" in ids and "xi-global-ai-collaboration.txt" in ids
    assert "zorblax.txt" in table and "zorblax.txt" in dropdown.choices[-1]


def test_documents_table_escapes_file_names():
    out = app.documents_html([{"id": EVIL_NAME, "chunks": 1, "pages": 1}])
    assert "<img" not in out and "&lt;img src=x" in out


def test_remove_takes_a_document_out_of_the_index(fake_pipeline):
    backend = app.Backend(fake_pipeline)
    status, table, _ = backend.remove("xi-global-ai-collaboration.txt")
    assert "Removed" in status and "xi-global" not in table
    assert [d["id"] for d in fake_pipeline.documents()] == ["global-backing-for-china-ai-governance.txt"]


def test_switching_model_rebuilds_the_generator_but_keeps_the_embedder(fake_pipeline):
    backend = app.Backend(fake_pipeline)
    assert backend.pipeline_for(app.DEFAULT_MODEL, 0.0) is fake_pipeline
    other = backend.pipeline_for("/models/other.gguf", 0.3)
    assert other is not fake_pipeline and other.embedder is fake_pipeline.embedder
    assert (other.settings.model, other.settings.temperature) == ("/models/other.gguf", 0.3)


def test_ask_returns_the_answer_json(fake_pipeline):
    out = app.Backend(fake_pipeline).ask("What is the GDP of Brazil?")
    assert set(out) >= {"question", "answer", "abstained", "sentences", "citations"}
    assert out["abstained"] is True and out["question"] == "What is the GDP of Brazil?"


def test_main_refuses_a_public_host_without_login_credentials(monkeypatch, capsys):
    monkeypatch.delenv("RAG_UI_USER", raising=False)
    monkeypatch.delenv("RAG_UI_PASSWORD", raising=False)
    assert app.main(["--host", "0.0.0.0", "--port", "7999"]) == 2
    err = capsys.readouterr().err
    assert "RAG_UI_USER" in err and err.count("\n") == 1


def test_loopback_hosts_are_recognised():
    assert app.is_loopback("127.0.0.1") and app.is_loopback("::1") and app.is_loopback("localhost")
    assert not app.is_loopback("0.0.0.0") and not app.is_loopback("example.org")
