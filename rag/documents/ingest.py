"""Files to `Document`s: txt, md, html and pdf (Office files and e-books in `formats`), unreadable ones named."""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..errors import UnreadableDocument
from ..records import Document
from .formats import FORMAT_SUFFIXES

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", *FORMAT_SUFFIXES}
HTML_SUFFIXES = {".html", ".htm"}


@dataclass(frozen=True)
class ReadLimits:
    """What reading one file may cost.

    A PDF's text is bounded by pages and characters: a 20 KB file can list one page of 1 MB of
    text 3,000 times. Seconds and memory bound the child process that parses PDF and HTML
    (`rag.documents.isolation`); text and Markdown never yield more text than the file holds.
    """

    max_pdf_pages: int = 10_000
    max_pdf_chars: int = 20_000_000
    seconds: float = 60.0
    memory_mb: int = 1024
    # Scanned PDF pages (`rag.documents.ocr`): read by OCR at all, the seconds one page may take,
    # the seconds one file's pages may take, and the folder that caches their text by the file's
    # sha256 (empty: no cache).
    ocr: bool = True
    ocr_seconds: float = 120.0
    ocr_file_seconds: float = 1800.0
    ocr_cache: str = ""
    # Distinct scanned pages one file may send to OCR (about 1.5 s each); a file with more is skipped.
    max_ocr_pages: int = 1000
    # Text one file may yield per byte of the file (0: no such bound). Uploads set it, so a 3 KB PDF or
    # zip cannot buy hours of embedding; `text_floor` characters are always allowed.
    max_text_ratio: int = 0
    text_floor: int = 100_000

    def text_limit(self, size: int) -> tuple[int, str]:
        """The characters of text a file of `size` bytes may yield, and the setting that says so."""
        if self.max_text_ratio and max(self.text_floor, self.max_text_ratio * size) < self.max_pdf_chars:
            return max(self.text_floor, self.max_text_ratio * size), "upload_text_ratio"
        return self.max_pdf_chars, "max_pdf_chars"



@dataclass(frozen=True)
class Skipped:
    """A file left out of the index and why."""

    path: str
    reason: str
    doc_id: str = ""


def find_files(roots: list[Path]) -> tuple[list[tuple[Path, str]], list[Skipped]]:
    """Walk the roots; return (file, document id) pairs and the paths that could not be walked."""
    found: list[tuple[Path, str]] = []
    skipped: list[Skipped] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append((root, root.name))
            continue
        if not root.is_dir():
            skipped.append(Skipped(str(root), "no such file or directory"))
            continue
        def on_error(exc: OSError, root=root):
            skipped.append(Skipped(str(exc.filename or root), f"cannot list directory: {exc.strerror}"))
        # followlinks=False: a symlink loop can never make the walk run forever.
        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or name.lower() == "readme.md" and Path(dirpath) == root:
                    continue
                if path.suffix.lower() not in SUFFIXES:
                    continue
                if not _is_utf8(name):
                    # Such a name cannot be stored in the UTF-8 manifest; indexing it would fail the commit.
                    skipped.append(Skipped(str(path), "file name is not valid UTF-8; rename the file"))
                    continue
                found.append((path, path.relative_to(root).as_posix()))
    return found, skipped


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name, held as lone surrogates
        return False
    return True


def read_bytes(path: Path) -> bytes:
    """A regular file's bytes, or UnreadableDocument naming why not."""
    try:
        # Reading a FIFO would block forever, and a device such as /dev/zero never ends.
        if not stat.S_ISREG(path.stat().st_mode):
            raise UnreadableDocument(f"{path}: not a regular file")
        return path.read_bytes()
    except PermissionError:
        raise UnreadableDocument(f"{path}: permission denied") from None
    except OSError as exc:
        raise UnreadableDocument(f"{path}: {exc.strerror or exc}") from None


def read_document(path: Path, doc_id: str, data: bytes | None = None,
                  limits: ReadLimits = ReadLimits(), progress=None) -> Document:
    """Read one file as a Document, or raise UnreadableDocument naming the reason.

    `progress(done, total)` hears of the pages of a scanned PDF as OCR reads them.
    """
    data = read_bytes(path) if data is None else data
    if not data.strip():
        raise UnreadableDocument(f"{path}: empty file")
    suffix = path.suffix.lower()
    if suffix in FORMAT_SUFFIXES:
        from .formats import read_formatted
        return read_formatted(path, doc_id, data, *limits.text_limit(len(data)))
    kind = "PDF" if suffix == ".pdf" else "HTML" if suffix in HTML_SUFFIXES else "text"
    try:
        if suffix == ".pdf":
            text, starts = join_pages(pdf_pages(data, path, limits, progress))
        else:
            text, starts = decode_text(data, path), (0,)
            if kind == "HTML":
                text = html_to_text(text)
    except UnreadableDocument:
        raise
    except MemoryError:
        raise UnreadableDocument(f"{path}: ran out of memory while reading") from None
    # A crafted file can make a parser fail in any way (AssertionError and RecursionError
    # included); that is one unreadable file, never an aborted run.
    except Exception as exc:
        raise UnreadableDocument(f"{path}: {'corrupt' if kind == 'PDF' else 'unreadable'} {kind} "
                                 f"({type(exc).__name__})") from None
    if not text.strip():
        raise UnreadableDocument(f"{path}: no text found")
    return Document(doc_id, str(path), hashlib.sha256(data).hexdigest(), text, starts)


def load_documents(roots: list[Path]) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file under the roots; unreadable ones are skipped with a reason."""
    files, skipped = find_files(roots)
    docs: dict[str, Document] = {}
    for path, doc_id in files:
        if doc_id in docs:
            skipped.append(Skipped(str(path), f"duplicate document id {doc_id!r}"))
            continue
        try:
            docs[doc_id] = read_document(path, doc_id)
        except UnreadableDocument as exc:
            skipped.append(Skipped(str(path), reason_of(exc, path), doc_id))
    return list(docs.values()), skipped


def reason_of(exc: UnreadableDocument, path: Path) -> str:
    """The reason part of an UnreadableDocument message."""
    return str(exc).removeprefix(f"{path}: ")


def decode_text(data: bytes, path: Path) -> str:
    """Decode bytes as UTF-8 or UTF-16 (by BOM), else by the encoding charset-normalizer detects; refuse binary data."""
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return normalize_newlines(data.decode(enc))
            except UnicodeDecodeError:
                raise UnreadableDocument(f"{path}: invalid {enc} text") from None
    sample = data[:8192]
    if b"\x00" in sample or sum(b < 9 or 13 < b < 32 for b in sample) > len(sample) // 20:
        raise UnreadableDocument(f"{path}: binary data, not text")
    try:
        return normalize_newlines(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return normalize_newlines(_decode_detected(data))


# Among encodings that decode a sample about equally cleanly (charset-normalizer's "chaos" within
# this margin), Windows-1252 wins: short Western text decodes without errors in several Latin code
# pages, and 1252 is the most common of them (the WHATWG default for legacy pages).
_CHAOS_MARGIN = 0.1


def _decode_detected(data: bytes) -> str:
    """Legacy 8-bit or CJK text, decoded with the encoding charset-normalizer finds most coherent.

    Detection reads at most the first 64 KB, so a large file costs no more than a small one.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:65536]))
    if matches:
        best = min(matches, key=lambda m: (m.chaos, -m.coherence))
        close = [m for m in matches if m.encoding == "cp1252" and m.chaos <= best.chaos + _CHAOS_MARGIN]
        try:
            return data.decode((close or [best])[0].encoding)
        except (UnicodeDecodeError, LookupError):  # the sample decoded, a later byte does not
            pass
    return data.decode("cp1252", "replace")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _VisibleText(HTMLParser):
    HIDDEN = {"script", "style", "head", "title", "noscript", "template", "svg", "iframe"}
    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
              "table", "section", "article", "header", "footer", "blockquote", "pre", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML page: no tags, scripts or styles; blocks become paragraphs."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def pdf_pages(data: bytes, path: Path, limits: ReadLimits = ReadLimits(), progress=None) -> list[str]:
    """The text of each page of a PDF, within the limits' pages and characters; scanned pages by OCR."""
    import io

    from pypdf import PdfReader

    from .ocr import fill_scanned_pages, too_much_text

    # pypdf logs damage it works around ("EOF marker not found"); the one-line reason says enough.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not _opens_without_password(reader):
        raise UnreadableDocument(f"{path}: encrypted PDF (it needs a password)")
    if len(reader.pages) > limits.max_pdf_pages:
        raise UnreadableDocument(f"{path}: more than {limits.max_pdf_pages:,} pages (max_pdf_pages)")
    limit = limits.text_limit(len(data))[0]
    pages, chars, repeats, seen = [], 0, set(), set()
    for number, page in enumerate(reader.pages):
        keys = page_keys(page)
        if seen.intersection(keys):
            # A page tree may list one page (or pages drawing one content stream) thousands of times:
            # its text is read and indexed once; the repeats keep their page numbers, empty.
            pages.append("")
            repeats.add(number)
            continue
        seen.update(keys)
        pages.append(normalize_newlines(page.extract_text() or ""))
        chars += len(pages[-1])
        if chars > limit:
            raise too_much_text(path, limits, len(data))
    return fill_scanned_pages(reader, data, pages, path, limits, progress, repeats)


def page_keys(page) -> set[tuple]:
    """What makes two pages of one PDF the same: the page object, or the same content streams and resources."""
    from pypdf.generic import ArrayObject, IndirectObject

    keys = set()
    if page.indirect_reference is not None:
        keys.add(("page", page.indirect_reference.idnum, page.indirect_reference.generation))
    contents = page.raw_get("/Contents") if "/Contents" in page else None
    if isinstance(contents, IndirectObject):
        resolved = contents.get_object()
        parts = list(resolved) if isinstance(resolved, ArrayObject) else [contents]
    else:
        parts = list(contents) if isinstance(contents, ArrayObject) else []
    if parts and all(isinstance(p, IndirectObject) for p in parts):
        resources = page.raw_get("/Resources") if "/Resources" in page else None
        shared = ((resources.idnum, resources.generation) if isinstance(resources, IndirectObject)
                  else id(resources))  # a direct dictionary, shared only by pages pypdf copied it into
        keys.add(("contents", tuple((p.idnum, p.generation) for p in parts), shared))
    return keys


def _opens_without_password(reader) -> bool:
    """True for a PDF encrypted with an empty user password (only an owner password set)."""
    from pypdf.errors import DependencyError

    try:
        return bool(reader.decrypt(""))
    except DependencyError:  # AES needs the optional `cryptography` package
        return False


def join_pages(pages: list[str]) -> tuple[str, tuple[int, ...]]:
    """Join page texts with blank lines; return the text and each page's start offset."""
    starts, parts, offset = [], [], 0
    for page in pages:
        starts.append(offset)
        parts.append(page)
        offset += len(page) + 2
    return "\n\n".join(parts), tuple(starts)
