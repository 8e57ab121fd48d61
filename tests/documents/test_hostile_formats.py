"""Bad Office files and e-books: each skipped in one line next to a good file, zip bombs in bounded memory."""

from __future__ import annotations

import io
import random
import re
import struct
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from format_files import make_docx, make_epub, make_pptx, make_xlsx, zip_with
from test_hostile_files import assert_good_file_answers, fake_pipeline, folder_with

from rag.cli import main
from rag.documents.archive import ZipLimits, check_zip
from rag.documents.ingest import ReadLimits, read_document
from rag.documents.isolation import IsolatedReader
from rag.errors import BadInput, UnreadableDocument

MB = 2**20


def made(maker: Callable[[Path], Path], **kw) -> bytes:
    """The bytes of a file the maker writes."""
    suffix = {"make_docx": ".docx", "make_pptx": ".pptx", "make_xlsx": ".xlsx", "make_epub": ".epub"}[maker.__name__]
    with tempfile.TemporaryDirectory() as folder:
        return maker(Path(folder) / f"made{suffix}", **kw).read_bytes()


def zipped(members: dict[str, bytes]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return zip_with(Path(folder) / "made.zip", members).read_bytes()


def replaced(data: bytes, members: dict[str, bytes]) -> bytes:
    """The zip with some members replaced or added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename not in members:
                target.writestr(info, source.read(info))
        for name, content in members.items():
            target.writestr(name, content)
    return out.getvalue()


def encrypted_docx() -> bytes:
    """A Word file saved with a password: an OLE container holding EncryptionInfo (ECMA-376 agile)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(made(make_docx))).encrypt("hunter2", out)
    return out.getvalue()


ENCRYPTION_XML = (b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                  b'<enc:EncryptionMethod Algorithm="%b"/><enc:CipherData>'
                  b'<enc:CipherReference URI="EPUB/chap1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>')


def sheet_with_empty_rows(rows: int) -> bytes:
    """A workbook whose first sheet has 3 rows of data, then `rows` styled but empty rows, then one more value."""
    data = made(make_xlsx, filler_rows=2)
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        sheet = source.read("xl/worksheets/sheet1.xml")
    empty = "".join(f'<row r="{n}"><c r="A{n}" s="0"/></row>' for n in range(4, rows + 4)).encode()
    tail = (f'<row r="{rows + 4}"><c r="A{rows + 4}" t="inlineStr"><is><t>Beyond the gap</t></is></c></row>'
            ).encode()
    sheet = sheet.replace(b"</sheetData>", empty + tail + b"</sheetData>")
    # The used range the sheet claims, as a spreadsheet formatted down whole columns does.
    sheet = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:C%d"/>' % (rows + 4), sheet)
    assert b'<dimension ref="A1:C%d"/>' % (rows + 4) in sheet
    return replaced(data, {"xl/worksheets/sheet1.xml": sheet})


def lying_member(real_bytes: int, declared: int) -> bytes:
    """A .docx whose one member inflates to `real_bytes` zeros while its headers declare `declared`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("word/document.xml", "w") as member:
        for _ in range(real_bytes // MB):
            member.write(bytes(MB))
    data = bytearray(out.getvalue())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    return bytes(data)


def overlapping_entries(copies: int) -> bytes:
    """A small .docx whose central directory lists one 10 MB member `copies` times (about 10 MB × copies)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("word/document.xml", bytes(10 * MB))
    data = out.getvalue()
    central = data.index(b"PK\x01\x02")
    end = data.index(b"PK\x05\x06")
    entry = data[central:end]
    entries = entry + b"".join(entry.replace(b"word/document.xml", b"word/doc%09d.xml" % i)[:len(entry)]
                               for i in range(1, copies))
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, copies, copies, len(entries), central, 0)
    return data[:central] + entries + eocd


@dataclass(frozen=True)
class Bad:
    """A bad file and the one-line reason it is skipped with."""

    id: str
    name: str
    make: Callable[[], bytes]
    reason: str
    settings: dict = field(default_factory=dict)


BAD = [
    Bad("truncated-docx", "half.docx", lambda: made(make_docx)[:4000],
        r"corrupt or truncated file \(not a readable zip archive\)"),
    Bad("corrupt-docx-xml", "broken.docx", lambda: replaced(made(make_docx), {"word/document.xml": b"<w:document"}),
        r"corrupt Word document \(\w+\)"),
    Bad("password-protected-docx", "secret.docx", encrypted_docx,
        r"password-protected \(encrypted\) Office file; save it without a password"),
    Bad("legacy-doc-named-docx", "old.docx", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000),
        r"a legacy binary Office file \(\.doc/\.ppt/\.xls\), not a Word document; save it in the current format"),
    Bad("epub-with-drm", "locked.epub",
        lambda: replaced(made(make_epub), {"META-INF/encryption.xml":
                                           ENCRYPTION_XML % b"http://www.w3.org/2001/04/xmlenc#aes128-cbc"}),
        r"e-book with DRM \(its content is encrypted\); remove the DRM or use a DRM-free copy"),
    Bad("pdf-named-docx", "report.docx", lambda: b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
        r"not a Word document \(it is a PDF; its extension lies\)"),
    Bad("docx-named-xlsx", "numbers.xlsx", lambda: made(make_docx),
        r"not an Excel workbook \(the zip has no xl/workbook\.xml; its extension lies, or the file is damaged\)"),
    Bad("text-named-pptx", "slides.pptx", lambda: b"Just some notes, not slides.\n",
        r"not a PowerPoint presentation \(it is text or an unknown format; its extension lies\)"),
    Bad("epub-named-odt", "book.odt", lambda: made(make_epub),
        r"not an OpenDocument text \(its mimetype is b'application/epub\+zip'\)"),
    # 10 MB of zeros compressed 1,000:1.
    Bad("zip-bomb-ratio", "ratio.docx", lambda: zipped({"word/document.xml": bytes(10 * MB)}),
        r"zip bomb refused: 'word/document\.xml' is compressed [\d,]+:1 \(limit 200:1\)"),
    # About 35 KB declaring 4 GB: 400 directory entries for one member.
    Bad("zip-bomb-overlapping-entries", "overlap.docx", lambda: overlapping_entries(400),
        r"zip bomb refused: it expands to 4,194,304,000 bytes \(limit 268,435,456\)"),
    # Headers that say 1,000 bytes over 64 MB of deflated zeros.
    Bad("zip-bomb-lying-header", "lying.docx", lambda: lying_member(64 * MB, 1000),
        r"corrupt or truncated file \('word/document\.xml' does not inflate to what its header says\)"),
    Bad("zip-bomb-members", "many.epub",
        lambda: zipped({f"m{i}": b"" for i in range(10_001)}),
        r"zip bomb refused: more than 10,000 members"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_indexing_skips_a_bad_office_file_with_its_reason_and_answers_from_the_good_one(bad, tmp_path):
    folder = folder_with(tmp_path, {})
    pipeline = fake_pipeline(tmp_path, **bad.settings)
    pipeline.index([folder])
    (folder / bad.name).write_bytes(bad.make())
    report = pipeline.index([folder])
    [skipped] = report.skipped
    assert skipped.path == str(folder / bad.name) and re.fullmatch(bad.reason, skipped.reason), skipped.reason
    assert report.documents == 1 and report.unchanged == 1 and report.added == ()
    assert_good_file_answers(pipeline)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", [b for b in BAD if b.id in ("password-protected-docx", "zip-bomb-ratio",
                                                            "pdf-named-docx")], ids=lambda b: b.id)
def test_a_bad_office_upload_is_refused_with_its_reason_and_nothing_is_saved(bad, tmp_path):
    pipeline = fake_pipeline(tmp_path)
    pipeline.index([folder_with(tmp_path, {})])
    with pytest.raises(BadInput) as refused:
        pipeline.add_documents([(bad.name, bad.make())])
    assert re.fullmatch(re.escape(f"{bad.name}: ") + bad.reason, str(refused.value))
    assert not pipeline.uploads_dir.exists()
    assert_good_file_answers(pipeline)


def test_rag_index_of_one_password_protected_file_says_why_and_exits_2(tmp_path, capsys):
    path = tmp_path / "secret.docx"
    path.write_bytes(encrypted_docx())
    code = main(["index", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"rag: skipped {str(path)!r}: password-protected (encrypted) Office file; " \
                  "save it without a password\n"


def test_an_ebook_whose_fonts_are_obfuscated_is_not_drm_and_is_read(tmp_path):
    data = replaced(made(make_epub), {"META-INF/encryption.xml": ENCRYPTION_XML % b"http://www.idpf.org/2008/embedding"})
    doc = read_document(tmp_path / "fonts.epub", "fonts.epub", data)
    assert "north pier" in doc.text


@pytest.mark.timeout(180)
def test_a_sheet_with_a_million_empty_rows_is_read_up_to_the_gap_in_bounded_memory(tmp_path):
    data = sheet_with_empty_rows(1_000_000)
    with IsolatedReader(ReadLimits(seconds=120, memory_mb=400)) as reader:
        doc = reader.read(tmp_path / "sparse.xlsx", "sparse.xlsx", data)
    assert "District 2 | Manager 2 | 107" in doc.text and "Beyond the gap" not in doc.text
    assert doc.sections[0] == (0, "Regions!A1:C3")


def test_the_lying_header_zip_is_refused_with_memory_bounded_by_the_read_piece():
    data = lying_member(256 * MB, 1000)
    assert len(data) < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableDocument, match="does not inflate to what its header says"):
            check_zip(data, Path("lying.docx"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The whole member inflated at once would take 256 MB; pieces of 64 KB take a few of them.
    assert peak < 4 * MB


def test_an_archive_of_incompressible_parts_is_capped_by_its_total_size():
    media = {f"word/media/{i}.bin": random.Random(i).randbytes(3 * MB) for i in range(4)}
    data = zipped({"word/document.xml": b"<w:document/>", **media})
    check_zip(data, Path("honest.docx"))
    with pytest.raises(UnreadableDocument, match=r"expands to 12,582,925 bytes \(limit 10,485,760\)"):
        check_zip(data, Path("honest.docx"), ZipLimits(max_bytes=10 * MB))


@pytest.mark.timeout(120)
def test_a_zip_bomb_in_the_reader_process_is_refused_without_running_out_of_memory(tmp_path):
    data = overlapping_entries(400)
    assert len(data) < 40_000
    with IsolatedReader(ReadLimits(memory_mb=300)) as reader:
        with pytest.raises(UnreadableDocument, match=r"zip bomb refused: it expands to 4,194,304,000 bytes"):
            reader.read(tmp_path / "overlap.docx", "overlap.docx", data)
        # The same child reads the next file: the bomb cost it nothing.
        assert "12 March 2032" in reader.read(tmp_path / "z.pptx", "z.pptx", made(make_pptx)).text


def test_a_deck_replaced_by_a_damaged_copy_keeps_its_indexed_slides(tmp_path):
    folder = folder_with(tmp_path, {"zephyr.pptx": made(make_pptx)})
    pipeline = fake_pipeline(tmp_path)
    assert pipeline.index([folder]).added == ("good.txt", "zephyr.pptx")
    (folder / "zephyr.pptx").write_bytes(made(make_pptx)[:5000])
    report = pipeline.index([folder])
    assert [(s.doc_id, s.reason) for s in report.skipped] == [
        ("zephyr.pptx", "corrupt or truncated file (not a readable zip archive)")]
    assert report.removed == () and report.documents == 2
    hits = pipeline.search("When does the Zephyr lander launch from Kourou?", 3)
    assert ("zephyr.pptx", "slide 4") in {(h.chunk.doc_id, h.chunk.location) for h in hits}
