"""Compare our readers with markitdown on the formats corpus: facts found, rows kept whole, locations, time.

    PYTHONPATH=. .venv/bin/python eval/formats/compare_readers.py ours
    /tmp/mdvenv/bin/python eval/formats/compare_readers.py markitdown   # a venv with markitdown[docx,pptx,xlsx]

Each reader turns every corpus file into text (5 rounds, the best round counts); the script then checks
every gold quote of dataset.jsonl: whole (the quote, a table row included, stands in the text with
whitespace and Markdown table pipes normalised) and located (our chunk location equals the gold one;
markitdown has no chunk locations, so only its slide comments and sheet headings are looked for).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read_ours(path: Path) -> tuple[str, list[str]]:
    from rag.documents.ingest import read_document

    doc = read_document(path, path.name)
    return doc.text, [label for _, label in doc.sections]


_CONVERTER = []


def read_markitdown(path: Path) -> tuple[str, list[str]]:
    if not _CONVERTER:  # built once: it loads magika's model
        from markitdown import MarkItDown
        _CONVERTER.append(MarkItDown(enable_plugins=False))
    text = _CONVERTER[0].convert(str(path)).text_content
    labels = re.findall(r"<!-- Slide number: (\d+) -->", text) + re.findall(r"^## (.+)$", text, re.M)
    return text, labels


def normalise(text: str) -> str:
    """Cells joined by single " | ", whitespace collapsed: a Markdown table row and ours compare equal."""
    text = re.sub(r"\s*\|\s*", " | ", text)
    return " ".join(text.split()).replace("| |", "|").strip(" |")


def main() -> None:
    reader = sys.argv[1]
    read = read_ours if reader == "ours" else read_markitdown
    items = [json.loads(line) for line in (HERE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]
    files = sorted((HERE / "corpus").iterdir())
    started = time.perf_counter()
    read(files[0])  # imports paid once, outside the timing
    import_seconds = time.perf_counter() - started
    out = {"reader": reader, "first_file_with_imports_s": round(import_seconds, 3), "files": {}}
    texts = {}
    for path in files:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            try:
                texts[path.name] = read(path)
            except Exception as exc:  # a reader that cannot read the format at all
                texts[path.name] = ("", [])
                out["files"][path.name] = {"error": f"{type(exc).__name__}: {str(exc)[:80]}"}
                break
            best = min(best, time.perf_counter() - t)
        else:
            out["files"][path.name] = {"ms": round(best * 1000, 2), "chars": len(texts[path.name][0])}
    whole = 0
    for item in items:
        for support in item["support"]:
            text, _ = texts[support["doc"]]
            whole += normalise(support["quote"]) in normalise(text)
    gold = sum(len(i["support"]) for i in items)
    out["quotes_whole"] = f"{whole}/{gold}"
    out["total_ms"] = round(sum(f.get("ms", 0) for f in out["files"].values()), 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
