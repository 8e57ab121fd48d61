"""Measure cited summaries and comparisons against the hand labels in this folder (docs/eval-summaries.md).

    nice .venv/bin/python eval/summaries/measure.py [--out eval/reports/summaries.json] [--only NAME ...]

`keypoints.jsonl` holds, for each document, its key points as hand-marked groups of words: a point is
covered when, for every group, one of its words stands in the summary. `compare.jsonl` holds document
pairs with the differences a reader marked; one is found when an "only" or "differ" finding of the
comparison names one of its words on the side of the document that says it. Every labelled document is
copied into one temporary corpus and indexed with the real models; the default model tier summarizes.
Faithfulness is the share of the sentences the model chose that the verifier backed in their passage.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOKENS_PER_PAGE = 500


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def normal(text: str) -> str:
    return " ".join(text.replace("’", "'").replace("‘", "'").lower().split())


def covered(point: dict, text: str) -> bool:
    """Whether every word group of a key point has one of its words in the text."""
    text = normal(text)
    return all(any(normal(word) in text for word in group) for group in point["all"])


def found(difference: dict, comparison, docs: dict) -> bool:
    """Whether an "only" or "differ" finding states the difference on the side of the document that says it."""
    doc = docs[difference["only"]]
    for f in comparison.findings:
        if f.kind == "agree":
            continue
        for side in (f.a, f.b):
            if side is not None and side.doc == doc and any(normal(w) in normal(side.text) for w in difference["any"]):
                return True
    return False


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from rag.config import Settings
    from rag.pipeline import Pipeline
    from rag.whole.compare import Comparison
    from rag.whole.summarize import Summary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "reports" / "summaries.json")
    parser.add_argument("--only", action="append", help="only documents or pairs whose name contains this")
    parser.add_argument("--length", choices=["short", "long"], default="short")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--work", type=Path, help="keep the corpus, index and summary cache here (reused)")
    args = parser.parse_args(argv)

    keypoints, pairs = load("keypoints.jsonl"), load("compare.jsonl")
    if args.only:
        keypoints = [k for k in keypoints if any(o in k["doc"] for o in args.only)]
        pairs = [p for p in pairs if any(o in p["pair"] for o in args.only)]
    if args.no_compare:
        pairs = []
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-summaries-"))
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    paths = {k["doc"] for k in keypoints} | {p[side] for p in pairs for side in ("a", "b")}
    for path in sorted(paths):
        shutil.copy2(ROOT / path, corpus / Path(path).name)
    pipeline = Pipeline(Settings.load(index_dir=work / "index"))
    began = time.perf_counter()
    report = pipeline.index([corpus])
    print(f"indexed {report.documents} documents, {report.chunks} chunks in {time.perf_counter() - began:.0f} s",
          file=sys.stderr, flush=True)

    results = {"model": pipeline.tier, "machine": f"{cpu_name()}, {platform.machine()}", "length": args.length,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "documents": [], "pairs": []}
    for labels in keypoints:
        name = Path(labels["doc"]).name
        summary = next(e for e in pipeline.summarize(name, args.length).run() if isinstance(e, Summary))
        hits = [covered(p, summary.text) for p in labels["points"]]
        s = summary.stats
        row = {"doc": labels["doc"], "format": labels["format"], "chosen": s["sentences_chosen"],
               "verified": s["verified"], "dropped": s["dropped"], "faithfulness": s["faithfulness"],
               "shown": len(summary.points), "key_points": len(hits),
               "covered": sum(hits), "coverage": round(sum(hits) / len(hits), 4), "seconds": s["seconds"],
               "prompt_tokens": s["prompt_tokens"], "parts": s["parts"],
               "seconds_per_page": round(s["seconds"] / max(s["prompt_tokens"] / TOKENS_PER_PAGE, 1e-9), 1),
               "missed": [p["point"] for p, hit in zip(labels["points"], hits) if not hit],
               "summary": summary.text}
        results["documents"].append(row)
        print(f"{name}: faithfulness {row['faithfulness']}, coverage {row['covered']}/{row['key_points']}, "
              f"{row['seconds']} s", file=sys.stderr, flush=True)
        _write(args.out, results)
    for pair in pairs:
        docs = {"a": Path(pair["a"]).name, "b": Path(pair["b"]).name}
        began = time.perf_counter()
        comparison = next(e for e in pipeline.compare(docs["a"], docs["b"], pair["about"]).run()
                          if isinstance(e, Comparison))
        hits = [found(d, comparison, docs) for d in pair["differences"]]
        row = {"pair": pair["pair"], "a": pair["a"], "b": pair["b"], "about": pair["about"],
               "differences": len(hits), "found": sum(hits), "share_found": round(sum(hits) / len(hits), 4),
               "missed": [d["point"] for d, hit in zip(pair["differences"], hits) if not hit],
               "counts": {k: comparison.stats[k] for k in ("agree", "differ", "only")},
               "seconds": round(time.perf_counter() - began, 1), "comparison": comparison.to_dict()}
        results["pairs"].append(row)
        print(f"{pair['pair']}: found {row['found']}/{row['differences']} differences in {row['seconds']} s",
              file=sys.stderr, flush=True)
        _write(args.out, results)
    print(table(results))
    return 0


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def table(results: dict) -> str:
    """The results as the Markdown tables of docs/eval-summaries.md."""
    rows = ["| document | format | sentences chosen | verified | dropped | faithfulness | key points "
            "covered | s | s/page |", "|---|---|---|---|---|---|---|---|---|"]
    docs = results["documents"]
    for r in docs:
        rows.append(f"| {r['doc'].split('/')[-1]} | {r['format']} | {r['chosen']} | {r['verified']} | "
                    f"{r['dropped']} | {r['faithfulness']:.2f} | {r['covered']}/{r['key_points']} | "
                    f"{r['seconds']:.0f} | {r['seconds_per_page']:.0f} |")
    if docs:
        chosen, verified = sum(r["chosen"] for r in docs), sum(r["verified"] for r in docs)
        points, hit = sum(r["key_points"] for r in docs), sum(r["covered"] for r in docs)
        seconds, tokens = sum(r["seconds"] for r in docs), sum(r["prompt_tokens"] for r in docs)
        rows.append(f"| **all {len(docs)}** | | {chosen} | {verified} | "
                    f"{sum(r['dropped'] for r in docs)} | **{verified / max(chosen, 1):.2f}** | **{hit}/{points} "
                    f"({hit / max(points, 1):.2f})** | {seconds:.0f} | {seconds / (tokens / TOKENS_PER_PAGE):.0f} |")
    out = "\n".join(rows)
    if results["pairs"]:
        out += "\n\n| pair | about | differences found | agree / differ / only | s |\n|---|---|---|---|---|\n"
        out += "\n".join(f"| {p['a'].split('/')[-1]} vs {p['b'].split('/')[-1]} | {p['about'] or '(whole)'} | "
                         f"{p['found']}/{p['differences']} ({p['share_found']:.2f}) | {p['counts']['agree']} / "
                         f"{p['counts']['differ']} / {p['counts']['only']} | {p['seconds']:.0f} |"
                         for p in results["pairs"])
    return out


if __name__ == "__main__":
    sys.exit(main())
