"""Office files and e-books to `Document`s: the suffix picks the reader, after the bytes are checked.

Which library reads what, and why, is in docs/formats.md. Every file is first sniffed (its
extension may lie; an encrypted Office file is an OLE container, not a zip) and, if it is a zip,
checked against `ZipLimits` before any library opens it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import UnreadableDocument
from ..records import Document
from .archive import ZipLimits, check_zip, refuse_wrong_kind
from .sections import SectionedText, TextTooLong

KINDS = {".docx": "Word document", ".pptx": "PowerPoint file", ".xlsx": "Excel file",
         ".odt": "OpenDocument text", ".epub": "EPUB e-book", ".rtf": "RTF file"}
FORMAT_SUFFIXES = set(KINDS)


def read_formatted(path: Path, doc_id: str, data: bytes, max_chars: int, setting: str = "max_pdf_chars",
                   zip_limits: ZipLimits = ZipLimits()) -> Document:
    """An Office file or e-book as a Document with sections, or UnreadableDocument naming why not.

    Past `max_chars` characters of text it is refused, naming `setting` (the limit's name).
    """
    suffix = path.suffix.lower()
    refuse_wrong_kind(data, path)
    if suffix != ".rtf":
        check_zip(data, path, zip_limits)
    out = SectionedText(max_chars)
    try:
        _fill(suffix, data, path, out)
    except UnreadableDocument:
        raise
    except TextTooLong as exc:
        raise UnreadableDocument(f"{path}: {exc} ({setting})") from None
    except MemoryError:
        raise UnreadableDocument(f"{path}: ran out of memory while reading") from None
    # A damaged part can make a library fail in any way (KeyError, lxml's XMLSyntaxError, ...).
    except Exception as exc:
        raise UnreadableDocument(f"{path}: corrupt {KINDS[suffix]} ({type(exc).__name__})") from None
    text, sections = out.build()
    if not text.strip():
        raise UnreadableDocument(f"{path}: no text found")
    return Document(doc_id, str(path), hashlib.sha256(data).hexdigest(), text, (0,), sections)


def _fill(suffix: str, data: bytes, path: Path, out: SectionedText) -> None:
    if suffix == ".docx":
        from .office import docx_text
        docx_text(data, out)
    elif suffix == ".pptx":
        from .office import pptx_text
        pptx_text(data, out)
    elif suffix == ".xlsx":
        from .office import xlsx_text
        xlsx_text(data, out)
    elif suffix == ".odt":
        from .opendocument import odt_text
        odt_text(data, out)
    elif suffix == ".epub":
        from .epub import epub_text, refuse_drm
        refuse_drm(data, path)
        epub_text(data, out)
    else:
        from striprtf.striprtf import rtf_to_text
        for paragraph in rtf_to_text(data.decode("latin-1"), errors="ignore").split("\n"):
            out.add(paragraph)
