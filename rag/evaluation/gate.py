"""The eval gate CI runs: a few report-half items whose outcome is recorded, and a failure when too many flip.

Floors under pooled metrics let a real regression through: with 78 items, a ten-point drop in
correctness or a regression confined to one set stays above them. The gate instead records, from
reference runs, what each of its items should come out as: answered right (an answerable item) or
abstained (an unanswerable one). An item that comes out otherwise has flipped the wrong way. Items are
kept only where every reference run agreed (one run per embedder weight type, the AVX-512 and the
AVX2-only CPU paths), so the flips a healthy reader makes come from numerical noise alone; the gate
fails when more items flip than twice that measured noise allows, in all or in any one set, or when a
"likely answer" badge is wrong too often (`rag eval --gate` also fails on a short answer outside its passage).

    python -m rag.evaluation.gate_pool POOL.json [--per-set 40]
    rag eval --gate --no-gate --gate-file POOL.json --out A      (and again for B, on the other weights)
    python -m rag.evaluation.gate record A/eval.json B/eval.json [--right N] [--abstained N]

writes eval/gate.json from reference runs of the same candidate items (report-half items spread over each
set, and the current gate's), answered as the gate answers them, so their seconds are the gate's costs;
`rag eval --gate` runs it.

    python -m rag.evaluation.gate_slice pydocs --index-dir FULL_INDEX [--k 10]

keeps, for a large set, only the documents its gate items could retrieve: each item's gold documents and
those of its top `k` hits in the full index (`k` well past top_k, so every document that competed for the
answer stays). The gate then indexes that slice (41% of pydocs's chunks at k=10) instead of the whole corpus.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

from ..config import PROJECT_ROOT

GATE_FILE = PROJECT_ROOT / "eval" / "gate.json"
# Per set, how many items of each expected outcome the gate keeps (a set with fewer gives what it has).
RIGHT_PER_SET = 5
ABSTAINED_PER_SET = 2
# The share of "likely answer" badges that must be right, on the gate's items.
BADGE_FLOOR = 0.85


def outcome(row: dict) -> str:
    """What an item came out as: "right", "abstained" or "wrong"."""
    if row["abstained"]:
        return "abstained"
    return "right" if row["answerable"] and row["correct"] else "wrong"


def expected(row: dict) -> str:
    """What an item should come out as: answered right when the documents answer it, else abstained."""
    return "right" if row["answerable"] else "abstained"


def _key(row: dict) -> str:
    return f"{row['corpus']}/{row['id']}"


def cost(runs: list[list[dict]], key: str) -> float:
    """An item's mean seconds over the reference runs: what it costs the gate."""
    seconds = [row.get("seconds") or 0.0 for rows in runs for row in rows if _key(row) == key]
    return sum(seconds) / len(seconds) if seconds else 0.0


def pick_items(runs: list[list[dict]], right: int = RIGHT_PER_SET, abstained: int = ABSTAINED_PER_SET) -> list[dict]:
    """The items every run got as they should be, per set `right` answered right and `abstained` abstained.

    Each pick tells the gate one thing: whether one path through the reader still gives what it gave. So
    the items are spread over the paths (round robin over question type and how the reply came out: a
    short answer, a sentence, yes/no, or which check abstained), and within a path the cheapest item
    is taken first (mean seconds over the runs): the same checks in less time."""
    by_key = [{_key(r): r for r in rows} for rows in runs]
    first = runs[0]
    stable = [r for r in first if all(_key(r) in run and outcome(run[_key(r)]) == expected(r) for run in by_key)]
    picked = []
    for corpus in dict.fromkeys(r["corpus"] for r in first):
        for want, count in (("right", right), ("abstained", abstained)):
            pool = [r for r in stable if r["corpus"] == corpus and expected(r) == want]
            path = {_key(r): (r["type"], r.get("mode", "")) for r in pool}
            by_path: dict[tuple, list[dict]] = {p: [] for p in path.values()}  # the paths in dataset order
            for r in sorted(pool, key=lambda r: cost(runs, _key(r))):  # stable: dataset order breaks ties
                by_path[path[_key(r)]].append(r)
            chosen: list[dict] = []
            while len(chosen) < count and any(by_path.values()):
                for path in list(by_path):
                    if by_path[path] and len(chosen) < count:
                        chosen.append(by_path[path].pop(0))
            picked += [{"set": corpus, "id": r["id"], "type": r["type"], "expected": want} for r in chosen]
    return picked


def noise(runs: list[list[dict]]) -> dict:
    """How many items came out differently between the reference runs, of how many."""
    by_key = [{_key(r): r for r in rows} for rows in runs]
    common = set.intersection(*(set(k) for k in by_key))
    differ = sum(len({outcome(run[k]) for run in by_key}) > 1 for k in common)
    return {"items": len(common), "differ": differ, "rate": round(differ / len(common), 4) if common else 0.0}


def tolerance(rate: float, items: int) -> int:
    """Flips allowed among `items`: twice the flips the measured noise rate predicts, at least one."""
    return max(1, math.ceil(2 * rate * items))


def record(runs: list[list[dict]], right: int = RIGHT_PER_SET, abstained: int = ABSTAINED_PER_SET) -> dict:
    """The gate file's content from reference runs of the same items."""
    items = picked = pick_items(runs, right, abstained)
    measured = noise(runs)
    per_set = Counter(i["set"] for i in picked)
    rate = measured["differ"] / measured["items"] if measured["items"] else 0.0
    return {"items": items, "noise": measured, "documents": {},
            "tolerance": {"total": tolerance(rate, len(items)),
                          "per_set": tolerance(rate, max(per_set.values(), default=0))},
            "badge_floor": BADGE_FLOOR}


def load_gate(path: Path = GATE_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def flips(rows: list[dict], gate: dict) -> list[dict]:
    """The gate's items that came out otherwise than recorded (a missing item counts as flipped)."""
    got = {(r["corpus"], r["id"]): r for r in rows}
    out = []
    for item in gate["items"]:
        row = got.get((item["set"], item["id"]))
        now = outcome(row) if row else "missing"
        if now != item["expected"]:
            out.append({**item, "got": now})
    return out


def check(rows: list[dict], gate: dict) -> list[str]:
    """The gate's failures, as readable lines (none: it passes)."""
    failures = []
    flipped = flips(rows, gate)
    allowed = gate["tolerance"]
    if len(flipped) > allowed["total"]:
        failures.append(f"{len(flipped)} of {len(gate['items'])} gate items flipped (at most {allowed['total']}): "
                        + ", ".join(f"{f['set']}/{f['id']} {f['expected']}->{f['got']}" for f in flipped))
    for corpus, count in Counter(f["set"] for f in flipped).items():
        if count > allowed["per_set"]:
            failures.append(f"{count} gate items of {corpus} flipped (at most {allowed['per_set']} in one set)")
    likely = [r for r in rows if not r["abstained"] and r.get("verdict") == "likely answer"]
    if likely:
        share = sum(outcome(r) == "right" for r in likely) / len(likely)
        if share < gate["badge_floor"]:
            failures.append(f"{share:.2f} of 'likely answer' badges were right (floor {gate['badge_floor']})")
    return failures



def slice_documents(search, items: list[dict], k: int) -> list[str]:
    """The documents the gate keeps for a set: each item's gold documents and those of its top `k` hits
    (`search(question, k)` returns hits with `.chunk.doc_id`)."""
    docs: set[str] = set()
    for item in items:
        docs |= {s["doc"] for s in item.get("support", [])}
        docs |= {h.chunk.doc_id for h in search(item["question"], k)}
    return sorted(docs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.evaluation.gate")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="write eval/gate.json from reference reports of the same items")
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--right", type=int, default=RIGHT_PER_SET)
    p.add_argument("--abstained", type=int, default=ABSTAINED_PER_SET)
    p.add_argument("--out", type=Path, default=GATE_FILE)
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text(encoding="utf-8"))["rows"] for path in args.reports]
    gate = record(runs, args.right, args.abstained)
    args.out.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")
    print(f"{len(gate['items'])} items, noise {gate['noise']}, tolerance {gate['tolerance']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
