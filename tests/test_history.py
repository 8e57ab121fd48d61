"""The saved conversations (rag/history.py): SQLite in the index folder, one transaction per turn."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import threading

import pytest
from conftest import ROOT

from rag.errors import BadInput, HistoryUnavailable
from rag.history import FILE_NAME, History, history_path, markdown_text
from rag.records import Answer, Citation, Sentence

PASSAGE = ("The Bletchley Declaration, a pact signed by 28 nations, including China, signifies a collective "
           "recognition of the necessity for AI regulation. The overarching theme is cooperation.")


def answer(question: str = "How many nations signed the Bletchley Declaration?", text: str = "28 [1]",
           passage: str = PASSAGE, doc: str = "xi-global-ai-collaboration.txt", page: int | None = 3) -> Answer:
    """A grounded answer citing one passage (chars 1374-…), its first sentence as the evidence."""
    start = 1374
    sentence_end = start + passage.index(".") + 1
    citation = Citation(id=1, doc=doc, page=page, start=start, end=start + len(passage), text=passage,
                        highlight=(start, sentence_end))
    return Answer(question=question, text=text, abstained=False, sentences=(Sentence(text, (1,), True),),
                  citations=(citation,), raw="28 nations", confidence=0.83, verdict="likely answer")


def abstention(question: str = "What is the GDP of Brazil?") -> Answer:
    closest = tuple(Citation(id=i, doc=f"doc{i}.txt", page=None, start=0, end=20, text=f"Closest passage {i}.")
                    for i in range(1, 5))
    return Answer(question=question, text="I can't find that in the documents.", abstained=True, sentences=(),
                  citations=(), raw="", passages=closest, verdict="not found in the documents")


@pytest.fixture
def store(tmp_path) -> History:
    return History(tmp_path / "index" / FILE_NAME)


def test_a_first_turn_starts_a_conversation_titled_by_its_question_and_the_next_turns_join_it(store):
    first = store.save_turn(None, answer(), "qwen2.5-coder-1.5b", "default")
    second = store.save_turn(first, answer("When was it signed?", "November 2023 [1]"), "smollm2-135m", "news")
    assert first == second
    [conversation] = store.conversations()
    assert conversation.title == "How many nations signed the Bletchley Declaration?"
    assert conversation.turns == 2 and conversation.created <= conversation.updated
    # The conversation says what answered it last; each turn keeps its own.
    assert (conversation.model, conversation.collection) == ("smollm2-135m", "news")
    turns = store.turns(first)
    assert [t.question for t in turns] == ["How many nations signed the Bletchley Declaration?",
                                           "When was it signed?"]
    assert [(t.model, t.collection) for t in turns] == [("qwen2.5-coder-1.5b", "default"), ("smollm2-135m", "news")]


def test_a_turn_comes_back_with_its_citations_sentences_verdict_and_confidence(store):
    saved = answer()
    conversation = store.save_turn(None, saved, "m", "default")
    back = store.turns(conversation)[0].answer
    assert back.text == saved.text and back.citations == saved.citations and back.sentences == saved.sentences
    assert (back.verdict, back.confidence, back.abstained) == ("likely answer", 0.83, False)


def test_an_abstention_keeps_the_two_closest_passages_the_chat_shows(store):
    conversation = store.save_turn(None, abstention(), "m", "default")
    back = store.turns(conversation)[0].answer
    assert back.abstained and back.citations == ()
    assert [p.doc for p in back.passages] == ["doc1.txt", "doc2.txt"]


def test_conversations_are_listed_the_most_recently_continued_first(store):
    a = store.save_turn(None, answer("First question?"), "m", "default")
    b = store.save_turn(None, answer("Second question?"), "m", "default")
    c = store.save_turn(None, answer("Third question?"), "m", "default")
    assert [x.id for x in store.conversations()] == [c, b, a]
    store.save_turn(a, answer("A follow-up?"), "m", "default")
    assert [x.id for x in store.conversations()] == [a, c, b]
    assert store.latest().id == a


def test_rename_changes_only_the_title_and_refuses_an_empty_or_unknown_one(store):
    conversation = store.save_turn(None, answer(), "m", "default")
    renamed = store.rename(conversation, "  Bletchley\n  numbers \x1b[31m ")
    assert renamed.title == "Bletchley numbers [31m" and renamed.turns == 1
    assert store.turns(conversation)[0].question == "How many nations signed the Bletchley Declaration?"
    with pytest.raises(BadInput, match="empty"):
        store.rename(conversation, " \n ")
    with pytest.raises(BadInput, match="longer than 200"):
        store.rename(conversation, "x" * 201)
    with pytest.raises(BadInput, match="no saved conversation 99"):
        store.rename(99, "anything")


def test_delete_removes_the_conversation_and_its_turns_and_a_later_turn_starts_a_new_one(store):
    kept = store.save_turn(None, answer("Kept?"), "m", "default")
    gone = store.save_turn(None, answer("Deleted?"), "m", "default")
    store.save_turn(gone, answer("Deleted too?"), "m", "default")
    store.delete(gone)
    assert [c.id for c in store.conversations()] == [kept]
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == 1
    with pytest.raises(BadInput, match=f"no saved conversation {gone}"):
        store.turns(gone)
    with pytest.raises(BadInput):
        store.delete(gone)
    # A chat still showing the deleted conversation goes on in a new one.
    again = store.save_turn(gone, answer("After the delete?"), "m", "default")
    assert again not in (gone, kept) and store.conversation(again).title == "After the delete?"


def test_export_markdown_holds_each_question_its_answer_with_markers_and_its_sources(store):
    conversation = store.save_turn(None, answer(), "qwen2.5-coder-1.5b", "default")
    store.save_turn(conversation, abstention("Which countries refused to sign?"), "qwen2.5-coder-1.5b", "default")
    text = store.export_markdown(conversation)
    lines = text.splitlines()
    assert lines[0] == "# How many nations signed the Bletchley Declaration?"
    assert "2 turns · model qwen2.5-coder-1.5b · collection default" in lines[2]
    assert "## 1. How many nations signed the Bletchley Declaration?" in lines
    assert "**Answer:** 28 [1]" in lines
    assert "*likely answer* (83% estimated chance it is right)" in lines
    source = lines.index("- [1] xi-global-ai-collaboration.txt, page 3, chars 1374-1555")
    # The quoted passage, its evidence sentence in bold.
    assert lines[source + 1] == ("  > **The Bletchley Declaration, a pact signed by 28 nations, including China, "
                                 "signifies a collective recognition of the necessity for AI regulation.** "
                                 "The overarching theme is cooperation.")
    assert "## 2. Which countries refused to sign?" in lines
    assert "**Answer:** I can't find that in the documents." in lines
    assert "*not found in the documents*" in lines
    assert "Closest passages (not an answer):" in lines and "- doc1.txt, chars 0-20" in lines
    assert "doc3.txt" not in text


def test_export_markdown_shows_markup_from_documents_and_the_model_as_text():
    assert markdown_text('<img src=x onerror="alert(1)"> [click](javascript:alert(1)) *x*') == \
        '&lt;img src=x onerror="alert(1)"&gt; \\[click\\](javascript:alert(1)) \\*x\\*'
    assert markdown_text("signed by 28 [1] and\n\n# not a heading [2]", markers=True) == \
        "signed by 28 [1] and # not a heading [2]"


def test_a_marker_in_an_answer_never_becomes_a_link_in_the_export():
    exported = markdown_text("28 [1](javascript:alert(1)) and [2] (x)", markers=True)
    assert exported == "28 [1]\\(javascript:alert(1)) and [2] (x)"  # a live javascript: link before
    assert "](" not in exported


def test_export_markdown_of_a_hostile_passage_keeps_each_quote_on_its_own_line(store):
    hostile = "Intro.\n\n[1]: javascript:alert(1)\n<script>alert(2)</script>\n# Heading"
    conversation = store.save_turn(None, answer(text="x [1]\n\n<b>y</b>", passage=hostile, doc="<b>d</b>_1.txt"),
                                   "m", "default")
    text = store.export_markdown(conversation)
    assert "<script>" not in text and "<b>" not in text and "\n[1]:" not in text and "\n# Heading" not in text
    assert "**Answer:** x [1] &lt;b&gt;y&lt;/b&gt;" in text
    assert "- [1] &lt;b&gt;d&lt;/b&gt;\\_1.txt, page 3" in text


def test_the_file_is_private_to_its_owner_and_kept_in_wal_mode(store):
    store.save_turn(None, answer(), "m", "default")
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Read while a reader holds the file open, so the -wal and -shm files exist.
    reader = sqlite3.connect(store.path)
    reader.execute("SELECT count(*) FROM turns").fetchone()
    store.save_turn(None, answer("Another?"), "m", "default")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in store.path.parent.glob(FILE_NAME + "*")}
    reader.close()
    assert set(modes) >= {FILE_NAME, FILE_NAME + "-wal"} and set(modes.values()) == {0o600}, modes


def test_reading_an_empty_store_lists_nothing_and_creates_no_file(store):
    assert store.conversations() == [] and store.latest() is None
    assert not store.path.exists() and not store.path.parent.exists()


def test_a_damaged_file_is_reported_in_one_line(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryUnavailable, match="is not a readable conversation store") as exc:
        store.conversations()
    assert "\n" not in str(exc.value)
    with pytest.raises(HistoryUnavailable):
        store.save_turn(None, answer(), "m", "default")


def test_two_threads_writing_at_once_lose_no_turn(store):
    store.save_turn(None, answer("Shared?"), "m", "default")
    shared = store.latest().id
    errors = []

    def write(name: str) -> None:
        try:
            own = None
            for i in range(40):
                own = History(store.path).save_turn(own, answer(f"{name} own {i}?"), "m", "default")
                History(store.path).save_turn(shared, answer(f"{name} shared {i}?"), "m", "default")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    by_title = {c.title: c for c in store.conversations()}
    assert set(by_title) == {"Shared?", "a own 0?", "b own 0?"}
    assert [by_title[t].turns for t in ("Shared?", "a own 0?", "b own 0?")] == [81, 40, 40]
    shared_questions = [t.question for t in store.turns(shared)]
    for name in ("a", "b"):  # each writer's turns in the order it wrote them
        assert [q for q in shared_questions if q.startswith(name)] == [f"{name} shared {i}?" for i in range(40)]


def test_the_store_lives_in_the_base_index_folder_whatever_the_collection(tmp_path):
    from rag.config import Settings

    settings = Settings.load(index_dir=tmp_path / "index")
    assert history_path(settings) == history_path(settings.replace(collection="news")) == \
        tmp_path / "index" / FILE_NAME


def test_rebuilding_the_index_keeps_the_saved_conversations(fake_pipeline, corpus_copy):
    saved = History.for_settings(fake_pipeline.settings)
    conversation = saved.save_turn(None, answer(), "m", "default")
    fake_pipeline.index([corpus_copy], rebuild=True)
    fake_pipeline.index([corpus_copy], rebuild=True)
    assert [t.question for t in saved.turns(conversation)] == ["How many nations signed the Bletchley Declaration?"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_index_keeps_the_saved_conversations(tmp_path):
    index = tmp_path / "index"
    saved = History(index / FILE_NAME)
    saved.save_turn(None, answer(), "m", "default")
    (index / "gen-000001").mkdir()
    (index / "CURRENT").write_text("gen-000001 x\n")
    run = subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean-index"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert not (index / "gen-000001").exists() and not (index / "CURRENT").exists()
    assert saved.latest().turns == 1


def test_a_writer_that_waits_too_long_for_the_lock_gets_a_one_line_error_and_the_store_is_unchanged(store):
    store.save_turn(None, answer(), "m", "default")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(HistoryUnavailable, match="cannot use .*database is locked"):
            History(store.path, timeout=0.2).save_turn(None, answer("Blocked?"), "m", "default")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [c.title for c in store.conversations()] == ["How many nations signed the Bletchley Declaration?"]
