"""Find a model's short answer in the passages, as the passages' own words.

A short answer is only shown when it stands in a passage. The comparison forgives what copying
changes without changing the meaning (case, punctuation, articles, quote styles, whitespace,
thousands separators); a near miss ("the Bletchley Declarations") is snapped to the passage's own
words rather than thrown away, but never across a different number, name or negation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..records import Citation
from ..text import stem
from .cite import strip_markers

# A token: a word, or a number with its inner separators ("3.10", "1,200", "2023-11-01").
_TOKEN = re.compile(r"[^\W_]+(?:[’'.,:/-][^\W_]+)*", re.UNICODE)
_ARTICLES = frozenset({"a", "an", "the"})
_NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "without", "cannot", "n't"})
# A near miss must share at least this share of its words with the passage window (token F1).
SNAP_MIN_F1 = 0.75


@dataclass(frozen=True)
class Located:
    """Where a short answer stands: the passage, the doc span of the matched words, and their text."""

    passage: Citation
    start: int
    end: int
    text: str
    snapped: bool


def normal_token(token: str) -> str:
    """A token as compared: lowercased, one apostrophe, no thousands separators ("1,200" -> "1200")."""
    token = token.lower().replace("’", "'").replace("‘", "'")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", token):
        token = token.replace(",", "")
    return token.rstrip(".,:")


def tokens(text: str) -> list[tuple[str, int, int]]:
    """The normalized tokens of `text` with their char spans; a trailing sentence dot is not part of one."""
    out = []
    for m in _TOKEN.finditer(text):
        token, end = m.group(), m.end()
        while token and token[-1] in ".,:/-’'":
            token, end = token[:-1], end - 1
        if token:
            out.append((normal_token(token), m.start(), end))
    return out


def _core(answer_tokens: list[str]) -> list[str]:
    """The answer's words without leading articles ("The Global AI Governance Initiative")."""
    while answer_tokens and answer_tokens[0] in _ARTICLES:
        answer_tokens = answer_tokens[1:]
    return answer_tokens


def _anchors(token_list: list[str]) -> set[str]:
    """The tokens a snap may not change: numbers and negations."""
    return {t for t in token_list if any(ch.isdigit() for ch in t) or t in _NEGATIONS}


def _f1(a: list[str], b: list[str]) -> float:
    from collections import Counter

    common = sum((Counter(a) & Counter(b)).values())
    if not common:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


def locate_phrase(answer: str, passages: list[Citation], cited: tuple[int, ...] = ()) -> Located | None:
    """The passage words that `answer` copies: exactly (after normalisation), else the nearest window.

    Cited passages are searched first, then the rest in order.

    >>> p = Citation(id=1, doc="d", page=None, start=0, end=30, text="It employs about 1,200 people.")
    >>> locate_phrase("about 1200 People", [p]).text
    'about 1,200 people'
    """
    wanted = _core([t for t, _, _ in tokens(answer)])
    if not wanted:
        return None
    order = [p for i in cited for p in passages if p.id == i] + [p for p in passages if p.id not in cited]
    for passage in order:
        found = _exact(wanted, passage)
        if found:
            return found
    best, best_score = None, SNAP_MIN_F1
    for passage in order:
        found, score = _nearest(wanted, passage)
        if found and score > best_score + 1e-9:
            best, best_score = found, score
    return best


def _exact(wanted: list[str], passage: Citation) -> Located | None:
    have = tokens(passage.text)
    n = len(wanted)
    for i in range(len(have) - n + 1):
        if [t for t, _, _ in have[i:i + n]] == wanted:
            return _located(passage, have[i][1], have[i + n - 1][2], snapped=False)
    return None


def _nearest(wanted: list[str], passage: Citation) -> tuple[Located | None, float]:
    """The passage window most like the answer, keeping its numbers and negations exactly."""
    have = tokens(passage.text)
    anchors = _anchors(wanted)
    stems = [stem(t) for t in wanted]
    best, best_score = None, 0.0
    n = len(wanted)
    for size in range(max(1, n - 2), n + 3):
        for i in range(len(have) - size + 1):
            window = [t for t, _, _ in have[i:i + size]]
            if _anchors(window) != anchors:
                continue
            # Words are compared by their stems ("Declarations" ~ "Declaration"). The window must start
            # and end on an answer word, so it adds nothing at its edges.
            window = [stem(t) for t in window]
            if window[0] not in stems or window[-1] not in stems:
                continue
            score = _f1(window, stems)
            if score > best_score:
                best, best_score = (have[i][1], have[i + size - 1][2]), score
    if not best:
        return None, 0.0
    return _located(passage, *best, snapped=True), best_score


def _located(passage: Citation, a: int, b: int, snapped: bool) -> Located:
    # A document's own [n] markers would pass for the pipeline's.
    return Located(passage=passage, start=passage.start + a, end=passage.start + b,
                   text=" ".join(strip_markers(passage.text[a:b]).split()), snapped=snapped)
