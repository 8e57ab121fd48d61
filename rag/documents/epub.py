"""EPUB e-books to sectioned text with ebooklib: chapters in reading order, each heading a section.

An e-book with DRM (an `encryption.xml` that encrypts more than fonts, or Adobe's `rights.xml`)
holds ciphertext where its chapters should be: it is refused with the reason rather than indexed
as noise.
"""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from ..errors import UnreadableDocument
from .sections import SectionedText

# Font obfuscation (IDPF, Adobe) scrambles embedded fonts only; it is not DRM on the text.
FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


def refuse_drm(data: bytes, path: Path) -> None:
    """Raise UnreadableDocument when the e-book's text is encrypted (DRM)."""
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if "META-INF/rights.xml" in names:
            raise UnreadableDocument(f"{path}: e-book with DRM (META-INF/rights.xml); remove the DRM or "
                                     "use a DRM-free copy")
        if "META-INF/encryption.xml" not in names:
            return
        # Already inflated once by check_zip, within its limits.
        try:
            root = ET.fromstring(archive.read("META-INF/encryption.xml"))
        except ET.ParseError:
            raise UnreadableDocument(f"{path}: e-book with DRM (unreadable encryption.xml)") from None
    algorithms = {e.get("Algorithm", "") for e in root.iter() if e.tag.endswith("EncryptionMethod")}
    if algorithms - FONT_OBFUSCATION or not algorithms:
        raise UnreadableDocument(f"{path}: e-book with DRM (its content is encrypted); remove the DRM or "
                                 "use a DRM-free copy")


def epub_text(data: bytes, out: SectionedText) -> None:
    """The chapters in spine order; a chapter's headings start sections, else its table-of-contents title."""
    import warnings

    from ebooklib import ITEM_DOCUMENT, epub

    with warnings.catch_warnings():  # ebooklib warns about options whose defaults will change
        warnings.simplefilter("ignore")
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
    titles = _toc_titles(book.toc)
    for number, (idref, _linear) in enumerate(book.spine, start=1):
        item = book.get_item_with_id(idref)
        # The navigation document repeats the table of contents; it is not a chapter.
        if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        out.start(titles.get(item.get_name(), "") or f"chapter {number}")
        parser = _Blocks()
        parser.feed(item.get_content().decode("utf-8", "replace"))
        parser.close()
        for kind, text in parser.blocks:
            if kind == "heading":
                out.start(text)
            out.add(text)


def _toc_titles(toc) -> dict[str, str]:
    """File name → title, from the e-book's table of contents (nested sections flattened)."""
    titles: dict[str, str] = {}
    for entry in toc:
        if isinstance(entry, tuple):
            section, children = entry
            titles.setdefault(section.href.split("#")[0], section.title)
            titles.update({k: v for k, v in _toc_titles(children).items() if k not in titles})
        elif getattr(entry, "href", None):
            titles.setdefault(entry.href.split("#")[0], entry.title)
    return titles


class _Blocks(HTMLParser):
    """A chapter's visible text as ("heading" | "text", text) blocks."""

    HIDDEN = {"script", "style", "head", "title", "noscript", "template", "svg"}
    HEADINGS = {"h1", "h2", "h3"}
    BLOCKS = {"p", "div", "br", "li", "h4", "h5", "h6", "tr", "table", "section", "blockquote", "pre", "hr",
              "dt", "dd"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.parts: list[str] = []
        self.hidden = 0
        self.kind = "text"

    def flush(self, next_kind: str = "text") -> None:
        text = " ".join("".join(self.parts).split())
        if text:
            self.blocks.append((self.kind, text))
        self.parts, self.kind = [], next_kind

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.HEADINGS:
            self.flush("heading")
        elif tag in self.BLOCKS:
            self.flush(self.kind)

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.HEADINGS:
            self.flush()
        elif tag in self.BLOCKS:
            self.flush(self.kind)

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)

    def close(self):
        super().close()
        self.flush()
