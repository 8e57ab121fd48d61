"""Citation parsing and the support check that every shown sentence must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .chunk import split_sentences
from .text import STOPWORDS, content_terms, words

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"}
_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without",
              "cannot", "n't", "rarely", "hardly"}
_CAPITALIZED = re.compile(r"\b[A-Z][\w’'-]*")


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


def _marker_ids(text: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(text) for n in re.findall(r"\d+", group)]


def facts(sentence: str) -> set[str]:
    """The numbers, months and named entities of a sentence, lowercased.

    >>> sorted(facts("China signed it on August 15, 2023."))
    ['15', '2023', 'august', 'china']
    """
    found = {re.sub(r",(?=\d{3})", "", n).rstrip(".,") for n in _NUMBER.findall(sentence)}
    tokens = words(sentence)
    found |= {w for w in tokens if w in _MONTHS}
    first = True
    for match in _CAPITALIZED.finditer(sentence):
        word = match.group().lower().replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if not first and word not in STOPWORDS and word not in _MONTHS:
            found.add(word)
        first = False
    return found


def negations(text: str) -> set[str]:
    tokens = set(words(text.replace("n’t", " n't").replace("n't", " n't")))
    return tokens & _NEGATIONS | ({"n't"} if "n't" in text.replace("’", "'") else set())


def _normalize(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.replace("’", "'"))
    return " " + " ".join(words(text)) + " "


def support_score(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that occur in the passage (stemmed)."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    have = set(content_terms(passage))
    return sum(t in have for t in terms) / len(terms)


def verify_sentence(sentence: str, passages: list[str], threshold: float = 0.6) -> bool:
    """True when the passages back the sentence.

    Every number, month and named entity must occur in them, no negation may be added, and at
    least `threshold` of the content words must occur in them.
    """
    if not passages:
        return False
    joined = "\n".join(passages)
    normalized = _normalize(joined)
    for fact in facts(sentence):
        if f" {' '.join(words(fact))} " not in normalized:
            return False
    if not negations(sentence) <= negations(joined):
        return False
    return support_score(sentence, joined) >= threshold
