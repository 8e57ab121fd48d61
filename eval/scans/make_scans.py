"""Make scanned PDFs from known text: pages rendered to images, with no text layer.

Each page is drawn at `dpi` with DejaVu Serif (Debian's fonts-dejavu-core), then roughened like a
scan: a slight rotation, a little blur and dark specks. The PDF holds only the images (fpdf2), so
reading it needs OCR. `python eval/scans/make_scans.py` writes the eval set's corpus,
`eval/scans/corpus/field-notes.pdf`, from the pages in `PAGES` below.
"""

from __future__ import annotations

import io
import random
import sys
import textwrap
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
A4_MM = (210, 297)


def render_page(text: str, dpi: int = 200, rotate: float = 0.6, blur: float = 0.6, noise: int = 3,
                seed: int = 0, font_pt: float = 11.0):
    """An A4 page image (greyscale PIL image) of `text`, wrapped at 75 columns, roughened like a scan."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = (round(mm / 25.4 * dpi) for mm in A4_MM)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), round(font_pt / 72 * dpi))
    line_height = round(font_pt * 1.5 / 72 * dpi)
    x, y = round(20 / 25.4 * dpi), round(25 / 25.4 * dpi)
    for paragraph in text.split("\n\n"):
        for line in textwrap.wrap(" ".join(paragraph.split()), 75):
            draw.text((x, y), line, font=font, fill=20)
            y += line_height
        y += line_height // 2
    if rotate:
        page = page.rotate(rotate, resample=Image.BICUBIC, fillcolor=255, expand=False)
    if blur:
        page = page.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        rng = random.Random(seed)
        grain = Image.frombytes("L", page.size, _noise_bytes(page.size, noise, rng))
        page = Image.composite(Image.new("L", page.size, 0), page, grain)
    return page


def _noise_bytes(size: tuple[int, int], amount: int, rng: random.Random) -> bytes:
    """A mask that darkens about `amount` per mille of the pixels (specks), seeded."""
    import numpy as np

    gen = np.random.default_rng(rng.randrange(2**32))
    specks = gen.random(size[::-1]) < amount / 1000
    return (specks * 96).astype("uint8").tobytes()


def scanned_pdf(pages: list[str | None], dpi: int = 200, text_pages: dict[int, str] | None = None,
                bilevel: bool = False, **roughen) -> bytes:
    """A PDF whose pages are images of `pages` (no text layer); `text_pages` puts real text on some pages.

    `bilevel` stores black and white only, as office scanners do: about 12 KB a page instead of 140 KB.
    """
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    for number, text in enumerate(pages):
        pdf.add_page()
        if text_pages and number in text_pages:
            pdf.set_font("Helvetica", size=11)
            pdf.set_xy(20, 25)
            pdf.multi_cell(170, 6, text_pages[number])
            continue
        image = io.BytesIO()
        page = render_page(text or "", dpi=dpi, seed=number, **roughen)
        if bilevel:
            page = page.point(lambda v: 255 if v > 150 else 0).convert("1", dither=0)
        page.save(image, "PNG", optimize=True)
        pdf.image(image, x=0, y=0, w=A4_MM[0], h=A4_MM[1])
    return bytes(pdf.output())


PAGES = [
    """Field notes of the Lindqvist survey, season of 1987.

    The survey team reached the northern ridge on the fourth of June and set up camp beside the
    Harrow stream. The camp was named Basecamp Osprey after the birds nesting on the cliffs above it.

    The leader of the expedition was Dr. Ingrid Halvorsen, a geologist from the University of Bergen.
    She kept the main logbook, which was bound in green oilcloth.""",
    """Measurements taken on the ridge.

    The highest point of the ridge was measured at 1,482 metres above sea level. The team recorded
    a temperature of minus seven degrees on the coldest night, the nineteenth of June.

    Rock samples were packed in numbered canvas bags. In total the team collected 214 samples, of
    which 37 were sent to the laboratory in Trondheim for dating.""",
    """Supplies and the journey home.

    Supplies were carried up the valley by a team of eleven pack horses hired from a farm at
    Solvik. The horses were led by a farmer called Einar Brekke, who knew every path on the mountain.

    The team broke camp on the second of August, after a storm destroyed the radio mast. The
    logbook ends with the words: the mountain kept its secrets well.""",
]

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus" / "field-notes.pdf"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(scanned_pdf([textwrap.dedent(p) for p in PAGES], bilevel=True))
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
