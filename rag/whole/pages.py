"""A cited PDF page rendered by pypdfium2, with the cited sentence's characters boxed.

The index reads a PDF's text with pypdf; pdfium has its own text layer with a box for each character.
The two agree on the characters but not always on the spaces and line breaks between them, so the
quote is found in pdfium's text with all whitespace left out, and mapped back to pdfium's characters.
A scanned page has no text layer: its text came from tesseract, so tesseract reads the page again, with
each word's box, and the quote is found among those words the same way.
"""

from __future__ import annotations

import io
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..documents.ocr import MIN_TEXT_CHARS, TESSERACT
from ..errors import BadInput

# Rendered at this many pixels per PDF point (72 per inch): 1.4 is about 100 dpi, legible in a side panel.
SCALE = 1.4
HIGHLIGHT = (245, 158, 11)
# A scanned page's words are read again by tesseract to box the cited ones: about 2 s a page at 300 dpi.
OCR_SECONDS = 60
# Quote characters that text extraction often writes differently.
_FOLD = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00ad": ""})


@dataclass(frozen=True)
class RenderedPage:
    """A page as PNG bytes, its 1-based number, and the boxes drawn (pixels: left, top, right, bottom)."""

    png: bytes
    page: int
    boxes: tuple[tuple[int, int, int, int], ...]


def page_text(textpage) -> str:
    """pdfium's text of a page, one character per character index (so index i has charbox i)."""
    count = textpage.count_chars()
    text = textpage.get_text_range(0, count) if count else ""
    if len(text) != count:  # characters outside the BMP come as two: read them one by one
        text = "".join((textpage.get_text_range(i, 1) or " ")[:1] for i in range(count))
    return text


def find_quote(text: str, quote: str) -> range | None:
    """The character indices of `text` that spell `quote`, whitespace and quote styles aside; None if absent.

    >>> find_quote("The  tariff\\r\\nrises to 2.18 euros.", "tariff rises to 2.18")
    range(5, 26)
    """
    kept = [i for i, ch in enumerate(text) if not ch.isspace() and ch.translate(_FOLD)]
    flat = "".join(text[i].translate(_FOLD) for i in kept).casefold()
    wanted = "".join(quote.translate(_FOLD).split()).casefold()
    at = flat.find(wanted) if wanted else -1
    if at < 0:
        return None
    return range(kept[at], kept[at + len(wanted) - 1] + 1)


def find_words(words: list[str], quote: str) -> range | None:
    """The indices of the `words` that spell `quote`, whitespace and quote styles aside; None if absent.

    >>> find_words(["The", "tariff", "rises", "to", "2.18", "euros."], "tariff rises to 2.18")
    range(1, 5)
    """
    owner = [n for n, word in enumerate(words) for ch in word if not ch.isspace() and ch.translate(_FOLD)]
    found = find_quote("".join(words), quote)
    return range(owner[found.start], owner[found.stop - 1] + 1) if found else None


def scanned_boxes(pdf_page, quote: str, scale: float, key: tuple = ()) -> list[tuple[int, int, int, int]]:
    """The cited words of a scanned page, boxed one box per line, in pixels of the page drawn at `scale`.
    `key` names the file and page, so the words of a page read once are kept (`_read_words`)."""
    words, ocr_scale = _read_words(key, pdf_page) if key else _ocr(pdf_page)
    found = find_words([w for w, _, _ in words], quote)
    if not found:
        return []
    lines: dict[tuple[int, int, int], list[int]] = {}
    for _, (left, top, right, bottom), line in (words[i] for i in found):
        box = lines.setdefault(line, [left, top, right, bottom])
        box[:] = [min(box[0], left), min(box[1], top), max(box[2], right), max(box[3], bottom)]
    ratio = scale / ocr_scale
    return [tuple(int(v * ratio) for v in box) for box in lines.values()]


def _ocr(pdf_page) -> tuple[list, float]:
    from ..documents import ocr

    image, ocr_scale = ocr.page_image(pdf_page)
    return ocr.ocr_words(image, OCR_SECONDS), ocr_scale


_WORDS: dict[tuple, tuple[list, float]] = {}
_WORDS_KEPT = 64  # pages; an answer shows a few, and a page's words are a few kilobytes
_WORDS_LOCK = threading.Lock()


def _read_words(key: tuple, pdf_page) -> tuple[list, float]:
    """A scanned page's words, read by tesseract once per file version and page (a reopened answer, or a
    passage that runs onto the next page, does not wait for OCR again)."""
    with _WORDS_LOCK:
        kept = _WORDS.get(key)
    if kept is None:
        kept = _ocr(pdf_page)
        with _WORDS_LOCK:
            while len(_WORDS) >= _WORDS_KEPT:
                _WORDS.pop(next(iter(_WORDS)))
            _WORDS[key] = kept
    return kept


def line_boxes(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Character boxes (left, bottom, right, top) merged into one box per line, in order."""
    lines: list[list[float]] = []
    for left, bottom, right, top in boxes:
        if right <= left or top <= bottom:
            continue  # a generated space or line break has no box
        last = lines[-1] if lines else None
        middle = (bottom + top) / 2
        if last and last[1] <= middle <= last[3] and left >= last[0] - 2:
            last[:] = [min(last[0], left), min(last[1], bottom), max(last[2], right), max(last[3], top)]
        else:
            lines.append([left, bottom, right, top])
    return [tuple(line) for line in lines]


def render_cited_page(pdf: Path | bytes, page: int, quote: str = "", scale: float = SCALE) -> RenderedPage:
    """The PDF's page `page` (1-based) as PNG, with the characters of `quote` boxed when the page's text
    layer holds them, or, on a scanned page, the words tesseract reads there (without tesseract, or when
    it does not find them, the page is shown unmarked)."""
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    try:
        document = pdfium.PdfDocument(pdf if isinstance(pdf, bytes) else str(pdf))
    except pdfium.PdfiumError as exc:
        raise BadInput(f"cannot open the PDF: {exc}") from None
    try:
        if not 1 <= page <= len(document):
            raise BadInput(f"page {page} is not in the PDF (it has {len(document)})")
        pdf_page = document[page - 1]
        height = pdf_page.get_height()
        textpage = pdf_page.get_textpage()
        text = page_text(textpage)
        found = find_quote(text, quote) if quote.strip() else None
        boxes = line_boxes([textpage.get_charbox(i) for i in found]) if found else []
        pixels = [(int(left * scale) - 2, int((height - top) * scale) - 2,
                   int(right * scale) + 2, int((height - bottom) * scale) + 2) for left, bottom, right, top in boxes]
        if not pixels and quote.strip() and len(text.strip()) < MIN_TEXT_CHARS and shutil.which(TESSERACT):
            key = (str(pdf), pdf.stat().st_mtime_ns, page) if isinstance(pdf, Path) else ()
            pixels = [(left - 2, top - 2, right + 2, bottom + 2)
                      for left, top, right, bottom in scanned_boxes(pdf_page, quote, scale, key)]
        image = pdf_page.render(scale=scale).to_pil().convert("RGB")
        draw = ImageDraw.Draw(image, "RGBA")
        for box in pixels:
            draw.rectangle(box, fill=(*HIGHLIGHT, 60), outline=(*HIGHLIGHT, 255), width=2)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return RenderedPage(out.getvalue(), page, tuple(pixels))
    finally:
        document.close()
