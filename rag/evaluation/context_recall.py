"""What the model reads: does the gold answer lie in it? And do paraphrased twins retrieve what their
originals retrieve? Retrieval and context only, no generation.

    python -m rag.evaluation.context_recall [--set news] [--index-root DIR] [--split all|tune|report]

Per answerable item with gold quotes, over the top k hits the answer path retrieves (`top_k`):
- recall@k: the share of its gold quotes inside one of the hits' chunks (`rag eval`'s retrieval recall);
- context recall, whole chunks and sentence windows: whether a gold short answer's words stand in the
  text the model would read (the hits' chunks as they are, or the sentence windows `build_context`
  makes of them), in order and next to each other, after `rag eval`'s answer normalisation (lowercased
  words, no articles);
- quote recall, windows: the share of its gold quotes that a sentence window overlaps.
Twins: items with `twin_of` (the same question in other words) against their originals, on recall@k
and on window context recall. Each set is indexed with the default embedder under --index-root (shared
with `rag eval --index-root`) or a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ..config import Settings
from ..pipeline import Pipeline
from .evaluate import EVAL_SETS, gold_spans, load_jsonl, normalize_answer, open_sets, quotes_retrieved, select_items


def holds(text: str, golds: list[str]) -> bool:
    """Whether one gold short answer's words stand in `text`, in order and next to each other."""
    have = normalize_answer(text)
    for gold in golds:
        want = normalize_answer(gold)
        if want and any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1)):
            return True
    return False


def overlaps(span: tuple[str, int, int], passages) -> bool:
    doc, a, b = span
    return any(p.doc == doc and p.start < b and a < p.end for p in passages)


def measure(pipeline: Pipeline, items: list[dict], corpus: Path) -> list[dict]:
    rows = []
    k = pipeline.settings.top_k
    for item in items:
        spans = gold_spans(item, corpus, pipeline.read_limits)
        if not (item["answerable"] and spans):
            continue
        question = pipeline.rewrite_follow_up(item["question"], item.get("history") or [])
        hits = pipeline.retriever.search(question, k)
        windows, _ = pipeline.build_context(hits, question)
        golds = item.get("short_answers") or [item["answer"]]
        rows.append({
            "id": item["id"], "type": item["type"], "split": item.get("split", "report"),
            "twin_of": item.get("twin_of"),
            "recall": quotes_retrieved(hits, spans)[0] / len(spans),
            "chunks_hold": holds(" ".join(h.chunk.text for h in hits), golds),
            "windows_hold": holds(" ".join(p.text for p in windows), golds),
            "window_quotes": sum(overlaps(s, windows) for s in spans) / len(spans),
            "chunk_chars": sum(len(h.chunk.text) for h in hits), "window_chars": sum(len(p.text) for p in windows)})
    return rows


def mean(values) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 3) if values else None


def summary(rows: list[dict]) -> dict:
    return {"items": len(rows), "recall@k": mean(r["recall"] for r in rows),
            "context_recall_chunks": mean(r["chunks_hold"] for r in rows),
            "context_recall_windows": mean(r["windows_hold"] for r in rows),
            "quote_recall_windows": mean(r["window_quotes"] for r in rows),
            "chars_chunks": mean(r["chunk_chars"] for r in rows),
            "chars_windows": mean(r["window_chars"] for r in rows)}


def twins(rows: list[dict]) -> dict:
    by_id = {r["id"]: r for r in rows}
    pairs = [(by_id[r["twin_of"]], r) for r in rows if r["twin_of"] in by_id]
    return {"pairs": len(pairs),
            "recall@k_original": mean(a["recall"] for a, _ in pairs),
            "recall@k_twin": mean(b["recall"] for _, b in pairs),
            "windows_hold_original": mean(a["windows_hold"] for a, _ in pairs),
            "windows_hold_twin": mean(b["windows_hold"] for _, b in pairs),
            "twin_lost": [b["id"] for a, b in pairs if b["recall"] < a["recall"]],
            "twin_gained": [b["id"] for a, b in pairs if b["recall"] > a["recall"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", choices=list(EVAL_SETS))
    parser.add_argument("--split", default="all", choices=["all", "tune", "report"])
    parser.add_argument("--index-root", type=Path, help="keep each set's index here (as rag eval --index-root)")
    parser.add_argument("--rows", type=Path, help="write every item's row here (JSON)")
    args = parser.parse_args(argv)
    root = args.index_root or Path(tempfile.mkdtemp(prefix="rag-context-"))
    report, every = {}, {}
    pipeline = Pipeline(Settings.load())
    base = pipeline.settings
    for name in args.set or open_sets():
        corpus, dataset = EVAL_SETS[name]
        items = select_items(load_jsonl(dataset), args.split, None)
        if not items:
            continue
        pipeline.settings = base.replace(index_dir=root / f"index-{name}", vector_store="faiss")
        pipeline.index([corpus])
        rows = measure(pipeline, items, corpus)
        every[name] = rows
        report[name] = {"all": summary(rows), "twins": twins(rows)}
    pooled = [r for rows in every.values() for r in rows]
    report["pooled"] = {"all": summary(pooled), "twins": twins(pooled)}
    if args.rows:
        args.rows.write_text(json.dumps(every, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
