"""`python -m rag.evaluation.gate_slice SET --index-dir FULL_INDEX [--k 10]`: keep in eval/gate.json only the
documents of SET that its gate items could retrieve (gate.slice_documents), so the gate indexes that slice."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import Settings
from ..pipeline import Pipeline
from .evaluate import EVAL_SETS, load_set
from .gate import GATE_FILE, load_gate, slice_documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.evaluation.gate_slice")
    parser.add_argument("set", choices=sorted(EVAL_SETS))
    parser.add_argument("--index-dir", type=Path, required=True, help="an index of the set's whole corpus")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=GATE_FILE)
    args = parser.parse_args(argv)
    gate = load_gate(args.out)
    chosen = {i["id"] for i in gate["items"] if i["set"] == args.set}
    items = [i for i in load_set(EVAL_SETS[args.set][1]) if i["id"] in chosen]
    pipeline = Pipeline(Settings.load(index_dir=args.index_dir, vector_store="faiss"))
    gate.setdefault("documents", {})[args.set] = slice_documents(pipeline.retriever.search, items, args.k)
    args.out.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")
    print(f"{args.set}: {len(gate['documents'][args.set])} documents kept for {len(items)} items", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
