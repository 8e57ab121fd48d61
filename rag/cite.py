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
    found |= {w for w in tokens if w in _MONTHS}
    matches = list(_CAPITALIZED.finditer(sentence))
    for n, match in enumerate(matches):
        word = match.group().lower().replace("’", "'").removesuffix("'s")
        if word in STOPWORDS or word in _MONTHS:
            continue
        # The first word is capitalized anyway: it counts as a name only when a name follows it.
        at_start = not sentence[: match.start()].strip(" \"'“‘(")
        next_is_name = n + 1 < len(matches) and sentence[match.end():matches[n + 1].start()] == " "
        if not at_start or next_is_name:
            found.add(word)
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


def verify_sentence(sentence: str, passages: list[str], threshold: float = 0.85) -> bool:
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
