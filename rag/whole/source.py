"""An indexed document read again, as the non-overlapping passages a summary cites, in document order."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..answer.cite import blank_instructions
from ..documents.chunk import chunk_document
from ..errors import BadInput, UnreadableDocument
from ..records import Citation, Document


@dataclass(frozen=True)
class Source:
    """A document as it was indexed, and its chunks cut where the next begins (so no text repeats)."""

    document: Document
    passages: tuple[Citation, ...]

    @property
    def doc(self) -> str:
        return self.document.id


def find_document(documents: list[dict], name: str) -> dict:
    """The indexed document called `name` (its id, or a path ending in it); BadInput naming the choices."""
    by_id = {d["id"]: d for d in documents}
    if name in by_id:
        return by_id[name]
    tail = Path(name).name
    matches = [d for d in documents if Path(d["id"]).name == tail]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(by_id)[:8]) + (", …" if len(by_id) > 8 else "")
    raise BadInput(f"no indexed document {name!r}" + (f" (indexed: {known})" if known else " (the index is empty)"))


def read_source(entry: dict, chunker: dict, limits) -> Source:
    """The indexed document `entry` (from the manifest) read again from its file and chunked as the
    index chunked it; BadInput when the file changed or went away since (`rag index` first)."""
    from ..documents.ingest import read_bytes
    from ..documents.isolation import IsolatedReader

    path = Path(entry["path"])
    try:
        data = read_bytes(path)
    except UnreadableDocument as exc:
        raise BadInput(f"{entry['id']}: {exc}; run `rag index` again") from None
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BadInput(f"{entry['id']} changed since it was indexed; run `rag index` first")
    try:
        with IsolatedReader(limits) as reader:
            document = reader.read(path, entry["id"], data)
    except UnreadableDocument as exc:
        raise BadInput(str(exc)) from None
    return Source(document, tuple(passages_of(document, chunker["size"], chunker["overlap"])))


def passages_of(document: Document, size: int = 500, overlap: int = 100) -> list[Citation]:
    """The document's chunks in order, each starting where the previous one ended (overlap cut off),
    as Citations numbered from 1; instruction-like sentences stay in the text (they are blanked when
    shown to the model or used as evidence)."""
    out, covered = [], 0
    for chunk in chunk_document(document, size, overlap):
        start = max(chunk.start, covered)
        if chunk.end <= start:
            continue
        text = document.text[start:chunk.end]
        covered = chunk.end
        if not text.strip():
            continue
        out.append(Citation(len(out) + 1, document.id, chunk.page, start, chunk.end, text, location=chunk.location))
    return out


def pack_parts(passages: list[Citation] | tuple[Citation, ...], budget: int,
               count_tokens: Callable[[str], int]) -> list[list[Citation]]:
    """Consecutive passages grouped so each group's tokens stay within `budget` (one passage at least).

    >>> p = [Citation(i, "d", None, 0, 1, "word " * 30) for i in (1, 2, 3)]
    >>> [[c.id for c in part] for part in pack_parts(p, 70, lambda t: len(t.split()))]
    [[1, 2], [3]]
    """
    parts: list[list[Citation]] = []
    used = 0
    for passage in passages:
        cost = count_tokens(passage.text) + 4  # its "[n] " and line break
        if parts and used + cost <= budget:
            parts[-1].append(passage)
            used += cost
        else:
            parts.append([passage])
            used = cost
    return parts


def readable(passage: Citation) -> str:
    """The passage as evidence: instruction-like sentences blanked (they are data, never evidence)."""
    return blank_instructions(passage.text)
