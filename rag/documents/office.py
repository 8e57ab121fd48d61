"""Word, PowerPoint and Excel files (OOXML) to sectioned text, with python-docx, python-pptx and openpyxl.

Each function takes the file's bytes, already checked by `rag.documents.archive.check_zip`, and a
`SectionedText` to fill: a Word file's sections are its headings, a deck's are its slides, a
workbook's are blocks of rows named by their cell range ("Q3!A1:D12").
"""

from __future__ import annotations

import datetime as dt
import io

from .sections import SectionedText

# Rows with no value in a row, after which the rest of a sheet is not read: a sheet can claim a
# million (empty, styled) rows, and reading them costs time and memory for no text.
MAX_EMPTY_ROWS = 1_000
MAX_COLUMNS = 200


def docx_text(data: bytes, out: SectionedText) -> None:
    """A Word document's paragraphs and tables, in order; each heading starts a section."""
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    heading = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [_distinct_cells(row) for row in block.rows]
            out.table(rows, lambda first, last, heading=heading: heading)
            out.start(heading)
            continue
        style = (block.style.name if block.style is not None else "") or ""
        if style.startswith(("Heading", "Title")) and block.text.strip():
            heading = block.text.strip()
            out.start(heading)
        out.add(block.text)


def _distinct_cells(row) -> list[str]:
    """A row's cell texts, a merged cell once (python-docx repeats it for each grid column it spans)."""
    cells, seen = [], set()
    for cell in row.cells:
        if id(cell._tc) in seen:
            continue
        seen.add(id(cell._tc))
        cells.append(cell.text)
    return cells


def pptx_text(data: bytes, out: SectionedText) -> None:
    """Each slide's title, text boxes, tables and speaker notes, as the section "slide N"."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    for number, slide in enumerate(deck.slides, start=1):
        label = f"slide {number}"
        out.start(label)
        for shape in _shapes(slide.shapes):
            if shape.has_text_frame:
                out.add(shape.text_frame.text)
            elif getattr(shape, "has_table", False) and shape.has_table:
                rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
                out.table(rows, lambda first, last, label=label: label)
                out.start(label)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text
            if notes.strip():
                out.add(f"Notes: {notes}")


def _shapes(shapes):
    """Shapes in reading order (top to bottom, then left to right), group shapes opened."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    ordered = sorted(shapes, key=lambda s: ((s.top or 0), (s.left or 0)))
    for shape in ordered:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape


def xlsx_text(data: bytes, out: SectionedText) -> None:
    """Each sheet as a table, its first non-empty row the header, in blocks named by cell range."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            rows, numbers, empty = [], [], 0
            for number, values in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS), start=1):
                cells = [_value(v) for v in values]
                if not any(cells):
                    empty += 1
                    if empty >= MAX_EMPTY_ROWS:
                        break
                    continue
                empty = 0
                rows.append(cells)
                numbers.append(number)
            if not rows:
                continue
            used = [i for row in rows for i, c in enumerate(row) if c]
            lo, hi = min(used), max(used)
            rows = [row[lo:hi + 1] + [""] * (hi + 1 - len(row[lo:hi + 1])) for row in rows]
            first_col, last_col = get_column_letter(lo + 1), get_column_letter(hi + 1)
            title = _sheet_ref(sheet.title)
            out.table(rows, lambda a, b, numbers=numbers, title=title, first_col=first_col, last_col=last_col:
                      f"{title}!{first_col}{numbers[a]}:{last_col}{numbers[b]}")
    finally:
        book.close()


def _sheet_ref(title: str) -> str:
    """A sheet name as a formula would write it: quoted when it holds anything but letters and digits."""
    return title if title.replace("_", "").isalnum() else "'" + title.replace("'", "''") + "'"


def _value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())
