"""OpenDocument text (.odt) to sectioned text with odfpy: headings start sections, tables keep their rows.

A 2 KB file can say "this 1 MB cell repeats 50 times, in a row that repeats 50 times", or hold a
space that repeats two billion times (`<text:s text:c="2000000000"/>`). The text is counted as it
is expanded, against what the `SectionedText` may still take, so such a file stops at its limit
(`TextTooLong`) before it costs the memory it describes.
"""

from __future__ import annotations

import io

from .sections import SectionedText, TextTooLong

# A cell or row can say it repeats a million times (`number-columns-repeated`); its text is
# written this many times at most.
MAX_REPEAT = 50
_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
# Whitespace collapses when a paragraph is added, so a run of spaces (`text:s`) is worth one.
_INLINE = {(_TEXT_NS, "s"): " ", (_TEXT_NS, "tab"): "\t", (_TEXT_NS, "line-break"): "\n"}


def odt_text(data: bytes, out: SectionedText) -> None:
    """An OpenDocument text's headings, paragraphs, lists and tables, in order."""
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    _walk(document.text, out, [""])


def _walk(element, out: SectionedText, heading: list[str]) -> None:
    for child in element.childNodes:
        name = getattr(child, "qname", None)
        if name is None:
            continue
        _, tag = name
        if tag == "h":
            heading[0] = text_of(child, _room(out), out.max_chars).strip() or heading[0]
            out.start(heading[0])
            out.add(heading[0])
        elif tag == "p":
            out.add(text_of(child, _room(out), out.max_chars))
        elif tag == "table":
            out.table(_rows(child, out), lambda first, last, label=heading[0]: label)
            out.start(heading[0])
        elif tag in ("list", "list-item", "section", "list-header", "soft-page-break"):
            _walk(child, out, heading)


def _room(out: SectionedText) -> int:
    """The characters `out` may still take."""
    return max(0, out.max_chars - out.length)


def text_of(element, limit: int, cap: int | None = None) -> str:
    """An element's text, as odfpy's `teletype.extractText` reads it; past `limit` characters,
    TextTooLong naming `cap` (the whole file's limit; `limit` itself by default)."""
    parts, size, stack = [], 0, [iter(element.childNodes)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        if child.nodeType == child.TEXT_NODE:
            part = child.data
        elif child.nodeType == child.ELEMENT_NODE:
            part = _INLINE.get(child.qname)
            if part is None:
                stack.append(iter(child.childNodes))
                continue
        else:
            continue
        size += len(part)
        if size > limit:
            raise TextTooLong(limit if cap is None else cap)
        parts.append(part)
    return "".join(parts)


def _rows(table, out: SectionedText) -> list[list[str]]:
    """The table's rows, repeats expanded while their characters fit in `out`."""
    rows, room = [], _room(out)
    for row in _descendants(table, "table-row"):
        cells = []
        for cell in row.childNodes:
            if getattr(cell, "qname", (None, None))[1] not in ("table-cell", "covered-table-cell"):
                continue
            text = text_of(cell, room, out.max_chars).strip()
            repeat = min(int(cell.getAttribute("numbercolumnsrepeated") or 1), MAX_REPEAT) if text else 1
            room = _spend(room, len(text) * repeat, out)
            cells.extend([text] * repeat)
        repeat = min(int(row.getAttribute("numberrowsrepeated") or 1), MAX_REPEAT) if any(cells) else 1
        room = _spend(room, sum(map(len, cells)) * (repeat - 1), out)
        rows.extend([cells] * repeat)
    return rows


def _spend(room: int, chars: int, out: SectionedText) -> int:
    if chars > room:
        raise TextTooLong(out.max_chars)
    return room - chars


def _descendants(element, tag: str):
    for child in element.childNodes:
        qname = getattr(child, "qname", None)
        if qname is None:
            continue
        if qname[1] == tag:
            yield child
        elif qname[1] in ("table-header-rows", "table-rows", "table-row-group"):
            yield from _descendants(child, tag)
