"""Saved conversations: every answered turn, with its citations, in SQLite beside the index.

One file, `index_dir/history.sqlite3` (the base index folder, shared by every collection), private to
its owner like the index files. WAL mode; a turn is written in one transaction once its answer is
complete, so a crash or SIGKILL loses at most the answer being written and every earlier turn stays.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .errors import BadInput, HistoryUnavailable
from .records import Answer, Citation, Sentence

FILE_NAME = "history.sqlite3"
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
MAX_TITLE_CHARS = 200
# Closest passages kept with an abstention: the ones the chat shows.
CLOSEST_KEPT = 2
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    -- AUTOINCREMENT: a deleted conversation's number is never given again, so a window still
    -- showing it cannot add turns to another conversation.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    model TEXT NOT NULL,
    collection TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    sentences TEXT NOT NULL,
    citations TEXT NOT NULL,
    passages TEXT NOT NULL,
    verdict TEXT NOT NULL,
    confidence REAL NOT NULL,
    model TEXT NOT NULL,
    collection TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations(updated, id);
"""


@dataclass(frozen=True)
class Conversation:
    """A saved conversation: its title (the first question unless renamed), when, with what, how long."""

    id: int
    title: str
    created: str
    updated: str
    model: str
    collection: str
    turns: int


@dataclass(frozen=True)
class Turn:
    """One answered question of a conversation, its Answer rebuilt from what was saved."""

    question: str
    answer: Answer
    model: str
    collection: str
    created: str


def history_path(settings: Settings) -> Path:
    """Where `settings` keep conversations: the base index folder, whatever the collection."""
    return Path(settings.index_dir) / FILE_NAME


def model_label(settings: Settings) -> str:
    """The model that answers under `settings`, as a short name: a tier, a GGUF file's name, a server's model."""
    if settings.llm_url:
        return settings.llm_model or settings.llm_url
    if settings.model:
        return Path(settings.model).name if settings.model.endswith(".gguf") else settings.model
    from .answer.models import DEFAULT_TIER

    return DEFAULT_TIER


def collection_label(settings: Settings) -> str:
    """The collection `settings` answer from, "default" for the base index."""
    return settings.collection or "default"


class History:
    """The saved conversations in one SQLite file. Safe to use from several threads and processes:
    each call opens its own connection, and writers wait for each other (up to `timeout` seconds)."""

    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout

    @classmethod
    def for_settings(cls, settings: Settings) -> History:
        return cls(history_path(settings))

    # --- connections ------------------------------------------------------------------------
    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection | None]:
        """A connection, or None when reading a store that does not exist yet (reads create nothing)."""
        if not self.path.exists():
            if not write:
                yield None
                return
            self._create_file()
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA synchronous = FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if write:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                if version < SCHEMA_VERSION:
                    with _transaction(db):
                        # One statement at a time: executescript() would commit the transaction first.
                        for statement in filter(str.strip, SCHEMA.split(";")):
                            db.execute(statement)
                        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # A file created but never written (a crash before the first turn) holds nothing yet.
            yield db if write or version else None
        except sqlite3.OperationalError as exc:  # locked past the timeout, a full disk, a read-only folder
            raise HistoryUnavailable(f"cannot use {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise HistoryUnavailable(f"{self.path} is not a readable conversation store ({exc}); "
                                     "move it away to start a new one") from None
        finally:
            db.close()

    def _create_file(self) -> None:
        """An empty database file, readable by its owner only (SQLite gives its -wal and -shm the same mode)."""
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(PRIVATE_DIR, parents=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE))
            os.chmod(self.path, PRIVATE_FILE)
        except OSError as exc:
            raise HistoryUnavailable(f"cannot create {self.path}: {exc.strerror or exc}") from None

    # --- writing ----------------------------------------------------------------------------
    def save_turn(self, conversation_id: int | None, answer: Answer, model: str, collection: str) -> int:
        """Append an answered turn to a conversation (a new one when `conversation_id` is None or was
        deleted), in one transaction; returns the conversation's id."""
        now = _now()
        closest = answer.passages[:CLOSEST_KEPT] if answer.abstained else ()
        row = (answer.question, answer.text, int(answer.abstained),
               json.dumps([s.to_dict() for s in answer.sentences], ensure_ascii=False),
               json.dumps([c.to_dict() for c in answer.citations], ensure_ascii=False),
               json.dumps([c.to_dict() for c in closest], ensure_ascii=False),
               answer.verdict, float(answer.confidence), model, collection, now)
        with self._connect(write=True) as db, _transaction(db):
            known = conversation_id is not None and db.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if known:
                db.execute("UPDATE conversations SET updated = ?, model = ?, collection = ? WHERE id = ?",
                           (now, model, collection, conversation_id))
            else:
                conversation_id = db.execute(
                    "INSERT INTO conversations (title, created, updated, model, collection) VALUES (?, ?, ?, ?, ?)",
                    (_title(answer.question), now, now, model, collection)).lastrowid
            db.execute("INSERT INTO turns (conversation_id, question, answer, abstained, sentences, citations, "
                       "passages, verdict, confidence, model, collection, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (conversation_id, *row))
        return conversation_id

    def rename(self, conversation_id: int, title: str) -> Conversation:
        """Give a conversation a new title (one line, at most MAX_TITLE_CHARS)."""
        title = one_line(title or "")
        if not title:
            raise BadInput("the title is empty")
        if len(title) > MAX_TITLE_CHARS:
            raise BadInput(f"the title is longer than {MAX_TITLE_CHARS} characters")
        with self._connect(write=True) as db, _transaction(db):
            if not db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)).rowcount:
                raise BadInput(f"no saved conversation {conversation_id}")
        return self.conversation(conversation_id)

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its turns."""
        with self._connect(write=True) as db, _transaction(db):
            if not db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount:
                raise BadInput(f"no saved conversation {conversation_id}")

    # --- reading ----------------------------------------------------------------------------
    def conversations(self) -> list[Conversation]:
        """Every saved conversation, the most recently continued first."""
        return self._select("ORDER BY c.updated DESC, c.id DESC")

    def latest(self) -> Conversation | None:
        """The conversation continued last, or None when nothing is saved."""
        found = self._select("ORDER BY c.updated DESC, c.id DESC LIMIT 1")
        return found[0] if found else None

    def conversation(self, conversation_id: int) -> Conversation:
        found = self._select("WHERE c.id = ?", (conversation_id,))
        if not found:
            raise BadInput(f"no saved conversation {conversation_id}")
        return found[0]

    def _select(self, clause: str, params: tuple = ()) -> list[Conversation]:
        with self._connect(write=False) as db:
            if db is None:
                return []
            rows = db.execute("SELECT c.id, c.title, c.created, c.updated, c.model, c.collection, "
                              "(SELECT count(*) FROM turns t WHERE t.conversation_id = c.id) "
                              f"FROM conversations c {clause}", params).fetchall()
        return [Conversation(id=r[0], title=r[1], created=r[2], updated=r[3], model=r[4], collection=r[5],
                             turns=r[6]) for r in rows]

    def turns(self, conversation_id: int) -> list[Turn]:
        """A conversation's turns in the order they were asked."""
        self.conversation(conversation_id)
        with self._connect(write=False) as db:
            rows = db.execute(
                "SELECT question, answer, abstained, sentences, citations, passages, verdict, confidence, model, "
                "collection, created FROM turns WHERE conversation_id = ? ORDER BY id", (conversation_id,)).fetchall()
        return [_turn(*r) for r in rows]

    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as Markdown: each question, its answer with [n] markers, and its sources."""
        return conversation_markdown(self.conversation(conversation_id), self.turns(conversation_id))


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT: the write lock is taken at the start, so two writers never deadlock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def one_line(text: str) -> str:
    """Text on one line, without control characters (a title is printed on terminals too)."""
    return "".join(ch for ch in " ".join(text.split()) if ch.isprintable())


def _title(question: str) -> str:
    title = one_line(question)
    return title if len(title) <= MAX_TITLE_CHARS else title[:MAX_TITLE_CHARS - 1] + "…"


def _citation(d: dict) -> Citation:
    return Citation(id=d["id"], doc=d["doc"], page=d["page"], start=d["start"], end=d["end"], text=d["text"],
                    highlight=tuple(d["highlight"]) if d.get("highlight") else None)


def _turn(question, text, abstained, sentences, citations, passages, verdict, confidence, model, collection,
          created) -> Turn:
    answer = Answer(question=question, text=text, abstained=bool(abstained),
                    sentences=tuple(Sentence(text=s["text"], citations=tuple(s["citations"]),
                                             supported=s["supported"]) for s in json.loads(sentences)),
                    citations=tuple(_citation(c) for c in json.loads(citations)), raw="",
                    passages=tuple(_citation(c) for c in json.loads(passages)), confidence=confidence,
                    verdict=verdict, mode="saved")
    return Turn(question=question, answer=answer, model=model, collection=collection, created=created)


# --- Markdown export --------------------------------------------------------------------------------
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")


def markdown_text(text: str, markers: bool = False) -> str:
    """Text from a document or the model as one line of inert Markdown: markup escaped, so a renderer
    shows it as written and never as HTML, a link or emphasis. With `markers`, [n] stay as they are."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))
    if not markers:
        return text
    # A restored marker followed by "(" would be a link again: "[1](javascript:...)".
    return _ESCAPED_MARKER.sub(r"[\1]", text).replace("](", "]\\(")


def turns_count(n: int) -> str:
    """The count in words: "1 turn", "2 turns"."""
    return f"{n} turn" if n == 1 else f"{n} turns"


def when(stamp: str) -> str:
    """A saved time as "2026-11-30 23:10 UTC"."""
    return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")


def location(c: Citation) -> str:
    """Where a passage stands: "page 3, chars 120-480"."""
    return (f"page {c.page}, " if c.page else "") + f"chars {c.start}-{c.end}"


def _passage_markdown(c: Citation) -> str:
    """The passage quoted, its sentence that backs the answer in bold."""
    if not c.highlight:
        return markdown_text(c.text)
    a = min(max(c.highlight[0] - c.start, 0), len(c.text))
    b = min(max(c.highlight[1] - c.start, a), len(c.text))
    parts = [markdown_text(c.text[:a]), f"**{markdown_text(c.text[a:b])}**", markdown_text(c.text[b:])]
    return " ".join(p for p in parts if p and p != "****")


def conversation_markdown(conversation: Conversation, turns: list[Turn]) -> str:
    """A conversation as a Markdown document (see `History.export_markdown`)."""
    lines = [f"# {markdown_text(conversation.title)}", "",
             f"Started {when(conversation.created)}, last answer {when(conversation.updated)} · "
             f"{turns_count(len(turns))} · model {markdown_text(conversation.model)} · "
             f"collection {markdown_text(conversation.collection)}", ""]
    for n, turn in enumerate(turns, 1):
        a = turn.answer
        lines += [f"## {n}. {markdown_text(turn.question)}", "", f"**Answer:** {markdown_text(a.text, markers=True)}",
                  ""]
        badge = a.verdict or ("not found in the documents" if a.abstained else "uncertain: check the source")
        lines += [f"*{badge}*" + ("" if a.abstained else f" ({a.confidence:.0%} estimated chance it is right)"), ""]
        if a.citations:
            lines += ["Sources:", ""]
            lines += [f"- [{c.id}] {markdown_text(c.doc)}, {location(c)}\n  > {_passage_markdown(c)}"
                      for c in a.citations]
            lines.append("")
        elif a.passages:
            lines += ["Closest passages (not an answer):", ""]
            lines += [f"- {markdown_text(c.doc)}, {location(c)}\n  > {markdown_text(c.text)}" for c in a.passages]
            lines.append("")
    return "\n".join(lines)
