"""`rag calibrate`: fit the answer's confidence on the tune half of eval runs, report the other half.

The eval records, for every item, the grounded answer the policy would show (its candidate) and the
signals it is scored on (rag/answer.py). Generation is deterministic (temperature 0), so deciding again
with new weights gives exactly what a new run would. Everything is chosen on the tune rows only: which
signals the logistic keeps (forward selection by cross-validated log-loss), its weights, and the
threshold (the most refusals of unanswerable questions with at most 10% false refusals, or, when the
model's own refusals already pass 10%, with at most 2% of the right answers withheld). The report rows
are then scored with all three. To show the policy carries over to text it was not fitted on, each
corpus is also scored by a fit made without it (leave one corpus out).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..answer.reader import CALIBRATION_FILE, FEATURES, Reader, verdict
from ..errors import BadInput
from .evaluate import REFUSE_TYPES, auroc, candidate_right, decide, signal_table, summarize
from .report import markdown_report

MAX_FALSE_REFUSALS = 0.10
# Signals that cost model tokens on every answer, and the log-loss each must lower beyond the usual 0.001
# to be kept: the statement check evaluates about 50 new tokens (2.4 s at the slower CPU's 21 tokens/s).
COSTLY = {"p_support": 0.01}
# When no threshold keeps false refusals within MAX_FALSE_REFUSALS: the share of answerable questions
# whose right answer the threshold may withhold.
MAX_LOST_RIGHT = 0.02
FOLDS = 5
# The log-odds "No" may gain over "Yes" in a yes/no reply's first step (spans.ChoiceConstraint), tried in steps.
CHOICE_BIAS_STEPS = np.round(np.arange(0.0, 5.0001, 0.05), 2)


def choice_gold(row: dict) -> str:
    """The word a yes/no row should have been answered with: Yes, No, or NONE for an unanswerable one."""
    if not row["answerable"]:
        return "NONE"
    gold = (row.get("short_answers") or [row.get("gold", "")])[0]
    return "No" if re.match(r"\W*no\b", gold, re.IGNORECASE) else "Yes"  # "No, it …", not "None" or "Norway"


def choose(choices: dict, bias: float) -> str:
    """The word a reply's first step picks with "No" given `bias` more log-odds than its raw probability."""
    score = {w: np.log(max(p, 1e-12)) + (bias if w == "No" else 0.0) for w, p in choices.items()}
    return max(score, key=score.get)


def fit_choice_bias(rows: list[dict]) -> float | None:
    """The bias on "No" that answers the most tune yes/no rows right (Yes, No, or NONE when unanswerable),
    from each row's raw first-step probabilities; the middle of the first best run of steps, so a bias
    that only just reaches the best is not chosen. None without yes/no rows to fit on."""
    rows = [r for r in rows if (r["signals"] or {}).get("choices") and sum(r["signals"]["choices"].values()) > 0]
    if not rows:
        return None
    right = [sum(choose(r["signals"]["choices"], b) == choice_gold(r) for r in rows) for b in CHOICE_BIAS_STEPS]
    best = max(right)
    first = right.index(best)
    last = first
    while last + 1 < len(right) and right[last + 1] == best:
        last += 1
    return float(CHOICE_BIAS_STEPS[(first + last) // 2])


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


def _matrix(rows: list[dict], features: tuple[str, ...], mean: dict | None = None) -> tuple[np.ndarray, dict]:
    """The signal matrix; a missing signal (None) takes the column's mean."""
    raw = np.array([[np.nan if r["signals"].get(k) is None else r["signals"][k] for k in features] for r in rows],
                   dtype=float).reshape(len(rows), len(features))
    if mean is None:
        mean = {k: float(np.nanmean(raw[:, j])) if np.isfinite(raw[:, j]).any() else 0.0
                for j, k in enumerate(features)}
    for j, k in enumerate(features):
        raw[np.isnan(raw[:, j]), j] = mean[k]
    return raw, mean


def fit_weights(rows: list[dict], features: tuple[str, ...]) -> dict:
    """Logistic weights over `features`, standardized on `rows` (rows with a candidate)."""
    x, mean = _matrix(rows, features)
    y = np.array([float(candidate_right(r)) for r in rows])
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    w = fit_logistic((x - np.array([mean[k] for k in features])) / scale, y)
    return {"bias": float(w[0]), "coef": dict(zip(features, map(float, w[1:]))), "mean": mean,
            "scale": dict(zip(features, map(float, scale))), "threshold": 0.5, "fitted_on": len(rows)}


def cv_log_loss(rows: list[dict], features: tuple[str, ...]) -> float:
    """Mean log-loss of the logistic over `features`, by FOLDS-fold cross-validation (fixed folds)."""
    total = 0.0
    for fold in range(FOLDS):
        train = [r for i, r in enumerate(rows) if i % FOLDS != fold]
        test = [r for i, r in enumerate(rows) if i % FOLDS == fold]
        if not test or len({candidate_right(r) for r in train}) < 2:
            continue
        reader = Reader(lambda t: 0.0, 1.0, fit_weights(train, features))
        for r in test:
            p = min(max(reader.confidence(r["signals"]), 1e-6), 1 - 1e-6)
            total -= np.log(p if candidate_right(r) else 1 - p)
    return total / len(rows)


def select_features(rows: list[dict]) -> tuple[str, ...]:
    """Forward selection: add the signal that lowers the cross-validated log-loss most, while one does."""
    chosen: tuple[str, ...] = ()
    best = cv_log_loss(rows, chosen)
    while True:
        trials = {k: cv_log_loss(rows, (*chosen, k)) for k in FEATURES if k not in chosen}
        if not trials:
            return chosen
        # A signal must pay for itself: 0.001 of log-loss, or COSTLY[k] for one that costs model tokens.
        k = min(trials, key=lambda f: trials[f] + COSTLY.get(f, 0.0))
        if trials[k] >= best - 1e-3 - COSTLY.get(k, 0.0):
            return chosen
        chosen, best = (*chosen, k), trials[k]


def fit(rows: list[dict], features: tuple[str, ...] | None = None) -> dict:
    """Signals, weights and a threshold from tune rows: the most refusals with at most 10% false refusals
    (or, where none has so few, with at most 2% of the right answers withheld)."""
    usable = [r for r in rows if r["signals"] and r["candidate"]]
    if len({candidate_right(r) for r in usable}) < 2:
        raise BadInput("the tune rows need both correct and wrong candidates to calibrate on")
    features = select_features(usable) if features is None else features
    weights = fit_weights(usable, features)
    reader = Reader(lambda t: 0.0, 1.0, weights)
    # Each row's exact confidence, as the reader compares it: a threshold rounded up past one row's
    # confidence would refuse it, and rounded down past the next one's would answer that, so the cut
    # between them could not be chosen.
    confidences = sorted({reader.confidence(r["signals"]) for r in usable})
    # Refuse as many unanswerable questions as possible while false refusals stay within
    # MAX_FALSE_REFUSALS on the tune rows; among equals, keep the most correct answers. When no
    # threshold stays within it (the model's own NONE and the retrieval refusals already pass it),
    # refuse the most while withholding at most MAX_LOST_RIGHT of the answerable questions' right
    # answers: refusing a wrong answer to an answerable question is a false refusal by count, but it
    # costs the user nothing and spares them a wrong answer.
    answered = apply_policy(rows, {**weights, "threshold": 0.0})
    answerable = max(1, sum(r["answerable"] for r in rows))
    best = None
    for threshold in [0.0, *confidences]:
        decided = apply_policy(rows, {**weights, "threshold": threshold})
        false_refusals, refusal_recall, correctness = rates(decided)
        lost = sum(a["answerable"] and a["correct"] and d["abstained"] for a, d in zip(answered, decided)) / answerable
        within = false_refusals <= MAX_FALSE_REFUSALS
        kept = lost <= MAX_LOST_RIGHT
        score = (within, refusal_recall if within else (kept, refusal_recall if kept else -lost), correctness)
        if best is None or score > best[0]:
            best = (score, threshold)
    weights["threshold"] = best[1]
    bias = fit_choice_bias(rows)
    if bias:
        weights["choice_bias"] = {"No": bias}
    return weights


def rates(rows: list[dict]) -> tuple[float, float, float]:
    """False refusals, refusal recall and correctness of decided rows (as `summarize` counts them)."""
    answerable = [r for r in rows if r["answerable"]]
    refuse = [r for r in rows if r["type"] in REFUSE_TYPES or not r["answerable"]]
    return (sum(r["abstained"] for r in answerable) / max(1, len(answerable)),
            sum(r["abstained"] for r in refuse) / max(1, len(refuse)),
            sum(r["correct"] for r in answerable) / max(1, len(answerable)))


def apply_policy(rows: list[dict], weights: dict) -> list[dict]:
    """Copies of the rows decided again with `weights` (an ungrounded reply stays a refusal)."""
    reader = Reader(lambda t: 0.0, 1.0, weights)
    out = []
    for row in rows:
        row = dict(row)
        has = bool(row["signals"]) and bool(row["candidate"])
        confidence = reader.confidence(row["signals"]) if has else 0.0
        row["confidence"] = round(confidence, 4)
        decided = decide(row, has and confidence >= weights["threshold"])
        decided["verdict"] = verdict(confidence, decided["abstained"])
        out.append(decided)
    return out


def leave_one_corpus_out(rows: list[dict], features: tuple[str, ...]) -> dict:
    """Per corpus: the report-half metrics of a policy fitted (same signals) on the other corpora's tune rows."""
    out = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        others = [r for r in rows if r["corpus"] != corpus and r["split"] == "tune"]
        mine = [r for r in rows if r["corpus"] == corpus and r["split"] == "report"]
        try:
            weights = fit(others, features)
        except BadInput:
            continue
        decided = apply_policy(mine, weights)
        false_refusals, refusal_recall, correctness = rates(decided)
        answerable = [r for r in decided if r["answerable"]]
        out[corpus] = {"answer_correctness": round(correctness, 4), "refusal_recall": round(refusal_recall, 4),
                       "false_refusal_rate": round(false_refusals, 4),
                       "short_answer_f1": round(sum(r["f1"] for r in answerable) / max(1, len(answerable)), 4)}
        out[corpus]["threshold"] = weights["threshold"]
        out[corpus]["confidence_auroc"] = auroc([r["confidence"] for r in decided],
                                                [candidate_right(r) for r in decided])
    return out


def load_reports(paths: list[Path]) -> dict:
    """One report from one or more eval.json files (e.g. one per eval set), rows joined."""
    merged = None
    for path in paths:
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise BadInput(f"cannot read eval report {path}: {exc}") from None
        if merged is None:
            merged = report
        else:
            merged["rows"] += report["rows"]
            merged["sets"] = list(dict.fromkeys([*merged["sets"], *report["sets"]]))
            merged["items"] = len(merged["rows"])
    return merged


def run_calibrate(args) -> int:
    """Fit on the tune half of eval reports, save the weights for the tier, re-score the report half."""
    paths = [Path(p) for p in (args.report if isinstance(args.report, list) else [args.report])]
    report = load_reports(paths)
    rows = report["rows"]
    tune = [r for r in rows if r["split"] == "tune"]
    if not tune:
        raise BadInput(f"{paths[0]} has no tune rows: run `rag eval --split all` first")
    tier = args.tier or report["tier"]
    table = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8")) if CALIBRATION_FILE.exists() else {}
    if getattr(args, "bias_only", False):
        # The yes/no bias alone: a refit also moves the threshold, which `fit` may have to lower to keep
        # the right answers the bias adds (docs/eval.md); this keeps the tier's weights as they were.
        if tier not in table:
            raise BadInput(f"no fitted weights for {tier!r} to keep: run `rag calibrate` without --bias-only first")
        weights = {k: v for k, v in table[tier].items() if k != "choice_bias"}
        bias = fit_choice_bias(tune)
        if bias:
            weights["choice_bias"] = {"No": bias}
    else:
        weights = fit(tune)
    features = tuple(weights["coef"])
    table[tier] = weights
    CALIBRATION_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    decided = apply_policy(rows, weights)
    shown = [r for r in decided if r["split"] == "report"]
    report.update(rows=decided, metrics=summarize(shown), tune_metrics=summarize(apply_policy(tune, weights)),
                  by_corpus={c: summarize([r for r in shown if r["corpus"] == c]) for c in report["sets"]},
                  signals=signal_table(shown), leave_one_out=leave_one_corpus_out(rows, features),
                  calibrated={"tier": tier, "threshold": weights["threshold"], "features": list(features),
                              "from": [str(p) for p in paths]})
    out = paths[0].with_name(paths[0].stem + "-calibrated.json")
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown_report(report), encoding="utf-8")
    m = report["metrics"]
    print(f"{tier}: {'kept the weights' if getattr(args, 'bias_only', False) else 'fitted'} on "
          f"{weights['fitted_on']} tune rows with {', '.join(features) or 'no signal'}; threshold "
          f"{weights['threshold']}; yes/no bias {weights.get('choice_bias')}; saved to {CALIBRATION_FILE}")
    print("report half: " + (", ".join(f"{k} {m[k]['value']}" for k in (
        "answer_correctness", "short_answer_f1", "refusal_recall", "false_refusal_rate", "faithfulness",
        "confidence_auroc") if k in m) or "no report rows"))
    print(f"re-scored report: {out}")
    if weights.get("choice_bias") != report.get("choice_bias"):
        # Re-deciding rows is exact for the threshold, not for the yes/no bias: it changes the replies.
        print(f"the yes/no bias changed ({report.get('choice_bias')} -> {weights.get('choice_bias')}): run the "
              "eval again with it and calibrate on that run, or the weights are fitted on other replies")
    return 0
