"""Documents to sentence- and paragraph-aware chunks whose text is an exact slice of the document."""

from __future__ import annotations

import re

from ..records import Chunk, Document

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before a space and a capital,
# digit or quote, or at a paragraph break. Abbreviations such as "U.S." stay inside one sentence.
_MARKS = ".!?"
_CLOSERS = "\"'”’)]"
_SENTENCE_END = re.compile(rf"""(?<=[{_MARKS}])[{re.escape(_CLOSERS)}]*\s+(?=["'“‘(\[]?[A-Z0-9])"""
                           r"""|\n\s*\n|\n(?=\s*[-*#•])""")
_ABBREVIATIONS = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e|No|Inc|Ltd|Co)|\b[A-Z])\.$")
# The longest abbreviation ("Prof.") has 5 chars; one more char shows whether a word boundary precedes it.
_ABBREVIATION_REACH = 6


def ends_a_sentence(text: str) -> bool:
    """Whether `text` ends with a sentence's mark (or an ellipsis), before any closing quote or bracket."""
    return text.rstrip().rstrip(_CLOSERS).endswith((*_MARKS, "\u2026"))


def split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Char spans of the sentences of `text`, shifted by `offset`, with surrounding space trimmed.

    >>> split_sentences("One. Two three.")
    [(0, 4), (5, 15)]
    """
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        # Only the last few chars can hold an abbreviation: searching everything since `start`
        # made "A. A. A. ..." quadratic (48 KB took 17 s).
        tail = text[max(start, match.start() - _ABBREVIATION_REACH):match.start()]
        if "\n" not in match.group() and _ABBREVIATIONS.search(tail):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if b - trail > a + lead:
            out.append((offset + a + lead, offset + b - trail))
    return out


def _paragraph_starts(text: str) -> set[int]:
    return {m.end() for m in re.finditer(r"\n\s*\n\s*", text)}


def _split_long(start: int, end: int, text: str, size: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than `size` at spaces."""
    pieces = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    pieces.append((start, end))
    return pieces


def chunk_document(doc: Document, size: int = 500, overlap: int = 100) -> list[Chunk]:
    """Pack whole sentences into chunks of about `size` chars, repeating up to `overlap` chars.

    Chunks never cross a page, and prefer to end at a paragraph break. A document with sections (an
    Office file or e-book) is chunked by `chunk_sections`.
    """
    if doc.sections:
        return chunk_sections(doc, size, overlap)
    chunks: list[Chunk] = []
    bounds = list(doc.pages) + [len(doc.text)]
    for page_no, (page_start, page_end) in enumerate(zip(bounds, bounds[1:]), start=1):
        page_text = doc.text[page_start:page_end]
        paragraphs = {page_start + p for p in _paragraph_starts(page_text)}
        units: list[tuple[int, int]] = []
        for a, b in split_sentences(page_text, page_start):
            units.extend(_split_long(a, b, doc.text, size))
        page = page_no if len(doc.pages) > 1 or doc.path.lower().endswith(".pdf") else None
        for a, b in _pack(units, paragraphs, size, overlap):
            chunks.append(Chunk(f"{doc.id}#{len(chunks)}", doc.id, doc.text[a:b], a, b, page))
    return chunks


def chunk_sections(doc: Document, size: int = 500, overlap: int = 100) -> list[Chunk]:
    """Chunks that never cross a section, each carrying its section's label as its location.

    A line is a unit of its own (a table row, a bullet), so a row is never cut unless it alone
    is longer than `size`. Text before the first section has no location.
    """
    chunks: list[Chunk] = []
    starts = list(doc.sections) if doc.sections[0][0] == 0 else [(0, ""), *doc.sections]
    bounds = [offset for offset, _ in starts] + [len(doc.text)]
    for (section_start, label), section_end in zip(starts, bounds[1:]):
        section_text = doc.text[section_start:section_end]
        paragraphs = {section_start + p for p in _paragraph_starts(section_text)}
        units: list[tuple[int, int]] = []
        for line in re.finditer(r"[^\n]+", section_text):
            for a, b in split_sentences(line.group(), section_start + line.start()):
                units.extend(_split_long(a, b, doc.text, size))
        for a, b in _pack(units, paragraphs, size, overlap):
            chunks.append(Chunk(f"{doc.id}#{len(chunks)}", doc.id, doc.text[a:b], a, b, None, label or None))
    return chunks


def _pack(units, paragraph_starts, size, overlap):
    """Group sentence spans into windows; each window starts with the tail of the one before."""
    windows, i = [], 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j][1] - units[i][0] <= size:
            if units[j][0] in paragraph_starts and units[j - 1][1] - units[i][0] >= size // 2:
                break
            j += 1
        windows.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        back = j
        while back - 1 > i and units[j - 1][1] - units[back - 1][0] <= overlap \
                and units[back - 1][0] not in paragraph_starts and units[back - 1][0] != units[j][0]:
            back -= 1
        i = back if back > i else j
    return windows
