"""The answer policy: read the model's short answer, find the sentence that backs it, answer or abstain.

The model is asked for the shortest answer plus the number of the passage it comes from ("28 nations
[2]"). Nothing it writes is shown until it is grounded: a short answer must stand, word for word
(numbers, names and negations included), in one sentence of the passages, and that sentence becomes
the highlighted evidence; a longer answer (why/how) must pass the sentence verifier. When the model's
answer can't be grounded, the most relevant sentence is the candidate instead. Whether a candidate is
shown at all is decided by a logistic score over signals of how well its evidence covers the question,
with weights fitted on the tune half of the eval (`rag calibrate`) and kept in `rag/calibration.json`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .chunk import split_sentences
from .cite import (
    INSTRUCTION,
    MONTHS,
    blank_instructions,
    facts,
    holds_facts,
    negations,
    parse_claims,
    strip_markers,
    support_score,
    verify_sentence,
)
from .records import Citation, Sentence
from .text import content_terms, stem, words

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
SHORT_ANSWER_WORDS = 12
# A question's name counts as its focus when it is at least this rare (share of the highest IDF);
# chosen on the tune half (of 0.4, 0.6, 0.75: most wrong short answers removed per right one lost).
RARE_NAME_IDF = 0.6
_REFUSAL = re.compile(
    r"\bcan(?:not|'t|’t| not) find|\b(?:is|are) not (?:mentioned|stated|provided|given|specified)|"
    r"\bno (?:information|mention)\b|\bdo(?:es)? not (?:say|mention|contain|provide|specify|state)|"
    r"\bnot (?:in|found in) the (?:passages|documents)", re.IGNORECASE)
_LEAD = re.compile(r"^\s*(?:\*\*)?(?:final\s+)?answer\s*(?:\*\*)?\s*[:：-]\s*", re.IGNORECASE)

FEATURES = ("retrieval", "coverage", "sentence_coverage", "missing", "unknown", "type_ok", "grounded",
            "generated", "cited_match", "evidence_rank", "answer_words")


@dataclass(frozen=True)
class Reading:
    """The policy's verdict on one reply: what to show, the evidence spans, and why."""

    sentences: tuple[Sentence, ...]
    evidence: dict = field(default_factory=dict)
    mode: str = "short"
    signals: dict = field(default_factory=dict)
    confidence: float = 0.0
    answer: bool = False


def parse_reply(raw: str) -> tuple[str, tuple[int, ...], bool]:
    """The answer text without markers, the passage ids it cites, and whether the model refused.

    >>> parse_reply("Answer: 28 nations [2]")
    ('28 nations', (2,), False)
    """
    text = raw.strip().split("\n\n")[0].strip()
    text = _LEAD.sub("", text).strip()
    if not text or _REFUSAL.search(text):
        return "", (), True
    claims = parse_claims(text)
    cited = tuple(dict.fromkeys(i for c in claims for i in c.cited))
    answer = " ".join(c.text for c in claims).strip()
    return answer.strip(" *\"'“”"), cited, False


class Reader:
    """Grounds replies in the passages and scores them. `idf(term)` comes from the lexical index."""

    def __init__(self, idf: Callable[[str], float], max_idf: float, weights: dict | None = None,
                 support_threshold: float = 0.55, min_coverage: float = 0.05):
        self.idf = idf
        self.max_idf = max(max_idf, 1e-6)
        self.weights = weights
        self.support_threshold = support_threshold
        self.min_coverage = min_coverage

    def read(self, question: str, raw: str, passages: list[Citation], retrieval: float, relevance) -> Reading:
        """Ground the model's reply (or, failing that, the best sentence) and decide whether to show it."""
        answer, cited, refused = parse_reply(raw)
        if refused:
            return Reading((), mode="model said so")
        grounded = self.ground(question, answer, cited, passages)
        if grounded:
            (sentences, evidence), mode = grounded, "short" if len(words(answer)) <= SHORT_ANSWER_WORDS else "sentence"
        else:
            (sentences, evidence), mode = self.extract(question, passages, relevance), "extract"
        if not sentences:
            return Reading((), mode="no evidence")
        signals = self.signals(question, sentences, evidence, passages, retrieval, bool(answer), bool(grounded),
                               cited)
        confidence = self.confidence(signals)
        shown = confidence >= self.threshold()
        return Reading(tuple(sentences), evidence, mode if shown else f"low confidence ({mode})", signals,
                       round(confidence, 4), shown)

    # --- grounding ------------------------------------------------------------------------------
    def ground(self, question: str, answer: str, cited: tuple[int, ...],
               passages: list[Citation]) -> tuple[list[Sentence], dict] | None:
        """The answer as verified sentences with the doc span of each cited passage's evidence, or None."""
        if not answer:
            return None
        if len(words(answer)) <= SHORT_ANSWER_WORDS:
            found = self.locate(question, answer, cited, passages)
            if not found:
                return None
            passage, span = found
            return [Sentence(answer, (passage.id,), True)], {passage.id: span}
        evidence = {p.id: blank_instructions(p.text) for p in passages}
        kept, spans = [], {}
        for claim in parse_claims(answer):
            order = [i for i in cited if i in evidence] + sorted(
                (i for i in evidence if i not in cited), key=lambda i: -support_score(claim.text, evidence[i]))
            backer = next((i for i in order[:4] if verify_sentence(claim.text, [evidence[i]],
                                                                   self.support_threshold)), None)
            if backer is None:
                return None
            passage = next(p for p in passages if p.id == backer)
            kept.append(Sentence(claim.text, (backer,), True))
            spans.setdefault(backer, best_span(passage, claim.text))
        return (kept, spans) if kept else None

    def locate(self, question: str, answer: str, cited: tuple[int, ...],
               passages: list[Citation]) -> tuple[Citation, tuple[int, int]] | None:
        """The passage sentence that holds every word, number, name and negation a short answer adds to
        the question, in a passage that names the question's focus; cited passages are searched first.
        An answer that adds nothing to the question is not an answer.
        """
        asked = set(content_terms(question))
        new = [t for t in content_terms(answer) if t not in asked]
        needed_facts = {f for f in facts(answer) if f not in {w.lower() for w in words(question)}}
        if not new and not needed_facts:
            return None
        focus = self.focus(question)
        best, best_cover = None, -1.0
        for group in ([p for p in passages if p.id in cited], [p for p in passages if p.id not in cited]):
            for passage in group:
                if not holds_facts(focus, passage.text):
                    continue
                text = blank_instructions(passage.text)
                for a, b in split_sentences(text):
                    sentence = text[a:b]
                    if sentence.strip() and self.holds(answer, new, needed_facts, sentence):
                        cover = self.coverage(question, sentence)
                        if cover > best_cover:
                            best, best_cover = (passage, (passage.start + a, passage.start + b)), cover
            if best:
                break
        return best

    def focus(self, question: str) -> set[str]:
        """What the question is about that the answer's passage must name too: its numbers and months,
        and its rare names ("Bletchley"; not "Python" in the Python docs, which every passage implies).

        A passage about another treaty, year or person can hold a plausible answer word for word;
        this is what tells it apart.
        """
        rare = RARE_NAME_IDF * self.max_idf
        return {f for f in facts(question)
                if any(ch.isdigit() for ch in f) or f in MONTHS or self.idf(stem(f)) >= rare}

    @staticmethod
    def holds(answer: str, new: list[str], needed_facts: set[str], sentence: str) -> bool:
        have = set(content_terms(sentence))
        if any(t not in have for t in new):
            return False
        if not holds_facts(needed_facts, sentence):
            return False
        return negations(answer) <= negations(sentence)

    def extract(self, question: str, passages: list[Citation], relevance) -> tuple[list[Sentence], dict]:
        """The single most relevant sentence of the passages, verbatim, as the fallback candidate."""
        candidates = [(p, a, b) for p in passages for a, b in split_sentences(p.text)
                      if len(content_terms(p.text[a:b])) >= 3 and not INSTRUCTION.search(p.text[a:b])]
        if not candidates:
            return [], {}
        scores = relevance([p.text[a:b] for p, a, b in candidates])
        p, a, b = candidates[int(scores.argmax())]
        # The document's own [n] markers would pass for the pipeline's.
        text = " ".join(strip_markers(p.text[a:b]).split())
        return [Sentence(text, (p.id,), True)], {p.id: (p.start + a, p.start + b)}

    # --- scoring --------------------------------------------------------------------------------
    def coverage(self, question: str, text: str) -> float:
        """IDF-weighted share of the question's content words found in `text`."""
        terms = set(content_terms(question))
        if not terms:
            return 0.0
        have = set(content_terms(text))
        weight = {t: self.idf(t) for t in terms}
        total = sum(weight.values())
        return sum(w for t, w in weight.items() if t in have) / total if total else 0.0

    def missing(self, question: str, text: str) -> float:
        """The rarest question word absent from `text`, as a share of the rarest possible (0 = none missing)."""
        have = set(content_terms(text))
        gaps = [self.idf(t) for t in set(content_terms(question)) if t not in have]
        # A word the corpus never uses is a paraphrase as often as a gap; one it uses elsewhere is a gap.
        return max((g for g in gaps if g < self.max_idf - 1e-6), default=0.0) / self.max_idf

    def signals(self, question: str, sentences: list[Sentence], evidence: dict, passages: list[Citation],
                retrieval: float, generated: bool, grounded: bool, model_cited: tuple[int, ...] = ()) -> dict:
        """The numbers the abstention score is computed from."""
        cited = {i for s in sentences for i in s.citations}
        terms = set(content_terms(question))
        context = " ".join(blank_instructions(p.text) for p in passages if p.id in cited)
        spans = [(p, evidence[p.id]) for p in passages if p.id in evidence]
        evidence_text = " ".join(p.text[a - p.start:b - p.start] for p, (a, b) in spans)
        answer = " ".join(s.text for s in sentences)
        return {"retrieval": round(retrieval, 4), "coverage": round(self.coverage(question, context), 4),
                "sentence_coverage": round(self.coverage(question, evidence_text + " " + answer), 4),
                "missing": round(self.missing(question, context + " " + answer), 4),
                # Question words the corpus never uses: a paraphrase, or a thing the documents don't hold.
                "unknown": round(sum(self.idf(t) >= self.max_idf - 1e-6 for t in terms) / max(1, len(terms)), 4),
                "type_ok": float(has_expected_answer_type(question, answer)),
                "grounded": float(grounded), "generated": float(generated),
                "cited_match": float(bool(cited & set(model_cited))),
                "evidence_rank": float(min(cited, default=len(passages) + 1)) / max(1, len(passages)),
                "answer_words": float(min(len(words(answer)), 40))}

    def confidence(self, signals: dict) -> float:
        """P(the candidate answers the question correctly), from the calibrated logistic weights."""
        w = self.weights
        if not w:
            # Uncalibrated: the older rules (evidence must touch the question, type must match).
            return 0.9 if signals["coverage"] >= self.min_coverage and signals["type_ok"] else 0.1
        z = w["bias"] + sum(w["coef"][k] * (signals[k] - w["mean"][k]) / w["scale"][k] for k in FEATURES)
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))

    def threshold(self) -> float:
        return self.weights["threshold"] if self.weights else 0.5


def best_span(passage: Citation, claim: str) -> tuple[int, int]:
    """The doc span of the passage sentence that best backs `claim`."""
    spans = split_sentences(passage.text, passage.start)
    if not spans:
        return passage.start, passage.end
    return max(spans, key=lambda sp: support_score(claim, passage.text[sp[0] - passage.start:sp[1] - passage.start]))


def load_calibration(tier: str, path: Path = CALIBRATION_FILE) -> dict | None:
    """The fitted weights for a model tier (or the "default" entry), if any were fitted."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return table.get(tier) or table.get("default")


_NUMBER_WORDS = r"\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion)\b"
_MONTHS = r"\b(" + "|".join(sorted(MONTHS)) + r")\b"
_ASKS_NUMBER = re.compile(r"\bhow (many|much)\b|\bwhat (number|percentage|share|amount)\b", re.IGNORECASE)
_ASKS_DATE = re.compile(r"^\W*when\b|\b(what|which) (date|year|month|day)\b|\bin what year\b", re.IGNORECASE)
_ASKS_NAME = re.compile(r"^\W*who\b", re.IGNORECASE)


def has_expected_answer_type(question: str, answer: str) -> bool:
    """False when the question asks for a number, date or name and the answer has none.

    >>> has_expected_answer_type("How many nations signed?", "Many nations signed.")
    False
    """
    lowered = answer.lower()
    if _ASKS_NUMBER.search(question):
        return bool(re.search(r"\d", answer) or re.search(_NUMBER_WORDS, lowered))
    if _ASKS_DATE.search(question):
        return bool(re.search(r"\b(1[89]|20)\d\d\b|\d+\.\d+", answer) or re.search(_MONTHS, lowered))
    if _ASKS_NAME.search(question):
        asked = {w.lower() for w in re.findall(r"\b[A-Z][\w’'-]+", question)}
        names = {w.lower() for w in re.findall(r"\b[A-Z][\w’'-]+", answer)}
        return bool(names - asked)
    return True
