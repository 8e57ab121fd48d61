"""Real Office files and e-books, written with the writing side of the libraries that read them.

Each file holds one fact in one place (a heading, a slide, a sheet's row), so a test can ask for it
and check the citation names that place.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

QUARTERS = [("Q1", "38.2", "29.9"), ("Q2", "41.0", "30.4"), ("Q3", "47.5", "31.8"), ("Q4", "44.1", "33.0")]
CARGO = [("Q1", "812", "140"), ("Q2", "905", "151"), ("Q3", "1,044", "167"), ("Q4", "998", "160")]


def make_docx(path: Path) -> Path:
    """A report: a title, two headings with paragraphs, and a cargo table under its own heading."""
    import docx

    document = docx.Document()
    document.add_heading("Harbor Project Report", level=0)
    document.add_paragraph("This report covers the harbor renewal of Port Elnar.")
    document.add_heading("Chapter 3: Staffing", level=1)
    document.add_paragraph("The harbor team hired fourteen commercial divers in 2031 to inspect the pilings.")
    document.add_heading("Quarterly cargo", level=1)
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Quarter", "Cargo handled (kilotonnes)", "Ship calls")):
        cell.text = text
    for row in CARGO:
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text
    document.add_paragraph("Cargo rose with the new container berth.")
    document.save(path)
    return path


def make_pptx(path: Path) -> Path:
    """A five-slide deck; slide 4 holds the launch date, slide 5 a table."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slides = [("Zephyr mission", "An overview for the review board."),
              ("Team", "Eleven engineers from three agencies."),
              ("Budget", "The lander costs 210 million euros."),
              ("Launch timeline", "The Zephyr lander launches on 12 March 2032 from Kourou.")]
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Payload mass"
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for r, row in enumerate([("Instrument", "Mass (kg)"), ("Seismometer", "9.4"), ("Drill", "22.7")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    slide.notes_slide.notes_text_frame.text = "The drill was added in the second design review."
    deck.save(path)
    return path


def make_xlsx(path: Path, filler_rows: int = 40) -> Path:
    """A workbook: a long sheet of regional sales (blocks of rows) and a quarterly revenue sheet."""
    from openpyxl import Workbook

    book = Workbook()
    sales = book.active
    sales.title = "Regions"
    sales.append(["Region", "Manager", "Units sold"])
    for i in range(filler_rows):
        sales.append([f"District {i + 1}", f"Manager {i + 1}", 100 + 7 * i])
    revenue = book.create_sheet("Revenue")
    revenue.append(["Quarter", "Revenue (EUR m)", "Costs (EUR m)"])
    for quarter, income, costs in QUARTERS:
        revenue.append([quarter, float(income), float(costs)])
    book.save(path)
    return path


def make_odt(path: Path) -> Path:
    """An OpenDocument text: two headings, each with a paragraph, and a small table."""
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Field notes"))
    document.text.addElement(P(text="The survey team camped below the ridge for nine nights."))
    document.text.addElement(H(outlinelevel=1, text="Glacier survey"))
    document.text.addElement(P(text="The Tarvik glacier retreated 312 metres between 2010 and 2030."))
    table = Table(name="Depths")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in [("Lake", "Depth (m)"), ("Upper tarn", "41"), ("Lower tarn", "17")]:
        tr = TableRow()
        for text in row:
            cell = TableCell()
            cell.addElement(P(text=text))
            tr.addElement(cell)
        table.addElement(tr)
    document.text.addElement(table)
    document.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    """An e-book of three chapters; chapter 3 tells of the storm."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("port-elnar-chronicle")
    book.set_title("A Chronicle of Port Elnar")
    book.set_language("en")
    chapters = []
    texts = [("Chapter 1: The Lighthouse", "The lighthouse at Port Elnar was lit for the first time in 1851."),
             ("Chapter 2: The Fishermen", "Herring boats left the harbour before dawn every day."),
             ("Chapter 3: The Storm", "The great storm of 1887 destroyed the north pier of Port Elnar.")]
    for number, (title, body) in enumerate(texts, start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"chap{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{title}</h1><p>{body}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def make_rtf(path: Path) -> Path:
    """An RTF letter with one fact."""
    path.write_bytes(rb"{\rtf1\ansi\deff0 {\fonttbl {\f0 Times;}}"
                     rb"\f0 Dear board,\par The ferry to Osmund Island sails at 7:40 every Tuesday.\par}")
    return path


def make_all(folder: Path) -> dict[str, Path]:
    """One file of each kind in `folder`, by suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    return {".docx": make_docx(folder / "report.docx"), ".pptx": make_pptx(folder / "zephyr.pptx"),
            ".xlsx": make_xlsx(folder / "sales.xlsx"), ".odt": make_odt(folder / "fieldnotes.odt"),
            ".epub": make_epub(folder / "chronicle.epub"), ".rtf": make_rtf(folder / "ferry.rtf")}


def zip_with(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding these members (a hand-made package for bad-input tests)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
