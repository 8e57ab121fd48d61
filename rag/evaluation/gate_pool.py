"""`python -m rag.evaluation.gate_pool POOL.json [--per-set 40]`: candidate items for a new gate.

Run them as the gate runs its items (`rag eval --gate --no-gate --gate-file POOL.json`), once per embedder
weight type, then `python -m rag.evaluation.gate record` picks the gate from the two reports (gate.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .evaluate import EVAL_SETS, load_set, open_sets, select_items
from .gate import load_gate


def pool(per_set: int, current: dict) -> dict:
    """Candidate items for a new gate: `per_set` report-half items spread over each open set, and the
    current gate's items, over whole corpora, in the gate file's shape (nothing tolerated: no verdict)."""
    items, seen = [], set()
    for name in open_sets():
        for item in select_items(load_set(EVAL_SETS[name][1]), "report", per_set):
            seen.add((name, item["id"]))
            items.append({"set": name, "id": item["id"], "type": item["type"],
                          "expected": "right" if item["answerable"] else "abstained"})
    items += [i for i in current["items"] if (i["set"], i["id"]) not in seen]
    return {"items": items, "noise": {}, "documents": {}, "tolerance": {"total": len(items), "per_set": len(items)},
            "badge_floor": 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.evaluation.gate_pool")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-set", type=int, default=40)
    args = parser.parse_args(argv)
    candidates = pool(args.per_set, load_gate())
    args.out.write_text(json.dumps(candidates, indent=1) + "\n", encoding="utf-8")
    print(f"{len(candidates['items'])} candidate items", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
