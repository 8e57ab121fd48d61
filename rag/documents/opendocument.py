"""OpenDocument text (.odt) to sectioned text with odfpy: headings start sections, tables keep their rows."""

from __future__ import annotations

import io

from .sections import SectionedText

# A cell or row can say it repeats a million times (`number-columns-repeated`); its text is
# written this many times at most.
MAX_REPEAT = 50


def odt_text(data: bytes, out: SectionedText) -> None:
    """An OpenDocument text's headings, paragraphs, lists and tables, in order."""
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    _walk(document.text, out, [""])


def _walk(element, out: SectionedText, heading: list[str]) -> None:
    from odf import teletype

    for child in element.childNodes:
        name = getattr(child, "qname", None)
        if name is None:
            continue
        _, tag = name
        if tag == "h":
            heading[0] = teletype.extractText(child).strip() or heading[0]
            out.start(heading[0])
            out.add(heading[0])
        elif tag == "p":
            out.add(teletype.extractText(child))
        elif tag == "table":
            out.table(_rows(child), lambda first, last, label=heading[0]: label)
            out.start(heading[0])
        elif tag in ("list", "list-item", "section", "list-header", "soft-page-break"):
            _walk(child, out, heading)


def _rows(table) -> list[list[str]]:
    from odf import teletype

    rows = []
    for row in _descendants(table, "table-row"):
        cells = []
        for cell in row.childNodes:
            if getattr(cell, "qname", (None, None))[1] not in ("table-cell", "covered-table-cell"):
                continue
            text = teletype.extractText(cell).strip()
            repeat = int(cell.getAttribute("numbercolumnsrepeated") or 1) if text else 1
            cells.extend([text] * min(repeat, MAX_REPEAT))
        repeat = int(row.getAttribute("numberrowsrepeated") or 1) if any(cells) else 1
        rows.extend([cells] * min(repeat, MAX_REPEAT))
    return rows


def _descendants(element, tag: str):
    for child in element.childNodes:
        qname = getattr(child, "qname", None)
        if qname is None:
            continue
        if qname[1] == tag:
            yield child
        elif qname[1] in ("table-header-rows", "table-rows", "table-row-group"):
            yield from _descendants(child, tag)
