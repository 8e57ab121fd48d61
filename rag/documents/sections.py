"""A document's text built section by section, with tables kept as blocks of whole rows.

Office files and e-books have places a reader can go back to: a slide, a sheet's cells, a heading.
Readers add paragraphs under a labelled section; the chunker (`rag.documents.chunk`) never lets a
chunk cross a section, and each chunk carries its section's label as its location.

A table becomes blocks of whole rows, each block starting with the table's header row and each its
own section, so a chunk of a long table still says what its columns are:

    Quarter | Revenue | Costs
    Q3 | 4.7 | 3.1
"""

from __future__ import annotations

from collections.abc import Callable

# A table block stays below the default chunk size (500), so a block is one chunk.
TABLE_BLOCK_CHARS = 400
CELL_SEPARATOR = " | "


class SectionedText:
    """Paragraphs joined by blank lines, and the (offset, label) where each section starts.

    >>> t = SectionedText(); t.start("slide 1"); t.add("Hello"); t.start("slide 2"); t.add("Bye")
    >>> t.build()
    ('Hello\\n\\nBye', ((0, 'slide 1'), (7, 'slide 2')))
    """

    def __init__(self, max_chars: int = 20_000_000):
        self.parts: list[str] = []
        self.sections: list[tuple[int, str]] = []
        self.length = 0
        self.max_chars = max_chars
        self._label = ""
        self._opened = True  # the current label already has a section entry (none before the first)
        self._section_chars = 0  # text in the current section so far

    def start(self, label: str) -> None:
        """Begin a section; it is recorded when its first paragraph arrives (empty ones vanish)."""
        self._label, self._opened, self._section_chars = " ".join(label.split())[:120], False, 0

    def add(self, paragraph: str) -> None:
        """Append one paragraph (its whitespace runs collapsed within lines)."""
        lines = (" ".join(line.split()) for line in paragraph.splitlines())
        paragraph = "\n".join(line for line in lines if line)
        if not paragraph:
            return
        offset = self.length + (2 if self.parts else 0)
        if not self._opened:
            self.sections.append((offset, self._label))
            self._opened = True
        self.parts.append(paragraph)
        self._section_chars += len(paragraph)
        self.length = offset + len(paragraph)
        if self.length > self.max_chars:
            raise TextTooLong(self.max_chars)

    def table(self, rows: list[list[str]], label_of: Callable[[int, int], str]) -> None:
        """Add a table (its first row the header) as blocks of whole rows, each a section.

        `label_of(first, last)` names a block by the indexes of its first and last row in `rows`.
        """
        rows = [[_cell(c) for c in row] for row in rows]
        rows = [row for row in rows if any(row)]
        if not rows:
            return
        header, body = CELL_SEPARATOR.join(rows[0]), [CELL_SEPARATOR.join(r) for r in rows[1:]]
        if not body:
            self.start(label_of(0, 0))
            self.add(header)
            return
        first = 0
        while first < len(body):
            last, size = first, len(header) + 1 + len(body[first])
            while last + 1 < len(body) and size + 1 + len(body[last + 1]) <= TABLE_BLOCK_CHARS:
                last += 1
                size += 1 + len(body[last])
            label = label_of(0 if first == 0 else first + 1, last + 1)
            block = "\n".join([header, *body[first:last + 1]])
            # A heading or slide title just before the table stays in the table's first chunk.
            if not (first == 0 and self._opened and self._label == label and self.parts
                    and self._section_chars + len(block) <= TABLE_BLOCK_CHARS):
                self.start(label)
            self.add(block)
            first = last + 1

    def build(self) -> tuple[str, tuple[tuple[int, str], ...]]:
        """The text and its sections."""
        return "\n\n".join(self.parts), tuple(self.sections)


class TextTooLong(Exception):
    """More text than the reader's character limit."""

    def __init__(self, limit: int):
        super().__init__(f"more than {limit:,} characters of text")


def _cell(value) -> str:
    return " ".join(str(value).split()) if value is not None else ""
