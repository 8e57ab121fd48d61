import codecs

import pytest
from conftest import CORPUS

from rag.documents.chunk import chunk_document, split_sentences
from rag.documents.ingest import html_to_text, load_documents, read_document
from rag.errors import UnreadableDocument


def test_every_corpus_chunk_is_an_exact_slice_of_its_document():
    docs, skipped = load_documents([CORPUS])
    assert skipped == []
    assert sorted(d.id for d in docs) == ["global-backing-for-china-ai-governance.txt",
                                          "xi-global-ai-collaboration.txt"]
    for doc in docs:
        chunks = chunk_document(doc, 500, 100)
        assert len(chunks) >= 5
        for chunk in chunks:
            assert doc.text[chunk.start:chunk.end] == chunk.text
            assert chunk.doc_id == doc.id and chunk.page is None
        covered = set().union(*(range(c.start, c.end) for c in chunks))
        assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_chunks_respect_size_and_repeat_the_overlap(tmp_path):
    sentence = "Sentence number {} talks about governance of artificial intelligence."
    (tmp_path / "a.txt").write_text(" ".join(sentence.format(i) for i in range(40)))
    doc = read_document(tmp_path / "a.txt", "a.txt")
    chunks = chunk_document(doc, size=300, overlap=150)
    assert all(len(c.text) <= 300 for c in chunks)
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:])), "windows should overlap"
    assert chunks[-1].end == len(doc.text)


def test_a_sentence_longer_than_the_chunk_size_is_cut_at_spaces(tmp_path):
    (tmp_path / "long.txt").write_text("word " * 400)
    doc = read_document(tmp_path / "long.txt", "long.txt")
    chunks = chunk_document(doc, size=200, overlap=0)
    assert len(chunks) >= 9 and all(len(c.text) <= 200 for c in chunks)


def test_split_sentences_keeps_abbreviations_together():
    text = "Dr. Smith met the U.S. delegation. It went well! Did it?"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["Dr. Smith met the U.S. delegation.", "It went well!", "Did it?"]


def test_html_keeps_visible_text_only():
    html = ("<html><head><title>T</title><style>p{color:red}</style></head><body><h1>Head</h1>"
            "<script>alert(1)</script><p>First &amp; <b>bold</b>.</p><p>Second</p></body></html>")
    assert html_to_text(html) == "Head\n\nFirst & bold.\n\nSecond"


def test_non_utf8_text_is_decoded(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Café in Zürich".encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes(codecs.BOM_UTF16_LE + "Grüße aus Köln".encode("utf-16-le"))
    assert read_document(tmp_path / "latin.txt", "l").text == "Café in Zürich"
    assert read_document(tmp_path / "utf16.txt", "u").text == "Grüße aus Köln"


@pytest.mark.parametrize("name,data,reason", [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"  \n\n ", "empty file"),
    ("binary.txt", bytes(range(256)) * 4, "binary data, not text"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "corrupt PDF"),
])
def test_unreadable_files_are_skipped_with_a_reason(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    (tmp_path / "good.txt").write_text("Good text here.")
    docs, skipped = load_documents([tmp_path])
    assert [d.id for d in docs] == ["good.txt"]
    assert len(skipped) == 1 and skipped[0].path.endswith(name)
    assert skipped[0].reason.startswith(reason)
    with pytest.raises(UnreadableDocument, match=name):
        read_document(tmp_path / name, name)


def test_pdf_pages_keep_their_numbers(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    for text in ("The first page speaks of apples.", "The second page speaks of pears."):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.cell(text=text)
    pdf.output(str(tmp_path / "fruit.pdf"))
    doc = read_document(tmp_path / "fruit.pdf", "fruit.pdf")
    chunks = chunk_document(doc)
    assert [(c.page, c.text) for c in chunks] == [(1, "The first page speaks of apples."),
                                                  (2, "The second page speaks of pears.")]
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)


def test_directories_recurse_and_ids_are_relative_paths(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "x.md").write_text("# Title\n\nSome text.")
    (tmp_path / "page.html").write_text("<p>Hello there.</p>")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    docs, _ = load_documents([tmp_path])
    assert sorted(d.id for d in docs) == ["page.html", "sub/deeper/x.md"]
