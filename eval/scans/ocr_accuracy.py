"""Character accuracy of the OCR path on pages made from known text: `python eval/scans/ocr_accuracy.py`.

Each page of `make_scans.PAGES` is rendered (clean, or roughened like a scan), put in a PDF without a
text layer and read back through `rag.documents.ingest.pdf_pages`, as `rag index` reads it. Accuracy is
1 - CER: one minus the edit distance between the read text and the known text (whitespace runs made
one space in both) over the known text's length.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_scans import PAGES, scanned_pdf  # noqa: E402

CLEAN = {"rotate": 0.0, "blur": 0.0, "noise": 0}
SCANNED = {"rotate": 0.6, "blur": 0.6, "noise": 3}
ROUGH = {"rotate": 1.5, "blur": 1.0, "noise": 12}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), two rows at a time."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_accuracy(read: str, known: str) -> float:
    """1 - CER, over whitespace-normalised text."""
    read, known = " ".join(read.split()), " ".join(known.split())
    return 1 - edit_distance(read, known) / len(known)


def read_pages(pdf: bytes) -> list[str]:
    """The PDF's page texts as `rag index` reads them (OCR for the scanned pages, no cache)."""
    from rag.documents.ingest import ReadLimits, pdf_pages

    return pdf_pages(pdf, Path("scan.pdf"), ReadLimits())


def measure(dpi: int, roughen: dict, bilevel: bool = False) -> tuple[float, float]:
    """(accuracy over all PAGES, seconds per page) for pages made at `dpi` with `roughen`."""
    known = [textwrap.dedent(p) for p in PAGES]
    pdf = scanned_pdf(known, dpi=dpi, bilevel=bilevel, **roughen)
    began = time.perf_counter()
    read = read_pages(pdf)
    seconds = (time.perf_counter() - began) / len(known)
    return character_accuracy("\n".join(read), "\n".join(known)), seconds


if __name__ == "__main__":
    print("| page | dpi | character accuracy (1 - CER) | seconds per page |")
    print("|---|---:|---:|---:|")
    for name, roughen in (("clean", CLEAN), ("scanned: 0.6° rotation, blur 0.6 px, 0.3% specks", SCANNED),
                          ("rough: 1.5° rotation, blur 1 px, 1.2% specks", ROUGH)):
        for dpi in (150, 200, 300):
            accuracy, seconds = measure(dpi, roughen)
            print(f"| {name} | {dpi} | {accuracy:.4f} | {seconds:.2f} |")
    accuracy, seconds = measure(200, SCANNED, bilevel=True)
    print(f"| scanned, stored black and white (the eval corpus) | 200 | {accuracy:.4f} | {seconds:.2f} |")
