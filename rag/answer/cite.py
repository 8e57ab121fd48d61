"""Citation parsing and the support check that every shown sentence must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..documents.chunk import split_sentences
from ..text import STOPWORDS, content_terms, stem, words

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"}
_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without",
              "cannot", "n't", "rarely", "hardly"}
# Verbs that turn a statement around ("failed to gain support"), by their stems: a generic list of
# negative-polarity verbs, not fitted to the labels.
_NEGATIVE_VERBS = {"fail", "lack", "refus", "reject", "ignor", "oppos", "deni", "deny", "prevent", "restrict",
                   "halt", "ceas", "abandon", "declin", "forbid", "ban", "block", "stopp", "stop"}
# Numbers written as words count as facts, like digits.
_NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion",
                 "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                 "dozen", "half", "twice", "double", "triple"}
_CAPITALIZED = re.compile(r"\b[A-Z][\w’'-]*")

# Text that tries to steer the assistant. In a question it earns the abstention; inside a document
# it is data, never evidence: the verifier and the extractive answer ignore such sentences.
INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|documents?|passages?|context|"
    r"rules|prompt|sources?)\b|\b(system|hidden|initial|original)\s+(prompt|instructions?)\b|"
    r"\b(reveal|print|show|repeat|output)\b.{0,30}\b(prompt|instructions)\b|\byou are now\b|"
    r"\bpretend\b|\bjailbreak\b|\b(from|use) your own knowledge\b|\bwithout (using|the|looking)\b.{0,20}"
    r"\bdocuments?\b|(^|\n)\s*(system|assistant|user)\s*:|\b(always|only)\s+(answer|reply|respond|say)\b|"
    r"\b(answer|reply|respond)\s+(only\s+)?with\b|\bignore (them|it|this|that|those)\b|"
    r"\byou (must|should|will) (now )?(answer|reply|say|respond)\b",
    re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Claim:
    """A sentence of the model's answer with the passage ids it cites (as written)."""

    text: str
    cited: tuple[int, ...]


def parse_claims(answer: str) -> list[Claim]:
    """Split an answer into sentences and pull out their `[n]` markers.

    A marker written after the full stop ("... 2023. [2]") belongs to the sentence before it.

    >>> parse_claims("It took effect in 2023 [2]. Nothing else.")
    [Claim(text='It took effect in 2023.', cited=(2,)), Claim(text='Nothing else.', cited=())]
    """
    claims: list[tuple[str, list[int]]] = []
    for start, end in split_sentences(answer):
        piece = answer[start:end]
        lead = re.match(r"(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+", piece)
        if lead and claims:
            claims[-1][1].extend(_marker_ids(lead.group()))
            piece = piece[lead.end():]
        ids = _marker_ids(piece)
        text = re.sub(r"\s+([.!?,;:])", r"\1", _MARKER.sub("", piece)).strip()
        if text and any(ch.isalnum() for ch in text):
            claims.append((text, ids))
    return [Claim(text, tuple(dict.fromkeys(ids))) for text, ids in claims]


def strip_markers(text: str) -> str:
    """Text without its `[n]` citation markers: written in a document that is quoted as an answer,
    they would pass for the pipeline's own.

    >>> strip_markers("It was signed by 14 countries [4], see [2, 3].")
    'It was signed by 14 countries, see.'
    """
    return _MARKER.sub("", text)


def blank_instructions(passage: str) -> str:
    """The passage with instruction-like sentences replaced by spaces (offsets are kept)."""
    out = passage
    for a, b in split_sentences(passage):
        if INSTRUCTION.search(passage[a:b]):
            out = out[:a] + " " * (b - a) + out[b:]
    return out


def _marker_ids(text: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(text) for n in re.findall(r"\d+", group)]


def facts(sentence: str) -> set[str]:
    """The numbers, months and named entities of a sentence, lowercased.

    >>> sorted(facts("China signed it on August 15, 2023."))
    ['15', '2023', 'august', 'china']
    """
    found = {re.sub(r",(?=\d{3})", "", n).rstrip(".,") for n in _NUMBER.findall(sentence)}
    tokens = words(sentence)
    found |= {w for w in tokens if w in MONTHS}
    found |= {part for w in tokens for part in w.split("-") if part in _NUMBER_WORDS}
    matches = list(_CAPITALIZED.finditer(sentence))
    for n, match in enumerate(matches):
        word = match.group().lower().replace("’", "'").removesuffix("'s")
        if word in STOPWORDS or word in MONTHS:
            continue
        # The first word is capitalized anyway: it counts as a name only when a name follows it.
        at_start = not sentence[: match.start()].strip(" \"'“‘(")
        next_is_name = n + 1 < len(matches) and sentence[match.end():matches[n + 1].start()] == " "
        if not at_start or next_is_name:
            found.add(word)
    return found


def negations(text: str) -> set[str]:
    """The negating words of a text: "not", "never", "n't"…, and negative-polarity verbs ("failed")."""
    tokens = set(words(text.replace("n’t", " n't").replace("n't", " n't")))
    verbs = {stem(w) for w in tokens} & _NEGATIVE_VERBS
    return tokens & _NEGATIONS | verbs | ({"n't"} if "n't" in text.replace("’", "'") else set())


def negated_words(sentence: str, window: str) -> bool:
    """True when the sentence puts a negating prefix on a word the window has without it
    ("unwilling" against "willingness", "unnecessary" against "necessary")."""
    have = words(window)
    for w in set(words(sentence)) - set(have):
        for prefix in ("un", "in", "im", "dis", "non-", "non"):
            rest = w[len(prefix):]
            if w.startswith(prefix) and len(rest) >= 4 and any(h.startswith(rest) for h in have):
                return True
    return False


def holds_facts(found: set[str], text: str) -> bool:
    """True when every fact (see `facts`) stands in `text` as whole words ("28", "bletchley"), or where `facts`
    reads it: a part of a hyphenated word ("two" in "two-storey"), the digits of a word ("0" in "CC0").

    >>> holds_facts(facts("It acts against one-sided restrictions."), "It acts against one-sided restrictions.")
    True
    """
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.replace("’", "'"))
    tokens = [w.removesuffix("'s") for w in words(text)]
    parts = [part for w in tokens if "-" in w for part in w.split("-")]
    parts += [n for w in tokens if not w.isdigit() for n in _NUMBER.findall(w)]
    normalized = " " + " ".join(tokens) + " " + " ".join(parts) + " "
    return all(f" {' '.join(words(f))} " in normalized for f in found)


def support_score(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that occur in the passage (stemmed)."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    have = set(content_terms(passage))
    return sum(t in have for t in terms) / len(terms)


def verify_sentence(sentence: str, passages: list[str], threshold: float = 0.6) -> bool:
    """True when one window of the passages (a sentence, or two in a row) backs the sentence.

    In that window every number, month and named entity of the sentence must occur, its negation must
    match the sentence's (none added, none dropped, no "un-" put before a word of the window), and at
    least `threshold` of the sentence's content words must occur.
    """
    wanted = facts(sentence)
    negated = negations(sentence)
    for passage in passages:
        spans = split_sentences(passage)
        pieces = [passage[a:b] for a, b in spans]
        for window in pieces + [f"{x} {y}" for x, y in zip(pieces, pieces[1:])]:
            if not holds_facts(wanted, window):
                continue
            if negated != negations(window) or negated_words(sentence, window):
                continue
            if support_score(sentence, window) >= threshold:
                return True
    return False
