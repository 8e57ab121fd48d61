"""Office files and e-books, written by the libraries' writing side, read back with their locations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from format_files import make_docx, make_epub, make_odt, make_pptx, make_rtf, make_xlsx

from rag.documents.chunk import chunk_document
from rag.documents.ingest import SUFFIXES, decode_text, read_document
from rag.documents.isolation import IsolatedReader
from rag.documents.sections import TABLE_BLOCK_CHARS, SectionedText
from rag.records import Chunk, Citation, Document


def chunks_of(path: Path):
    return chunk_document(read_document(path, path.name))


def chunk_with(chunks, words: str) -> Chunk:
    [found] = [c for c in chunks if words in c.text]
    return found


def test_a_word_file_is_cited_by_the_heading_its_paragraph_is_under(tmp_path):
    chunks = chunks_of(make_docx(tmp_path / "report.docx"))
    assert chunk_with(chunks, "fourteen commercial divers").location == "Chapter 3: Staffing"
    assert chunk_with(chunks, "harbor renewal").location == "Harbor Project Report"


def test_a_word_table_keeps_its_header_and_rows_together_under_its_heading(tmp_path):
    table = chunk_with(chunks_of(make_docx(tmp_path / "report.docx")), "Q3 | 1,044")
    assert table.location == "Quarterly cargo"
    assert table.text == ("Quarterly cargo\n\nQuarter | Cargo handled (kilotonnes) | Ship calls\nQ1 | 812 | 140\n"
                          "Q2 | 905 | 151\nQ3 | 1,044 | 167\nQ4 | 998 | 160")


def test_a_slide_deck_is_cited_by_slide_number_with_tables_and_notes(tmp_path):
    chunks = chunks_of(make_pptx(tmp_path / "zephyr.pptx"))
    assert chunk_with(chunks, "12 March 2032").location == "slide 4"
    assert chunk_with(chunks, "12 March 2032").text.startswith("Launch timeline\n\n")
    assert chunk_with(chunks, "Drill | 22.7").text == \
        "Payload mass\n\nInstrument | Mass (kg)\nSeismometer | 9.4\nDrill | 22.7"
    assert chunk_with(chunks, "second design review").location == "slide 5"
    assert [c.location for c in chunks[:4]] == ["slide 1", "slide 2", "slide 3", "slide 4"]


def test_a_spreadsheet_row_is_cited_by_sheet_and_cell_range(tmp_path):
    chunks = chunks_of(make_xlsx(tmp_path / "sales.xlsx"))
    revenue = chunk_with(chunks, "Q3 | 47.5 | 31.8")
    assert revenue.location == "Revenue!A1:C5"
    assert revenue.text.splitlines()[0] == "Quarter | Revenue (EUR m) | Costs (EUR m)"


def test_every_chunk_of_a_long_sheet_repeats_the_header_and_names_its_rows(tmp_path):
    chunks = [c for c in chunks_of(make_xlsx(tmp_path / "sales.xlsx", filler_rows=200))
              if c.location.startswith("Regions!")]
    assert len(chunks) > 5
    rows_seen = []
    for chunk in chunks:
        header, *rows = chunk.text.split("\n")
        assert header == "Region | Manager | Units sold" and len(chunk.text) <= TABLE_BLOCK_CHARS
        first, last = (int(ref[1:]) for ref in chunk.location.removeprefix("Regions!").split(":"))
        # Spreadsheet row n holds district n-1 (row 1 is the header).
        assert [r.split(" | ")[0] for r in rows] == [f"District {n - 1}" for n in range(max(first, 2), last + 1)]
        rows_seen += rows
    assert len(rows_seen) == 200 and rows_seen[29] == "District 30 | Manager 30 | 303"


def test_an_opendocument_text_is_cited_by_heading_and_keeps_its_table(tmp_path):
    chunks = chunks_of(make_odt(tmp_path / "notes.odt"))
    glacier = chunk_with(chunks, "312 metres")
    assert glacier.location == "Glacier survey"
    assert "Lake | Depth (m)\nUpper tarn | 41\nLower tarn | 17" in glacier.text
    assert chunk_with(chunks, "nine nights").location == "Field notes"


def test_an_ebook_is_cited_by_chapter_and_its_table_of_contents_is_not_read_as_a_chapter(tmp_path):
    chunks = chunks_of(make_epub(tmp_path / "chronicle.epub"))
    assert chunk_with(chunks, "north pier").location == "Chapter 3: The Storm"
    assert [c.location for c in chunks] == ["Chapter 1: The Lighthouse", "Chapter 2: The Fishermen",
                                            "Chapter 3: The Storm"]


def test_an_rtf_letter_is_read_as_plain_text(tmp_path):
    doc = read_document(make_rtf(tmp_path / "ferry.rtf"), "ferry.rtf")
    assert doc.text == "Dear board,\n\nThe ferry to Osmund Island sails at 7:40 every Tuesday."
    assert doc.sections == () and [c.location for c in chunk_document(doc)] == [None]


def test_every_chunk_is_an_exact_slice_and_never_crosses_a_section(tmp_path):
    for path in (make_docx(tmp_path / "a.docx"), make_pptx(tmp_path / "b.pptx"), make_xlsx(tmp_path / "c.xlsx"),
                 make_odt(tmp_path / "d.odt"), make_epub(tmp_path / "e.epub")):
        doc = read_document(path, path.name)
        bounds = [offset for offset, _ in doc.sections] + [len(doc.text)]
        for chunk in chunk_document(doc):
            assert chunk.text == doc.text[chunk.start:chunk.end]
            section = max(i for i, offset in enumerate(bounds[:-1]) if offset <= chunk.start)
            assert chunk.end <= bounds[section + 1] and chunk.location == doc.sections[section][1]


def test_the_isolated_reader_returns_the_same_sections_as_reading_in_process(tmp_path):
    path = make_pptx(tmp_path / "zephyr.pptx")
    with IsolatedReader() as reader:
        isolated = reader.read(path, "zephyr.pptx", path.read_bytes())
    assert isolated == read_document(path, "zephyr.pptx")


def test_documents_without_sections_are_chunked_as_before_and_have_no_location():
    text = "First sentence here. Second one follows.\n\nA new paragraph."
    chunks = chunk_document(Document("a.txt", "a.txt", "0", text), 500, 100)
    assert [(c.text, c.page, c.location) for c in chunks] == [(text, None, None)]


def test_a_long_section_is_packed_by_sentences_and_every_chunk_keeps_its_label():
    out = SectionedText()
    out.start("Chapter 9")
    for i in range(30):
        out.add(f"Paragraph {i} says something about the harbour and its long history of trade.")
    text, sections = out.build()
    chunks = chunk_document(Document("b.epub", "b.epub", "0", text, (0,), sections), 500, 100)
    assert len(chunks) > 3 and {c.location for c in chunks} == {"Chapter 9"}
    assert all(len(c.text) <= 500 for c in chunks)


def test_a_chunk_stored_before_locations_existed_still_loads():
    old = {"id": "a.txt#0", "doc_id": "a.txt", "text": "Hi.", "start": 0, "end": 3, "page": None}
    assert Chunk(**json.loads(json.dumps(old))).location is None
    assert json.loads(json.dumps(Chunk(**old, location="slide 2").to_dict()))["location"] == "slide 2"


def test_a_citation_says_where_it_is_in_words():
    def cite(**kw):
        return Citation(id=1, doc="d", start=0, end=1, text="x", **kw)
    assert cite(page=None, location="Sheet1!A1:C9").where() == "Sheet1!A1:C9"
    assert cite(page=3).where() == "page 3"
    assert cite(page=None).where() == ""
    assert cite(page=None, location="slide 4").to_dict()["location"] == "slide 4"


def test_the_new_suffixes_are_found_when_indexing_a_folder():
    assert {".docx", ".pptx", ".xlsx", ".odt", ".epub", ".rtf"} <= SUFFIXES


LEGACY = [
    pytest.param("Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России.", "cp1251",
                 id="russian-cp1251"),
    pytest.param("Съешь же ещё этих мягких французских булок, да выпей чаю. Москва - столица России.", "koi8_r",
                 id="russian-koi8-r"),
    pytest.param("日本語のテキストです。東京は日本の首都であり、人口は約千四百万人です。", "shift_jis",
                 id="japanese-shift-jis"),
    pytest.param("Ελληνικά κείμενα: η Αθήνα είναι η πρωτεύουσα της Ελλάδας και έχει πολλά μουσεία.",
                 "cp1253", id="greek-cp1253"),
    pytest.param("Le café coûte 3 € à Zürich ; « très cher », dit-elle, mais l'œuvre est déjà là.", "cp1252",
                 id="french-cp1252"),
    pytest.param("Straße und Gemüse: Die Brücke über den Fluß wurde 1887 zerstört.", "cp1252", id="german-cp1252"),
    pytest.param("Zażółć gęślą jaźń: w Łodzi i Gdańsku pada śnieg przez całą zimę.", "cp1250", id="polish-cp1250"),
]


@pytest.mark.parametrize("text, encoding", LEGACY)
def test_text_in_a_legacy_encoding_is_decoded_by_detection(text, encoding):
    assert decode_text(text.encode(encoding), Path("legacy.txt")) == text
