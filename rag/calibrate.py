"""`rag calibrate`: fit the abstention score on the tune half of an eval run, report the other half.

The eval records, for every item, the candidate answer the policy would show and the signals it is
scored on (rag/answer.py). Because generation is deterministic (temperature 0), deciding again with
new weights gives exactly what a new run would: the weights are fitted on the tune rows only, the
threshold is chosen on the tune rows only, and the report rows are scored with both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .answer import CALIBRATION_FILE, FEATURES, Reader
from .errors import BadInput
from .evaluate import candidate_right, decide, markdown_report, summarize

MAX_FALSE_REFUSALS = 0.10


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, rounds: int = 50) -> np.ndarray:
    """Weights [bias, coef...] of an L2-regularized logistic regression, by Newton's method."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (p - y) + penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit(rows: list[dict]) -> dict:
    """Weights and a threshold from tune rows: the most refusals with at most 10% false refusals."""
    usable = [r for r in rows if r["signals"] and r["candidate"]]
    if len({candidate_right(r) for r in usable}) < 2:
        raise BadInput("the tune rows need both correct and wrong candidates to calibrate on")
    x = np.array([[r["signals"][k] for k in FEATURES] for r in usable], dtype=float)
    y = np.array([float(candidate_right(r)) for r in usable])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    w = fit_logistic((x - mean) / scale, y)
    weights = {"bias": float(w[0]), "coef": dict(zip(FEATURES, map(float, w[1:]))),
               "mean": dict(zip(FEATURES, map(float, mean))), "scale": dict(zip(FEATURES, map(float, scale))),
               "threshold": 0.5, "fitted_on": len(usable)}
    reader = Reader(lambda t: 0.0, 1.0, weights)
    confidences = sorted({round(reader.confidence(r["signals"]), 4) for r in usable})
    # The shape: refuse as many unanswerable questions as possible while false refusals stay
    # within MAX_FALSE_REFUSALS on the tune rows (when no threshold does, the fewest false refusals);
    # among equals, keep the most correct answers.
    best = None
    for threshold in [0.0, *confidences]:
        m = summarize(apply_policy(rows, {**weights, "threshold": threshold}))
        false_refusals = m["false_refusal_rate"]["value"]
        within = false_refusals <= MAX_FALSE_REFUSALS
        score = (within, m["refusal_recall"]["value"] if within else -false_refusals,
                 m["answer_correctness"]["value"])
        if best is None or score > best[0]:
            best = (score, threshold)
    weights["threshold"] = best[1]
    return weights


def apply_policy(rows: list[dict], weights: dict) -> list[dict]:
    """Copies of the rows decided again with `weights` (a refusal by the model stays a refusal)."""
    reader = Reader(lambda t: 0.0, 1.0, weights)
    out = []
    for row in rows:
        row = dict(row)
        confidence = reader.confidence(row["signals"]) if row["signals"] else 0.0
        row["confidence"] = round(confidence, 4)
        out.append(decide(row, bool(row["signals"]) and confidence >= weights["threshold"]))
    return out


def run_calibrate(args) -> int:
    """Fit on the tune half of an eval report, save the weights for its tier, re-score the report half."""
    path = Path(args.report)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read eval report {path}: {exc}") from None
    rows = report["rows"]
    tune = [r for r in rows if r["split"] == "tune"]
    if not tune:
        raise BadInput(f"{path} has no tune rows: run `rag eval --split all` first")
    tier = args.tier or report["tier"]
    weights = fit(tune)
    table = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8")) if CALIBRATION_FILE.exists() else {}
    table[tier] = weights
    CALIBRATION_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    decided = apply_policy(rows, weights)
    shown = [r for r in decided if r["split"] == "report"]
    report.update(rows=decided, metrics=summarize(shown), tune_metrics=summarize(apply_policy(tune, weights)),
                  by_corpus={c: summarize([r for r in shown if r["corpus"] == c]) for c in report["sets"]},
                  calibrated={"tier": tier, "threshold": weights["threshold"], "from": str(path)})
    out = path.with_name(path.stem + "-calibrated.json")
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown_report(report), encoding="utf-8")
    m = report["metrics"]
    print(f"{tier}: fitted on {weights['fitted_on']} tune rows, threshold {weights['threshold']}; saved to "
          f"{CALIBRATION_FILE}")
    print("report half: " + ", ".join(f"{k} {m[k]['value']}" for k in (
        "answer_correctness", "short_answer_f1", "refusal_recall", "false_refusal_rate", "faithfulness")))
    print(f"re-scored report: {out}")
    return 0
