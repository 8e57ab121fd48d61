"""`rag eval`: retrieval, correctness, faithfulness, ALCE citation scores and abstention, with CIs."""

from __future__ import annotations

import functools
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..answer.cite import parse_claims
from ..answer.reader import SHORT_ANSWER_WORDS, YES_NO
from ..config import PROJECT_ROOT
from ..errors import BadInput
from ..text import words
from .checker import kappas_below_their_floors, validate_judge
from .gate import check as check_gate
from .gate import load_gate
from .judge import Judge
from .model_judge import ModelJudge, judge_for
from .report import markdown_report

EVAL_DIR = PROJECT_ROOT / "eval"
REFUSE_TYPES = {"unanswerable", "injection"}
# The answer-length target applies to questions whose answer is a thing, not an explanation.
SHORT_TYPES = {"factoid", "number", "date", "name", "paraphrase"}
# name -> (corpus folder, dataset); `rag eval` runs every set unless --set names some. A set's sealed
# items may also sit apart, in a sealed.jsonl beside its dataset (see load_set); minutes is sealed whole.
EVAL_SETS = {"news": (PROJECT_ROOT / "corpus", EVAL_DIR / "dataset.jsonl"),
             "pydocs": (EVAL_DIR / "pydocs" / "corpus", EVAL_DIR / "pydocs" / "dataset.jsonl"),
             "licenses": (EVAL_DIR / "licenses" / "corpus", EVAL_DIR / "licenses" / "dataset.jsonl"),
             "scans": (EVAL_DIR / "scans" / "corpus", EVAL_DIR / "scans" / "dataset.jsonl"),
             "formats": (EVAL_DIR / "formats" / "corpus", EVAL_DIR / "formats" / "dataset.jsonl"),
             "minutes": (EVAL_DIR / "minutes" / "corpus", EVAL_DIR / "minutes" / "dataset.jsonl")}
# Which items' "split" each --split runs. The sealed split is no part of "all": no choice is made on it,
# and it runs only when asked for by name.
SPLITS = {"tune": ("tune",), "report": ("report",), "all": ("tune", "report"), "sealed": ("sealed",)}


@dataclass(frozen=True)
class Ratio:
    """A metric as per-item numerators and denominators, so it can be bootstrapped over items."""

    num: tuple[float, ...]
    den: tuple[float, ...]

    @property
    def value(self) -> float:
        return sum(self.num) / sum(self.den) if sum(self.den) else float("nan")

    def interval(self, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
        """Bootstrap 95% interval, resampling items."""
        items = [(n, d) for n, d in zip(self.num, self.den) if d]
        if not items:
            return (float("nan"), float("nan"))
        rng = random.Random(seed)
        stats = []
        for _ in range(rounds):
            sample = [items[rng.randrange(len(items))] for _ in items]
            stats.append(sum(n for n, _ in sample) / sum(d for _, d in sample))
        stats.sort()
        return (stats[int(0.025 * rounds)], stats[int(0.975 * rounds) - 1])

    def report(self) -> dict:
        low, high = self.interval()
        return {"value": _r(self.value), "ci95": [_r(low), _r(high)], "numerator": _r(sum(self.num)),
                "denominator": _r(sum(self.den)), "items": sum(1 for d in self.den if d)}


def _r(x: float) -> float:
    return round(x, 4) if x == x else None


def load_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None


def load_set(dataset: Path) -> list[dict]:
    """A set's items of every split: its dataset, then the sealed items kept in sealed.jsonl beside it."""
    sealed = Path(dataset).with_name("sealed.jsonl")
    return load_jsonl(dataset) + (load_jsonl(sealed) if sealed.exists() else [])


def open_sets() -> dict:
    """The eval sets that have tune or report items: the ones a choice may be measured on."""
    return {name: paths for name, paths in EVAL_SETS.items() if select_items(load_jsonl(paths[1]), "all", None)}


def quotes_retrieved(hits: list, spans: list[tuple[str, int, int]]) -> tuple[int, int]:
    """How many gold quotes lie whole inside one of the hits' chunks, and the best rank holding one (0: none).

    retrieval_recall@5 is the first over the number of quotes, averaged over the items that have quotes.
    """
    found, first = 0, 0
    for doc, a, b in spans:
        ranks = [h.rank for h in hits if h.chunk.doc_id == doc and h.chunk.start <= a and b <= h.chunk.end]
        found += bool(ranks)
        first = min([first or 99, *ranks]) if ranks else first
    return found, first


def retrieval_rows(pipeline, items: list[dict], corpus: Path, k: int = 5) -> list[dict]:
    """Retrieval alone, no generation: per answerable item with gold quotes, its split, the share of its
    quotes inside the top `k` (averaged, this is retrieval_recall@k) and the top `k` (doc, start)."""
    rows = []
    for item in items:
        spans = gold_spans(item, corpus, pipeline.read_limits)
        if not (item["answerable"] and spans):
            continue
        hits = pipeline.retriever.search(pipeline.rewrite_follow_up(item["question"], item.get("history") or []), k)
        rows.append({"id": item["id"], "split": item.get("split", "report"),
                     "recall": quotes_retrieved(hits, spans)[0] / len(spans),
                     "top": [(h.chunk.doc_id, h.chunk.start) for h in hits]})
    return rows


def gold_spans(item: dict, corpus: Path, limits=None) -> list[tuple[str, int, int]]:
    """Where each gold quote lies: (doc, start, end). `limits` reads a PDF (its OCR cache above all)."""
    spans = []
    for s in item.get("support", []):
        text = corpus_text(corpus / s["doc"], limits)
        start = text.find(s["quote"])
        if start < 0:
            raise BadInput(f"{item['id']}: quote not found in {s['doc']}: {s['quote'][:60]!r}")
        spans.append((s["doc"], start, start + len(s["quote"])))
    return spans


@functools.lru_cache(maxsize=64)
def corpus_text(path: Path, limits=None) -> str:
    """A corpus file's text in the offsets the index uses: a PDF as the reader makes it (OCR for a scan),
    an Office file or e-book through its reader."""
    from ..documents.formats import FORMAT_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in FORMAT_SUFFIXES:
        from ..documents.ingest import read_document

        return read_document(path, path.name).text
    if suffix != ".pdf":
        return path.read_text(encoding="utf-8")
    from ..documents.ingest import ReadLimits
    from ..documents.isolation import IsolatedReader

    with IsolatedReader(limits or ReadLimits()) as reader:
        return reader.read(path, path.name, path.read_bytes()).text


def normalize_answer(text: str) -> list[str]:
    """SQuAD-style answer tokens: lowercased words without articles; citation markers dropped."""
    text = re.sub(r"\[\d+\]", " ", text)
    return [w for w in words(text.replace("’", "'")) if w not in {"a", "an", "the"}]


def exact_match(prediction: str, golds: list[str]) -> float:
    """1.0 when the prediction's tokens equal a gold's. A prediction without tokens (no answer) matches
    nothing, not even a gold that has none of its own (pydocs p062's "[...]")."""
    pred = normalize_answer(prediction)
    return float(bool(pred) and any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: list[str]) -> float:
    """The best token-overlap F1 of the prediction against any gold short answer."""
    pred = normalize_answer(prediction)
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold)
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def is_short(answer: str) -> bool:
    """A short answer ("28 nations") rather than a sentence that asserts something on its own."""
    return len(words(answer)) <= SHORT_ANSWER_WORDS and not answer.rstrip().endswith(".")


def copied(answer: str) -> bool:
    """Whether a shown answer must stand word for word in a passage: a short one that is not Yes or No."""
    return is_short(answer) and answer not in YES_NO


def in_passages(answer: str, passages: dict) -> bool:
    """Whether a short answer stands, word for word, in one of the passages (whitespace aside)."""
    wanted = " ".join(answer.split())
    return any(wanted in " ".join(str(text).split()) for text in passages.values())


def score_sentences(judge: Judge, question: str, sentences: list[tuple[str, tuple[int, ...]]],
                    passages: dict) -> dict:
    """Faithfulness and ALCE citation recall/precision of (sentence, cited ids) pairs."""

    def supports(text: str, texts: list[str]) -> bool:
        return judge.supports_answer(question, text, texts) if is_short(text) else judge.supports(text, texts)

    supported = cites = precise = recalled = 0
    for text, cited in sentences:
        texts = [passages[i] for i in cited if i in passages]
        joint = bool(texts) and supports(text, texts)
        recalled += joint
        supported += joint or supports(text, list(passages.values()))
        cites += len(cited)
        if joint:
            irrelevant = 0
            if len(texts) > 1:
                for i, t in enumerate(texts):
                    rest = texts[:i] + texts[i + 1:]
                    if not supports(text, [t]) and supports(text, rest):
                        irrelevant += 1
            # A marker naming no retrieved passage counts in `cites` but supports nothing: never precise.
            precise += len(texts) - irrelevant
    return {"sentences": len(sentences), "supported": supported, "recalled": recalled,
            "cites": cites, "precise": precise}


def evaluate(pipeline, items: list[dict], corpus: Path, name: str = "", k: int = 5, progress=None,
             model_judge: bool = True) -> list[dict]:
    """Run every item through the pipeline and collect per-item scores. Short answers are judged by the
    model (model_judge.py) unless `model_judge` is off: the gate, which checks outcomes, not support."""
    judge = judge_for(pipeline.embedder, pipeline.generator) if model_judge else Judge(pipeline.embedder)
    rows = []
    for n, item in enumerate(items, 1):
        history = item.get("history") or []
        standalone = pipeline.rewrite_follow_up(item["question"], history)
        hits = pipeline.retriever.search(standalone, k)
        spans = gold_spans(item, corpus, pipeline.read_limits)
        found, first = quotes_retrieved(hits, spans)
        began = time.perf_counter()
        answer = pipeline.ask(item["question"], history=history)
        seconds = time.perf_counter() - began
        passages = {p.id: p.text for p in answer.passages}
        raw_claims = [(c.text, c.cited) for c in parse_claims(answer.raw)] if answer.raw else []
        raw = score_sentences(judge, standalone, raw_claims, passages)
        golds = item.get("short_answers") or ([item["answer"]] if item["answerable"] else [])
        candidate = parse_claims(answer.candidate)
        text = " ".join(c.text for c in candidate)
        rows.append({
            "id": item["id"], "corpus": name, "split": item.get("split", "report"), "type": item["type"],
            "question": item["question"], "answerable": item["answerable"], "gold": item.get("answer", ""),
            "short_answers": golds, "keywords": item["keywords"], "answer": answer.text,
            "abstained": answer.abstained, "mode": answer.mode, "raw": answer.raw,
            # What the policy would show if it answered; the shown fields below follow from it.
            "candidate": text, "candidate_correct": keyword_correct(item, text),
            "candidate_em": exact_match(text, golds), "candidate_f1": token_f1(text, golds),
            "candidate_final": score_sentences(judge, standalone, [(c.text, c.cited) for c in candidate], passages),
            "passages": {str(i): t for i, t in passages.items()},
            "confidence": answer.confidence, "signals": answer.signals, "verdict": answer.verdict,
            "prompt_tokens": answer.receipt.get("prompt_tokens"),
            "prompt_evaluated": answer.receipt.get("prompt_evaluated"),
            "gold_quotes": len(spans), "retrieved_quotes": found, "rr": 1 / first if first else 0.0,
            "raw_scores": raw, "seconds": round(seconds, 3),
        })
        decide(rows[-1], not answer.abstained)
        if progress:
            progress(n, len(items), rows[-1])
    return rows


def decide(row: dict, answered: bool) -> dict:
    """Fill in the shown-answer fields of a row from its candidate: shown if `answered`, else abstained."""
    shown = answered and bool(row["candidate"])
    row.update(abstained=not shown, correct=shown and candidate_right(row),
               em=row["candidate_em"] if shown else 0.0, f1=row["candidate_f1"] if shown else 0.0,
               words=len(words(row["candidate"])) if shown else 0,
               final=row["candidate_final"] if shown else {"sentences": 0, "supported": 0, "recalled": 0,
                                                           "cites": 0, "precise": 0})
    return row


def candidate_right(row: dict) -> bool:
    """A candidate is right when it holds every keyword or equals a gold short answer ("MIIT")."""
    return bool(row["answerable"] and (row["candidate_correct"] or row["candidate_em"] == 1.0))


def keyword_correct(item: dict, text: str) -> bool:
    """An answer to an answerable item that holds every one of its keywords."""
    return bool(text) and item["answerable"] and all(kw.lower() in text.lower() for kw in item["keywords"])


def summarize(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    refuse = [r for r in rows if r["type"] in REFUSE_TYPES or not r["answerable"]]
    with_gold = [r for r in answerable if r["gold_quotes"]]
    answered = [r for r in rows if not r["abstained"]]

    def ratio(rs, num, den):
        return Ratio(tuple(float(num(r)) for r in rs), tuple(float(den(r)) for r in rs)).report()

    metrics = {
        "retrieval_recall@5": ratio(with_gold, lambda r: r["retrieved_quotes"] / r["gold_quotes"], lambda r: 1),
        "retrieval_mrr@5": ratio(with_gold, lambda r: r["rr"], lambda r: 1),
        "answer_correctness": ratio(answerable, lambda r: r["correct"], lambda r: 1),
        "short_answer_em": ratio(answerable, lambda r: r["em"], lambda r: 1),
        "short_answer_f1": ratio(answerable, lambda r: r["f1"], lambda r: 1),
        "faithfulness": ratio(answered, lambda r: r["final"]["supported"], lambda r: r["final"]["sentences"]),
        "answers_with_unsupported_sentence": ratio(
            answered, lambda r: r["final"]["supported"] < r["final"]["sentences"], lambda r: 1),
        "citation_recall": ratio(answered, lambda r: r["final"]["recalled"], lambda r: r["final"]["sentences"]),
        "citation_precision": ratio(answered, lambda r: r["final"]["precise"], lambda r: r["final"]["cites"]),
        "raw_faithfulness": ratio(rows, lambda r: r["raw_scores"]["supported"],
                                  lambda r: r["raw_scores"]["sentences"]),
        "refusal_recall": ratio(refuse, lambda r: r["abstained"], lambda r: 1),
        # Must stay 0: a short answer is shown only as words that stand in a passage.
        "short_answers_not_in_passages": ratio([r for r in answered if copied(r["candidate"])],
                                               lambda r: not in_passages(r["candidate"], r["passages"]),
                                               lambda r: 1),
        "false_refusal_rate": ratio(answerable, lambda r: r["abstained"], lambda r: 1),
    }
    lengths = sorted(r["words"] for r in answered if r["answerable"] and r["type"] in SHORT_TYPES)
    if lengths:
        metrics["answer_words_p50"] = {"value": _percentile(lengths, 50), "denominator": len(lengths)}
        metrics["answer_words_p90"] = {"value": _percentile(lengths, 90), "denominator": len(lengths)}
    seconds = sorted(r["seconds"] for r in rows if r["raw"])
    if seconds:
        metrics["seconds_per_answer_p50"] = {"value": _percentile(seconds, 50), "denominator": len(seconds)}
        metrics["seconds_per_answer_p95"] = {"value": _percentile(seconds, 95), "denominator": len(seconds)}
    if rows:
        metrics["confidence_auroc"] = {"value": auroc([r["confidence"] if r["candidate"] else 0.0 for r in rows],
                                                      [candidate_right(r) for r in rows]),
                                       "denominator": len(rows)}
    tokens = sorted(r["prompt_tokens"] for r in rows if r.get("prompt_tokens"))
    if tokens:
        metrics["prompt_tokens_mean"] = {"value": round(sum(tokens) / len(tokens), 1), "denominator": len(tokens)}
    # What the model processed: prompt tokens less those its KV cache held from the previous question.
    evaluated = [r["prompt_evaluated"] for r in rows if r.get("prompt_evaluated") is not None]
    if evaluated:
        metrics["prompt_evaluated_mean"] = {"value": round(sum(evaluated) / len(evaluated), 1),
                                            "denominator": len(evaluated)}
    return metrics


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """The probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def signal_table(rows: list[dict]) -> dict:
    """Each signal's AUROC for telling answerable from unanswerable items, and right from wrong answers,
    over the rows where it was read; 0.5 is chance, below 0.5 the signal falls as the label rises."""
    from ..answer.reader import FEATURES

    table = {}
    for name in (*FEATURES, "confidence"):
        have = [r for r in rows if (r["confidence"] is not None if name == "confidence"
                                    else (r["signals"] or {}).get(name) is not None)]
        values = [r["confidence"] if name == "confidence" else r["signals"][name] for r in have]
        table[name] = {"rows": len(have), "answerable": auroc(values, [r["answerable"] for r in have]),
                       "right": auroc(values, [candidate_right(r) for r in have])}
    return table


def _percentile(sorted_values: list[float], pct: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(pct / 100 * (len(sorted_values) - 1))))
    return round(sorted_values[i], 3)


def short_labels() -> list[dict]:
    """The short-answer labels the model judge is checked on (every line of eval/short_support_labels.jsonl)."""
    return load_jsonl(EVAL_DIR / "short_support_labels.jsonl")


def load_thresholds() -> dict:
    """The checked-in gates: {metric: {"min" or "max": value, "target": the issue's target}}."""
    return json.loads((EVAL_DIR / "thresholds.json").read_text(encoding="utf-8"))


def check_thresholds(metrics: dict, thresholds: dict) -> list[str]:
    """The metrics that miss their threshold, as readable lines."""
    failures = []
    for name, rule in thresholds.items():
        value = metrics.get(name, {}).get("value")
        if value is None:
            failures.append(f"{name}: not measured")
        elif "min" in rule and value < rule["min"]:
            failures.append(f"{name} = {value} is below {rule['min']}")
        elif "max" in rule and value > rule["max"]:
            failures.append(f"{name} = {value} is above {rule['max']}")
    return failures


def select_items(items: list[dict], split: str, per_set: int | None) -> list[dict]:
    """The items of one split ("tune", "report", "all" = tune and report, or "sealed"); with `per_set`, that
    many spread evenly over it, so a subset keeps the mix of question types (the datasets are ordered by type)."""
    chosen = [i for i in items if i.get("split", "report") in SPLITS[split]]
    if not per_set or per_set >= len(chosen):
        return chosen
    return [chosen[n * len(chosen) // per_set] for n in range(per_set)]


def run_eval(pipeline, args) -> int:
    """The `rag eval` command: run, write JSON and Markdown reports, gate on thresholds."""
    if args.dataset:
        sets = {"custom": (Path(args.corpus or PROJECT_ROOT / "corpus"), Path(args.dataset))}
    else:
        unknown = set(args.set or []) - set(EVAL_SETS)
        if unknown:
            raise BadInput(f"unknown eval set {sorted(unknown)[0]!r}; choose from {', '.join(EVAL_SETS)}")
        sets = {name: EVAL_SETS[name] for name in (args.set or EVAL_SETS)}
    # The sealed split's report goes beside the others' instead of over them.
    out = Path(args.out or (EVAL_DIR / "reports" / "sealed" if args.split == "sealed" else EVAL_DIR / "reports"))
    out.mkdir(parents=True, exist_ok=True)
    gate = None
    if getattr(args, "gate", False):
        gate = load_gate(args.gate_file) if getattr(args, "gate_file", None) else load_gate()
        chosen = {(i["set"], i["id"]) for i in gate["items"]}
        sets = {name: paths for name, paths in sets.items() if any(s == name for s, _ in chosen)}

    rows, base, ran = [], pipeline.settings, []
    for name, (corpus, dataset) in sets.items():
        if gate:
            items = [i for i in load_set(dataset) if (name, i["id"]) in chosen]
        else:
            items = select_items(load_set(dataset), args.split, args.per_set)
        if args.limit:
            items = items[: args.limit]
        if not items:  # a set sealed whole (minutes) has none outside --split sealed: don't index it
            continue
        ran.append(name)
        # Each set is measured over its own corpus alone, in an index of its own (FAISS files beside the
        # report, or under --index-root, shared by runs): the user's index is left alone. The gate measures
        # what users get; a full run reads every signal, for `rag calibrate`.
        root = Path(getattr(args, "index_root", None) or out)
        # A large set's gate items are answered over the documents they could retrieve (gate.py slice).
        kept = (gate or {}).get("documents", {}).get(name)
        pipeline.settings = base.replace(index_dir=root / (f"index-{name}-gate" if kept else f"index-{name}"),
                                         vector_store="faiss", measure_all_signals=gate is None)
        if kept:
            left_out = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()} - set(kept)
            pipeline.index([corpus], progress=sys.stderr.isatty(), exclude=left_out)
        else:
            pipeline.index([corpus], progress=sys.stderr.isatty())

        rows += evaluate(pipeline, items, corpus, name, progress=_progress, model_judge=gate is None)
    if not rows:
        raise BadInput(f"the chosen eval sets have no {args.split!r} items (minutes is sealed: --split sealed)")
    if args.split in ("tune", "sealed"):
        headline = args.split
    else:
        headline = "report" if any(r["split"] == "report" for r in rows) else "all"
    shown = [r for r in rows if headline == "all" or r["split"] == headline]
    judge = Judge(pipeline.embedder) if gate else judge_for(pipeline.embedder, pipeline.generator)
    labels = load_jsonl(EVAL_DIR / "support_labels.jsonl")
    thresholds = load_thresholds()
    metrics = summarize(shown)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "items": len(rows), "sets": ran,
        "headline": headline, "model": pipeline.generator.name, "tier": pipeline.tier,
        "choice_bias": (pipeline.reader.weights or {}).get("choice_bias"),
        "embedder": pipeline.embedder.name, "context": pipeline.settings.context, "metrics": metrics,
        "by_corpus": {c: summarize([r for r in shown if r["corpus"] == c]) for c in ran},
        "tune_metrics": summarize([r for r in rows if r["split"] == "tune"]) if headline == "report" else {},
        "signals": signal_table(shown),
        # The gate's rows are judged by the embedding judge; a full run's by the model judge, checked here.
        "checker": validate_judge(judge, labels, pipeline.settings.support_threshold, [] if gate else short_labels()),
        "thresholds": thresholds,
    }
    report["threshold_failures"] = (check_thresholds(metrics, thresholds) if not gate else check_gate(rows, gate) + (
        check_thresholds(metrics, {"short_answers_not_in_passages": thresholds["short_answers_not_in_passages"]}))
    ) + kappas_below_their_floors(report["checker"], model_judge=isinstance(judge, ModelJudge))
    report["rows"] = rows
    (out / "eval.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "eval.md").write_text(markdown_report(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(markdown_report(report).split("\n## Failed items")[0])
        print(f"reports: {out / 'eval.json'}, {out / 'eval.md'}")
    if report["threshold_failures"] and not args.no_gate:
        print("rag: eval below thresholds: " + "; ".join(report["threshold_failures"]), file=sys.stderr)
        return 1
    return 0


def _progress(n: int, total: int, row: dict) -> None:
    mark = "abstain" if row["abstained"] else ("ok" if row["correct"] else "wrong")
    print(f"[{row['corpus']} {n}/{total}] {row['id']} {mark} {row['seconds']:.1f}s", file=sys.stderr, flush=True)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
