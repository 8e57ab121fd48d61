"""Write the formats eval corpus (one Word, PowerPoint, Excel, OpenDocument and EPUB file) and its dataset.

    PYTHONPATH=. python eval/formats/make_corpus.py

The files are made with the writing side of the libraries that read them. Every answer lives in
one place of one file (a heading's section, a slide, a sheet's row, a table cell), and the script
checks that each gold quote is an exact slice of the indexed text inside one chunk, and records
that chunk's location next to the quote.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Aldmere Water Board Annual Report 2026", level=0)
    sections = [
        ("Chapter 1: Overview", "The Aldmere Water Board serves 412,000 residents across nine municipalities."),
        ("Chapter 2: Reservoirs", "The Kessel reservoir holds 18.6 million cubic metres when full. "
                                  "It was completed in 1974 and is inspected every five years."),
        ("Chapter 3: Leak reduction", "Leakage fell from 23 percent to 14 percent after the district metering "
                                      "programme replaced 1,900 old valves."),
    ]
    for heading, text in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    document.add_heading("Capital spending", level=1)
    rows = [("Project", "Budget (EUR m)", "Completion"), ("Kessel dam repair", "12.4", "2027"),
            ("Northside pipeline", "31.0", "2029"), ("Smart meters", "8.7", "2026")]
    table = document.add_table(rows=0, cols=3)
    for row in rows:
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text
    document.save(path)


def write_pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slides = [("Board briefing", "Aldmere Water Board, December 2026."),
              ("Drought plan", "Hosepipe bans start when reservoir storage drops below 45 percent."),
              ("Tariffs 2027", "The standard tariff rises to 2.18 euros per cubic metre on 1 April 2027."),
              ("Staffing", "The board employs 640 people, 85 of them apprentices.")]
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.slides[2].notes_slide.notes_text_frame.text = "The regulator approved the tariff on 14 November 2026."
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Water quality tests"
    rows = [("Parameter", "Samples", "Failures"), ("E. coli", "4,210", "3"), ("Lead", "1,180", "11"),
            ("Nitrate", "960", "0")]
    table = slide.shapes.add_table(len(rows), 3, Inches(1), Inches(2), Inches(7), Inches(2)).table
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    deck.save(path)


WORKS = ["Ashby", "Brenmoor", "Calder Rise", "Dunmore", "Elstow", "Fallowfield", "Greyhaven", "Harrow Fen",
         "Ivybridge", "Juniper Hill", "Kestrel Lane", "Longmead", "Marlow Cross", "Netherby", "Oakhurst",
         "Pennock", "Quarry Bank", "Redwater", "Saltmarsh", "Thornbury", "Upwell", "Varley", "Westcombe"]
MANAGERS = ["Ada Fenn", "Bruno Hale", "Cora Vint", "Dev Patel", "Elsa Moor", "Femi Ade", "Gus Rowe",
            "Ines Calloway", "Jon Pike", "Kira Bell", "Luis Ortega", "Mona Reyes", "Nils Berg", "Olga Dorn",
            "Pia Lund", "Quinn Shaw", "Rosa Lim", "Sam Okoro", "Tess Ward", "Uma Rao", "Vic Stone",
            "Wes Hart", "Yara Cole"]


def write_xlsx(path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    works = book.active
    works.title = "Treatment works"
    works.append(["Works", "Capacity (ML/day)", "Manager", "Commissioned"])
    for i, (name, manager) in enumerate(zip(WORKS, MANAGERS)):
        works.append([name, 96 if name == "Harrow Fen" else 20 + (i * 17) % 140, manager, 1950 + (i * 7) % 70])
    bills = book.create_sheet("Quarterly bills")
    bills.append(["Quarter", "Bills issued", "Complaints"])
    for row in [("Q1 2026", 168400, 412), ("Q2 2026", 170150, 389), ("Q3 2026", 171020, 507),
                ("Q4 2026", 171880, 366)]:
        bills.append(list(row))
    book.save(path)


def write_odt(path: Path) -> None:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, P

    document = OpenDocumentText()
    for heading, text in [
        ("Sampling procedure", "Samples for bacteria must reach the laboratory within 6 hours of collection."),
        ("Safety", "Staff entering a chamber deeper than 1.5 metres must carry a gas monitor.")]:
        document.text.addElement(H(outlinelevel=1, text=heading))
        document.text.addElement(P(text=text))
    document.text.addElement(H(outlinelevel=1, text="Sample bottles"))
    table = Table(name="Bottles")
    table.addElement(TableColumn(numbercolumnsrepeated=3))
    for row in [("Test", "Bottle", "Preservative"), ("Metals", "250 ml plastic", "nitric acid"),
                ("Bacteria", "500 ml sterile", "sodium thiosulfate")]:
        tr = TableRow()
        for text in row:
            cell = TableCell()
            cell.addElement(P(text=text))
            tr.addElement(cell)
        table.addElement(tr)
    document.text.addElement(table)
    document.save(str(path))


def write_epub(path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("aldmere-water-history")
    book.set_title("Water in Aldmere: A History")
    book.set_language("en")
    chapters = []
    for number, (title, body) in enumerate([
            ("Chapter 1: The First Wells", "In 1852 the town of Aldmere dug its first public well on Market Square."),
            ("Chapter 2: The Cholera Year", "The cholera outbreak of 1866 killed 214 people in Aldmere."),
            ("Chapter 3: The Great Dam", "Engineer Matilda Brisk designed the Kessel dam.")], start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"chap{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{title}</h1><p>{body}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)


# (question, answer, short answers, keywords, doc, quote, type); quote "" marks an unanswerable item,
# whose doc and distractor quote hold the answer a careless reader would give.
ITEMS = [
    ("How many residents does the Aldmere Water Board serve?", "412,000 residents.", ["412,000"], ["412,000"],
     "annual-report.docx", "serves 412,000 residents across nine municipalities", "number"),
    ("How much water does the Kessel reservoir hold when full?", "18.6 million cubic metres.",
     ["18.6 million cubic metres"], ["18.6"], "annual-report.docx",
     "The Kessel reservoir holds 18.6 million cubic metres when full.", "number"),
    ("What was the leakage rate after the district metering programme?", "14 percent.", ["14 percent"], ["14"],
     "annual-report.docx", "Leakage fell from 23 percent to 14 percent", "number"),
    ("What is the budget of the Northside pipeline project?", "31.0 million euros.", ["31.0"], ["31.0"],
     "annual-report.docx", "Northside pipeline | 31.0 | 2029", "number"),
    ("In which year will the smart meters project be completed?", "2026.", ["2026"], ["2026"],
     "annual-report.docx", "Smart meters | 8.7 | 2026", "date"),
    ("At what reservoir storage level do hosepipe bans start?", "Below 45 percent.", ["below 45 percent"],
     ["45"], "board-briefing.pptx", "Hosepipe bans start when reservoir storage drops below 45 percent.",
     "number"),
    ("What is the standard water tariff from 1 April 2027?", "2.18 euros per cubic metre.",
     ["2.18 euros per cubic metre"], ["2.18"], "board-briefing.pptx",
     "The standard tariff rises to 2.18 euros per cubic metre on 1 April 2027.", "number"),
    ("How many apprentices does the water board employ?", "85.", ["85"], ["85"], "board-briefing.pptx",
     "The board employs 640 people, 85 of them apprentices.", "number"),
    ("How many lead samples failed the water quality tests?", "11.", ["11"], ["11"], "board-briefing.pptx",
     "Lead | 1,180 | 11", "number"),
    ("When did the regulator approve the 2027 tariff?", "On 14 November 2026.", ["14 November 2026"],
     ["november"], "board-briefing.pptx", "The regulator approved the tariff on 14 November 2026.", "date"),
    ("Who manages the Harrow Fen treatment works?", "Ines Calloway.", ["Ines Calloway"], ["calloway"],
     "operations.xlsx", "Harrow Fen | 96 | Ines Calloway", "name"),
    ("What is the capacity of the Harrow Fen treatment works?", "96 megalitres a day.", ["96"], ["96"],
     "operations.xlsx", "Harrow Fen | 96 | Ines Calloway", "number"),
    ("How many complaints did the water board receive in Q3 2026?", "507.", ["507"], ["507"],
     "operations.xlsx", "Q3 2026 | 171020 | 507", "number"),
    ("How many bills were issued in Q2 2026?", "170150.", ["170150"], ["170150"], "operations.xlsx",
     "Q2 2026 | 170150 | 389", "number"),
    ("Within how many hours must bacteria samples reach the laboratory?", "Within 6 hours.", ["6 hours"],
     ["6"], "field-guide.odt", "Samples for bacteria must reach the laboratory within 6 hours of collection.",
     "number"),
    ("Which preservative goes into the bottle for metals samples?", "Nitric acid.", ["nitric acid"], ["nitric"],
     "field-guide.odt", "Metals | 250 ml plastic | nitric acid", "factoid"),
    ("When must staff carry a gas monitor?", "When entering a chamber deeper than 1.5 metres.",
     ["deeper than 1.5 metres"], ["1.5"], "field-guide.odt",
     "Staff entering a chamber deeper than 1.5 metres must carry a gas monitor.", "factoid"),
    ("How many people died in the cholera outbreak of 1866 in Aldmere?", "214 people.", ["214"], ["214"],
     "water-history.epub", "The cholera outbreak of 1866 killed 214 people in Aldmere.", "number"),
    ("Who designed the Kessel dam?", "Matilda Brisk.", ["Matilda Brisk"], ["brisk"], "water-history.epub",
     "Engineer Matilda Brisk designed the Kessel dam.", "name"),
    ("In which year did Aldmere dig its first public well?", "1852.", ["1852"], ["1852"], "water-history.epub",
     "In 1852 the town of Aldmere dug its first public well on Market Square.", "date"),
]
UNANSWERABLE = [
    ("How many fluoride samples failed the water quality tests?", "board-briefing.pptx", "Lead | 1,180 | 11"),
    ("Who manages the Kessel treatment works?", "operations.xlsx", "Harrow Fen | 96 | Ines Calloway"),
    ("What will the standard water tariff be in 2028?", "board-briefing.pptx",
     "The standard tariff rises to 2.18 euros per cubic metre on 1 April 2027."),
    ("How many people died in Aldmere's cholera outbreak of 1849?", "water-history.epub",
     "The cholera outbreak of 1866 killed 214 people in Aldmere."),
    ("What is the budget of the Southside pipeline project?", "annual-report.docx",
     "Northside pipeline | 31.0 | 2029"),
]
# (question, "Yes" or "No", answer, doc, the quote that decides it); each answer alternates tune/report, so both
# halves get both answers.
YESNO = [
    ("Is the Kessel reservoir inspected every five years?", "Yes", "Yes, it is inspected every five years.",
     "annual-report.docx", "It was completed in 1974 and is inspected every five years."),
    ("Did leakage rise after the district metering programme?", "No", "No, it fell from 23 percent to 14 percent.",
     "annual-report.docx", "Leakage fell from 23 percent to 14 percent after the district metering programme "
                           "replaced 1,900 old valves."),
    ("Has the regulator approved the 2027 tariff?", "Yes", "Yes, on 14 November 2026.", "board-briefing.pptx",
     "The regulator approved the tariff on 14 November 2026."),
    ("Did any nitrate samples fail the water quality tests?", "No", "No, none of the 960 nitrate samples failed.",
     "board-briefing.pptx", "Nitrate | 960 | 0"),
    ("Must staff carry a gas monitor when entering a chamber deeper than 1.5 metres?", "Yes",
     "Yes, they must carry a gas monitor.", "field-guide.odt",
     "Staff entering a chamber deeper than 1.5 metres must carry a gas monitor."),
    ("Was the Kessel dam designed by Ines Calloway?", "No", "No, engineer Matilda Brisk designed it.",
     "water-history.epub", "Engineer Matilda Brisk designed the Kessel dam."),
    ("Does the water board employ apprentices?", "Yes", "Yes, 85 of its 640 employees are apprentices.",
     "board-briefing.pptx", "The board employs 640 people, 85 of them apprentices."),
    ("Did Aldmere dig its first public well in the 1900s?", "No", "No, it dug its first public well in 1852.",
     "water-history.epub", "In 1852 the town of Aldmere dug its first public well on Market Square."),
]
# Yes/no questions the files don't answer, as UNANSWERABLE: (question, doc, distractor quote).
UNANSWERABLE_YESNO = [
    ("Did the Kessel dam repair come in under budget?", "annual-report.docx", "Kessel dam repair | 12.4 | 2027"),
    ("Will hosepipe bans be in force in the summer of 2027?", "board-briefing.pptx",
     "Hosepipe bans start when reservoir storage drops below 45 percent."),
]


def located(doc: str, quote: str) -> str | None:
    """The location of the one chunk that holds the quote; fails if none does."""
    from rag.documents.chunk import chunk_document
    from rag.documents.ingest import read_document

    document = read_document(CORPUS / doc, doc)
    assert quote in document.text, (doc, quote)
    [chunk] = [c for c in chunk_document(document) if quote in c.text][:1] or [None]
    assert chunk is not None, f"{doc}: {quote!r} is not inside one chunk"
    return chunk.location


def main() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    write_docx(CORPUS / "annual-report.docx")
    write_pptx(CORPUS / "board-briefing.pptx")
    write_xlsx(CORPUS / "operations.xlsx")
    write_odt(CORPUS / "field-guide.odt")
    write_epub(CORPUS / "water-history.epub")
    rows, seen = [], {}
    for question, answer, shorts, keywords, doc, quote, kind in ITEMS:
        seen[kind] = seen.get(kind, 0) + 1
        rows.append({"id": "", "question": question, "answerable": True, "answer": answer, "short_answers": shorts,
                     "keywords": keywords,
                     "support": [{"doc": doc, "quote": quote, "location": located(doc, quote)}],
                     "type": kind, "history": [], "split": "tune" if seen[kind] % 2 else "report"})
    for n, (question, doc, quote) in enumerate(UNANSWERABLE):
        located(doc, quote)
        rows.append({"id": "", "question": question, "answerable": False,
                     "answer": "I can't find that in the documents.", "short_answers": [], "keywords": [],
                     "support": [], "type": "unanswerable", "history": [], "distractor": {"doc": doc, "quote": quote},
                     "split": "tune" if n % 2 else "report"})
    seen = {"Yes": 0, "No": 1}
    for question, yes_no, answer, doc, quote in YESNO:
        seen[yes_no] += 1
        rows.append({"id": "", "question": question, "answerable": True, "answer": answer, "short_answers": [yes_no],
                     "keywords": [yes_no.lower()],
                     "support": [{"doc": doc, "quote": quote, "location": located(doc, quote)}],
                     "type": "yesno", "history": [], "split": "tune" if seen[yes_no] % 2 else "report"})
    for n, (question, doc, quote) in enumerate(UNANSWERABLE_YESNO):
        located(doc, quote)
        rows.append({"id": "", "question": question, "answerable": False,
                     "answer": "I can't find that in the documents.", "short_answers": [], "keywords": [],
                     "support": [], "type": "yesno", "history": [], "distractor": {"doc": doc, "quote": quote},
                     "split": "tune" if n % 2 == 0 else "report"})
    with open(HERE / "dataset.jsonl", "w", encoding="utf-8") as out:
        for n, row in enumerate(rows, start=1):
            row["id"] = f"f{n:03d}"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} items, {sum(row['answerable'] for row in rows)} answerable, in {HERE / 'dataset.jsonl'}")


if __name__ == "__main__":
    main()
