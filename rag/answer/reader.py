"""The answer policy: ground the model's reply in the passages, score it, answer or abstain.

For a question that asks for a thing (who, what, when, how many…) the model is asked for the shortest
phrase copied from the passages, or NONE. That phrase is shown only where it stands in a passage
(`phrase.locate_phrase`: exactly after normalisation, or snapped to the passage's own words), and the
sentence that holds it is the evidence. A why/how question gets a sentence answer, shown only when every
sentence passes the verifier (`cite.verify_sentence`). Nothing else is ever shown as an answer: when no
grounded answer comes out, the reply is the abstention.

Whether a grounded answer is shown is decided by its calibrated probability of being right: a logistic
over the model's own probabilities (that its first token is NONE, of its answer's tokens, that it says
"yes" when asked to check the answer against the passage) and a few lexical and retrieval signals,
fitted on the tune half of the eval by `rag calibrate` and kept in `rag/calibration.json` per model tier.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..documents.chunk import split_sentences
from ..records import Citation, Sentence
from ..text import content_terms, stem, words
from .cite import MONTHS, blank_instructions, facts, negations, parse_claims, support_score, verify_sentence
from .phrase import Located, locate_phrase

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
SHORT_ANSWER_WORDS = 12
# The answers to a yes/no question.
YES_NO = ("Yes", "No")
# The reply the short-answer prompt asks for when the passages do not say.
ABSTAIN_WORD = "NONE"
# A question's name counts as its focus when it is at least this rare (share of the highest IDF).
RARE_NAME_IDF = 0.6
# A shown answer whose calibrated probability of being right is at least this reads "likely answer";
# below it, "uncertain: check the source".
LIKELY = 0.7
_REFUSAL = re.compile(
    r"^\W*none\b|\bcan(?:not|'t|’t| not) find|\b(?:is|are) not (?:mentioned|stated|provided|given|specified)|"
    r"\bno (?:information|mention)\b|\bdo(?:es)? not (?:say|mention|contain|provide|specify|state)|"
    r"\bnot (?:in|found in) the (?:passages|documents)", re.IGNORECASE)
_LEAD = re.compile(r"^\s*(?:\*\*)?(?:final\s+)?answer\s*(?:\*\*)?\s*[:：-]\s*", re.IGNORECASE)
_EXPLAIN = re.compile(
    r"^\W*(?:why|how)\b(?!\s+(?:many|much|long|old|often|far|big|large|few|tall|soon|early|late|high|low)\b)"
    r"|\b(?:explain|describe)\b|\bwhat (?:is|was|are|were) the (?:reason|purpose|point|effect)s?\b",
    re.IGNORECASE)

# The signals the calibrated score may use; `rag calibrate` keeps those that earn their place.
FEATURES = ("p_abstain", "mean_logprob", "min_logprob", "p_support", "retrieval", "coverage",
            "sentence_coverage", "missing", "focus", "polarity", "type_ok", "snapped", "answer_words", "explained")


@dataclass(frozen=True)
class Reading:
    """The policy's verdict on one reply: what to show, the evidence spans, and why."""

    sentences: tuple[Sentence, ...]
    evidence: dict = field(default_factory=dict)
    mode: str = "short"
    signals: dict = field(default_factory=dict)
    confidence: float = 0.0
    answer: bool = False


def wants_explanation(question: str) -> bool:
    """Whether a question asks why or how (a sentence answer) rather than for a thing (a short phrase).

    >>> wants_explanation("Why did China propose it?"), wants_explanation("How many nations signed?")
    (True, False)
    """
    return bool(_EXPLAIN.search(question))


def answer_mode(question: str) -> str:
    """How a question is answered: "sentence" (why/how), "yesno", or "short" (a span of the passages).

    >>> answer_mode("Why did China propose it?"), answer_mode("Does it cover patents?"), answer_mode("Who spoke?")
    ('sentence', 'yesno', 'short')
    """
    from .spans import asks_yes_or_no

    if wants_explanation(question):
        return "sentence"
    return "yesno" if asks_yes_or_no(question) else "short"


def parse_reply(raw: str) -> tuple[str, tuple[int, ...], bool]:
    """The answer text without markers, the passage ids it cites, and whether the model refused.

    >>> parse_reply("Answer: 28 nations [2]")
    ('28 nations', (2,), False)
    >>> parse_reply("NONE")
    ('', (), True)
    """
    text = raw.strip().split("\n\n")[0].strip()
    text = _LEAD.sub("", text).strip()
    if not text or _REFUSAL.search(text):
        return "", (), True
    claims = parse_claims(text)
    cited = tuple(dict.fromkeys(i for c in claims for i in c.cited))
    answer = " ".join(c.text for c in claims).strip()
    return answer.strip(" *\"'“”"), cited, False


Check = Callable[[str, Citation], "float | None"]


class Reader:
    """Grounds replies in the passages and scores them. `idf(term)` comes from the lexical index."""

    def __init__(self, idf: Callable[[str], float], max_idf: float, weights: dict | None = None,
                 support_threshold: float = 0.55, min_coverage: float = 0.05, measure_all: bool = False):
        self.idf = idf
        self.measure_all = measure_all
        self.max_idf = max(max_idf, 1e-6)
        self.weights = weights
        self.support_threshold = support_threshold
        self.min_coverage = min_coverage

    def read(self, question: str, raw: str, passages: list[Citation], retrieval: float,
             scores: dict | None = None, check: Check | None = None, asked: str = "",
             choice: bool = False) -> Reading:
        """Ground the model's reply and decide whether to show it; `check(statement, passage)` is the
        model's P(yes) that the passage says the statement. `asked` is what the user typed this turn, when
        `question` is its standalone rewrite: an answer may repeat the earlier turns, not this one.
        With `choice`, the reply answers a yes/no question and its evidence is the deciding sentence."""
        scores = scores or {}
        answer, cited, refused = parse_reply(raw)
        base = {"p_abstain": _round(scores.get("p_abstain")), "retrieval": round(retrieval, 4)}
        if scores.get("choices"):  # a yes/no reply's raw odds, which `rag calibrate` fits its bias on
            base["choices"] = scores["choices"]
        if refused:
            return Reading((), mode="model said so", signals=base)
        grounded = (self.ground_choice(question, answer, passages) if choice
                    else self.ground(asked or question, answer, cited, passages))
        if not grounded:
            return Reading((), mode="not in the passages", signals=base)
        sentences, evidence, snapped = grounded
        statement = statement_of(question, sentences)
        backer = next(p for p in passages if p.id == sentences[0].citations[0])
        # The check costs a forward pass over its own turn: skipped when the calibration does not use it.
        p_support = check(statement, backer) if check and self.uses("p_support") else None
        signals = self.signals(question, sentences, evidence, passages, retrieval, scores, p_support, snapped)
        if "choices" in base:
            signals["choices"] = base["choices"]
        confidence = self.confidence(signals)
        shown = confidence >= self.threshold()
        mode = "yes/no" if choice else "sentence" if signals["explained"] else "short"
        return Reading(sentences=tuple(sentences), evidence=evidence,
                       mode=mode if shown else f"low confidence ({mode})", signals=signals,
                       confidence=round(confidence, 4), answer=shown)

    # --- grounding ------------------------------------------------------------------------------
    def ground(self, question: str, answer: str, cited: tuple[int, ...],
               passages: list[Citation]) -> tuple[list[Sentence], dict, bool] | None:
        """The answer as grounded sentences, the doc span of each cited passage's evidence, and whether a
        short answer was snapped to the passage's words; None when it can't be grounded."""
        if not answer:
            return None
        count = len(words(answer))
        # A sentence the model wrote ("It was signed by 28 nations.") is shown as written when the
        # verifier backs it; a phrase must stand in a passage.
        sentence = count >= 4 and answer.rstrip().endswith(".")
        if sentence or count > SHORT_ANSWER_WORDS:
            verified = self.verify(answer, cited, passages)
            if verified or count > SHORT_ANSWER_WORDS:
                return verified
        # Sentences that try to steer the assistant are data, never evidence.
        readable = [replace(p, text=blank_instructions(p.text)) for p in passages]
        found = locate_phrase(answer, readable, cited)
        if not found or not self.adds_to(question, found.text):
            return None
        found = replace(found, passage=next(p for p in passages if p.id == found.passage.id))
        return [Sentence(found.text, (found.passage.id,), True)], {found.passage.id: evidence_span(found)}, \
            found.snapped

    def ground_choice(self, question: str, answer: str,
                      passages: list[Citation]) -> tuple[list[Sentence], dict, bool] | None:
        """A yes/no answer with the passage sentence that decides it: the one that holds the most of the
        question's words, weighted by their rarity (the earlier passage on a tie); None for another reply."""
        word = answer.strip(" .!").capitalize()
        if word not in YES_NO:
            return None
        best, best_cover = None, 0.0
        for p in passages:
            readable = blank_instructions(p.text)
            for a, b in split_sentences(readable, p.start):
                cover = self.coverage(question, readable[a - p.start:b - p.start])
                if cover > best_cover + 1e-9:
                    best, best_cover = (p, (a, b)), cover
        if best is None:
            return None
        passage, span = best
        return [Sentence(word, (passage.id,), True)], {passage.id: span}, False

    @staticmethod
    def adds_to(question: str, answer: str) -> bool:
        """An answer that only repeats the question's words and facts is not an answer."""
        asked = set(content_terms(question))
        asked_words = {w.lower() for w in words(question)}
        return any(t not in asked for t in content_terms(answer)) or any(
            f not in asked_words for f in facts(answer))

    def verify(self, answer: str, cited: tuple[int, ...],
               passages: list[Citation]) -> tuple[list[Sentence], dict, bool] | None:
        """Each sentence of a longer answer, backed by a passage that passes the verifier; else None."""
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
        return (kept, spans, False) if kept else None

    def focus(self, question: str) -> set[str]:
        """What the question is about that the answer's passage should name too: its numbers and months,
        and its rare names ("Bletchley"; not "Python" in the Python docs, which every passage implies)."""
        rare = RARE_NAME_IDF * self.max_idf
        return {f for f in facts(question)
                if any(ch.isdigit() for ch in f) or f in MONTHS or self.idf(stem(f)) >= rare}

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
                retrieval: float, scores: dict, p_support: float | None, snapped: bool) -> dict:
        """The numbers the calibrated score is computed from (None where a signal could not be read)."""
        cited = {i for s in sentences for i in s.citations}
        context = " ".join(blank_instructions(p.text) for p in passages if p.id in cited)
        spans = [(p, evidence[p.id]) for p in passages if p.id in evidence]
        evidence_text = " ".join(p.text[a - p.start:b - p.start] for p, (a, b) in spans)
        answer = " ".join(s.text for s in sentences)
        focus = self.focus(question)
        have = {w.removesuffix("'s") for w in words(context.replace("’", "'"))}
        return {"p_abstain": _round(scores.get("p_abstain")), "mean_logprob": _round(scores.get("mean_logprob")),
                "min_logprob": _round(scores.get("min_logprob")), "p_support": p_support,
                "retrieval": round(retrieval, 4), "coverage": round(self.coverage(question, context), 4),
                "sentence_coverage": round(self.coverage(question, evidence_text + " " + answer), 4),
                "missing": round(self.missing(question, context + " " + answer), 4),
                # Share of the question's numbers and rare names that the answer's passage names.
                "focus": round(sum(all(w in have for w in words(f)) for f in focus) / len(focus), 4) if focus else 1.0,
                # The question's negation ("refused", "not") is in the evidence too.
                "polarity": float(negations(question) <= negations(evidence_text)),
                "type_ok": float(has_expected_answer_type(question, answer)),
                "snapped": float(snapped),
                "answer_words": float(min(len(words(answer)), 40)),
                "explained": float(len(words(answer)) > SHORT_ANSWER_WORDS or answer.rstrip().endswith("."))}

    def confidence(self, signals: dict) -> float:
        """P(the answer is right), from the calibrated logistic weights of the model tier.

        A signal that could not be read (a remote server gives no log-probabilities) takes its tune-half
        mean, so it moves the score neither way.
        """
        w = self.weights
        if not w:
            # Uncalibrated: the model's own abstention probability and its check, else the lexical rule.
            probabilities = [1 - signals["p_abstain"] if signals.get("p_abstain") is not None else None,
                             signals.get("p_support")]
            known = [p for p in probabilities if p is not None]
            if known:
                return sum(known) / len(known)
            lexical = signals["coverage"] >= self.min_coverage and signals["type_ok"] and signals["focus"] == 1.0
            return 0.9 if lexical else 0.1
        z = w["bias"]
        for k, coef in w["coef"].items():
            value = signals.get(k)
            if value is not None:
                z += coef * (value - w["mean"][k]) / w["scale"][k]
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))

    def uses(self, signal: str) -> bool:
        """Whether a signal must be read: the calibration weighs it, none was fitted, or all are measured."""
        return self.measure_all or not self.weights or signal in self.weights["coef"]

    def threshold(self) -> float:
        return self.weights["threshold"] if self.weights else 0.5


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def verdict(confidence: float, abstained: bool) -> str:
    """The badge in words: "likely answer", "uncertain: check the source" or "not found in the documents"."""
    if abstained:
        return "not found in the documents"
    return "likely answer" if confidence >= LIKELY else "uncertain: check the source"


def statement_of(question: str, sentences: list[Sentence]) -> str:
    """What the support check asks the model to confirm: the question with its answer."""
    answer = " ".join(s.text for s in sentences)
    return f'The answer to "{question}" is: {answer}'


def evidence_span(found: Located) -> tuple[int, int]:
    """The doc span of the passage sentence that holds a located short answer."""
    passage = found.passage
    for a, b in split_sentences(passage.text, passage.start):
        if a <= found.start and found.end <= b:
            return a, b
    return found.start, found.end


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
