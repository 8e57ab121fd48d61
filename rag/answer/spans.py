"""Short answers decoded as spans of the passages: a reply that can only copy the passages is grounded
by construction, so the model's probability goes to the span it means instead of a passage number, a
"YES" or a paraphrase that no passage holds.

At each step of the greedy loop the generator asks `SpanConstraint.allowed()` for the token ids that keep
the reply a substring of some passage (case aside, whitespace runs read as one space), plus the end of the
reply once the span stops at a word boundary, plus the abstention word at the first step. The allowed set
is read from the passages' own text at the positions the reply can stand at (each position's next bytes
looked up in a table of the vocabulary's pieces), never by scanning the vocabulary: about a millisecond a
step for a few thousand characters of passages.

Yes/no questions take the same path with a different allowed set: the first token is "Yes", "No" or the
abstention word (`ChoiceConstraint`).

Why/how questions are answered with a sentence of the passages, or its end from any word of it
(`SentenceConstraint`): the reply may start at any word and end only where a sentence ends. Once its
first tokens stand at one place of the passages only, the rest of that sentence is the reply's, without
evaluating it: the model chooses where the answer starts, and the time a written sentence took to decode
(20 to 40 tokens, one at a time) goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# The longest vocabulary piece worth looking up at a position (Qwen2.5's longest pieces of prose are
# shorter; longer ones are runs of spaces or symbols that passages with collapsed whitespace lack).
MAX_PIECE_BYTES = 32
_YES_NO = re.compile(r"^\W*(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|has|have|had|may|"
                     r"might|must|isn't|aren't|doesn't|don't|didn't|wasn't|weren't|hasn't|haven't|can't)\b",
                     re.IGNORECASE)
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)


def asks_yes_or_no(question: str) -> bool:
    """Whether a question is answered by yes or no ("Does the GPL-3 allow…?"), not by a thing; a choice
    ("Is it A or B?") is answered by a thing.

    >>> asks_yes_or_no("Does the licence allow sublicensing?"), asks_yes_or_no("Is it Paris or Rome?")
    (True, False)
    """
    return bool(_YES_NO.search(question)) and not _CHOICE.search(question)


class Vocabulary:
    """A model's pieces as bytes, looked up by their lowercased bytes."""

    def __init__(self, pieces: list[bytes], end_ids: frozenset[int]):
        table: dict[bytes, list[int]] = {}
        for token, piece in enumerate(pieces):
            if piece and len(piece) <= MAX_PIECE_BYTES and b"\n" not in piece and b"  " not in piece:
                table.setdefault(piece.lower(), []).append(token)
        self.by_lower = {k: np.array(v, dtype=np.int64) for k, v in table.items()}
        self.pieces = pieces
        self.end_ids = np.array(sorted(end_ids), dtype=np.int64)

    def ids_of(self, word: str) -> np.ndarray:
        """The ids of the pieces that spell `word` whole, with or without a leading space, in any case."""
        found = [self.by_lower.get(v.encode("utf-8").lower(), np.zeros(0, np.int64)) for v in (word, " " + word)]
        return np.unique(np.concatenate(found))


@dataclass(frozen=True)
class Passage:
    """A passage's text as the constraint reads it: whitespace runs as one space, lowercased, in bytes,
    with each byte's offset in the original text."""

    lower: bytes
    origin: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> Passage:
        out, origin = bytearray(), []
        space = True
        for i, ch in enumerate(text):
            if ch.isspace():
                if not space:
                    out += b" "
                    origin.append(i)
                space = True
                continue
            space = False
            encoded = ch.encode("utf-8")
            out += encoded
            origin.extend([i] * len(encoded))
        return cls(bytes(out).lower(), tuple(origin))


def _wordish(byte: int) -> bool:
    """A byte inside a word: an ASCII letter or digit, or any byte of a multi-byte (non-ASCII) character."""
    return byte >= 0x80 or chr(byte).isalnum()


class SpanConstraint:
    """The tokens that keep a reply a span of the passages, step by step."""

    def __init__(self, texts: list[str], vocabulary: Vocabulary, abstain_word: str = "NONE"):
        self.vocabulary = vocabulary
        self.passages = [Passage.of(t) for t in texts]
        self.abstain_ids = vocabulary.ids_of(abstain_word) if abstain_word else np.zeros(0, np.int64)
        # (passage, start, cursor): where the reply so far stands; it starts at any word or token start.
        self.states = [(n, b, b) for n, p in enumerate(self.passages) for b in range(len(p.lower))
                       if _starts_here(p.lower, b)]
        self.steps = 0
        self.abstained = False

    def allowed(self) -> np.ndarray:
        """The token ids allowed next."""
        found = []
        for n, cursor in {(n, c) for n, _, c in self.states}:
            rest = self.passages[n].lower[cursor:cursor + MAX_PIECE_BYTES]
            for size in range(1, len(rest) + 1):
                ids = self.vocabulary.by_lower.get(rest[:size])
                if ids is not None:
                    found.append(ids)
        if self.can_end():
            found.append(self.vocabulary.end_ids)
        if self.steps == 0:
            found.append(self.abstain_ids)
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def advance(self, token: int) -> None:
        """Take `token` as the next piece of the reply."""
        if self.steps == 0 and token in self.abstain_ids:
            self.abstained = True
        piece = self.vocabulary.pieces[token].lower()
        self.steps += 1
        self.states = [(n, s, c + len(piece)) for n, s, c in self.states
                       if self.passages[n].lower[c:c + len(piece)] == piece]

    def can_end(self) -> bool:
        """Whether the reply so far is a whole span: it holds a word and stops at a word's end."""
        return any(self._whole(n, s, c) for n, s, c in self.states)

    def _whole(self, n: int, start: int, cursor: int) -> bool:
        text = self.passages[n].lower
        if cursor <= start or not any(_wordish(b) for b in text[start:cursor]):
            return False
        # A next byte inside a word (a continuation byte of a character counts) means the span cuts it.
        return cursor == len(text) or not _wordish(text[cursor])

    def span(self) -> tuple[int, int, int] | None:
        """(passage index, start, end) of the reply in the original text of its first whole occurrence."""
        for n, s, c in self.states:
            if self._whole(n, s, c):
                origin = self.passages[n].origin
                while s < c and self.passages[n].lower[s] == 0x20:
                    s += 1
                return n, origin[s], origin[c - 1] + 1
        return None


class SentenceConstraint(SpanConstraint):
    """A reply that is the rest of a sentence of the passages from any word of it (or more sentences, in
    a row): it ends only where a sentence ends, and is complete as soon as only one place in the passages
    is left that it can be."""

    def __init__(self, texts: list[str], vocabulary: Vocabulary, abstain_word: str = "NONE"):
        from ..documents.chunk import split_sentences

        self.vocabulary = vocabulary
        self.texts = texts
        self.passages = [Passage.of(t) for t in texts]
        self.abstain_ids = vocabulary.ids_of(abstain_word) if abstain_word else np.zeros(0, np.int64)
        # Each passage's sentences as (start, end) byte positions of its normalised text.
        self.sentences: list[list[tuple[int, int]]] = []
        for text, passage in zip(texts, self.passages, strict=True):
            first = _first_byte(passage.origin)
            self.sentences.append([(first[a], first[b - 1] + len(text[b - 1].encode("utf-8")))
                                   for a, b in split_sentences(text) if a in first and b - 1 in first])
        self.ends = [{e for _, e in sentences} for sentences in self.sentences]
        # A reply starts at any word, as a short answer does: the clause that answers ("to establish a
        # fairer … system") is often the second half of its sentence. Starting only where sentences start
        # was tried: on the report half's 25 why/how items it gave 10 right candidates against 15.
        self.states = [(n, b, b) for n, p in enumerate(self.passages) for b in range(len(p.lower))
                       if _starts_here(p.lower, b)]
        self.steps = 0
        self.abstained = False

    def _whole(self, n: int, start: int, cursor: int) -> bool:
        return cursor > start and cursor in self.ends[n]

    def rest(self) -> str | None:
        """The rest of the reply, in the passage's own characters, once its tokens so far fit only one
        sentence; None while several remain (or the reply may end here already)."""
        if not self.steps or self.abstained or self.can_end():
            return None
        places = {(n, c) for n, _, c in self.states}
        if len(places) != 1:
            return None
        (n, cursor), = places
        if cursor < len(self.passages[n].lower) and 0x80 <= self.passages[n].lower[cursor] < 0xC0:
            return None  # the last piece ends inside a character: its next piece completes it
        end = min((e for _, e in self.sentences[n] if e > cursor), default=None)
        if end is None:
            return None
        origin, text = self.passages[n].origin, self.texts[n]
        # The reply so far covers the passage's characters up to origin[cursor - 1]; the rest follows it.
        return re.sub(r"\s+", " ", text[origin[cursor - 1] + 1:origin[end - 1] + 1])


def _first_byte(origin: tuple[int, ...]) -> dict[int, int]:
    """Each original character's first byte in a passage's normalised text."""
    first: dict[int, int] = {}
    for b, i in enumerate(origin):
        first.setdefault(i, b)
    return first


class ChoiceConstraint:
    """A reply that is one of a few words ("Yes", "No", the abstention word) and then ends.

    `bias` adds a log-odds to a word's first-step score (`calibrate`): a small model says "Yes" to a
    passage that shares the question's words even where it says the opposite ("It is not so." → Yes
    0.78 against No 0.10), so "No" wins less often than it should. `rag calibrate` fits the bias on the
    tune half's yes/no items from each reply's raw first-step probabilities (`choice_probabilities`).
    """

    def __init__(self, words: tuple[str, ...], vocabulary: Vocabulary, bias: dict[str, float] | None = None):
        self.vocabulary = vocabulary
        self.choices = {w: vocabulary.ids_of(w) for w in words}
        self.bias = {w: float(b) for w, b in (bias or {}).items() if w in self.choices and b}
        self.steps = 0
        self.abstained = False

    def choice_probabilities(self, logp: np.ndarray) -> dict[str, float]:
        """Each word's probability as the first token, summed over the pieces that spell it."""
        return {w: round(float(np.exp(logp[ids]).sum()), 6) if len(ids) else 0.0 for w, ids in self.choices.items()}

    def calibrate(self, logp: np.ndarray) -> np.ndarray:
        """The first step's log-probabilities with each word's bias added, normalised again."""
        if self.steps or not self.bias:
            return logp
        out = logp.copy()
        for word, b in self.bias.items():
            out[self.choices[word]] += b
        top = out.max()
        return out - (top + np.log(np.exp(out - top).sum()))

    def allowed(self) -> np.ndarray:
        if self.steps:
            return self.vocabulary.end_ids
        return np.unique(np.concatenate(list(self.choices.values())))

    def advance(self, token: int) -> None:
        self.steps += 1

    def can_end(self) -> bool:
        return self.steps > 0

    def chosen(self, token: int) -> str | None:
        """The word a first token spells, if it is one of the choices."""
        return next((w for w, ids in self.choices.items() if token in ids), None)


def _starts_here(text: bytes, b: int) -> bool:
    """A reply may start at a word's first byte, or at the space before it (pieces carry leading spaces)."""
    byte = text[b]
    if byte == 0x20:
        return b + 1 < len(text) and text[b + 1] != 0x20
    if 0x80 <= byte < 0xC0:
        return False  # inside a multi-byte character
    previous = text[b - 1] if b else 0x20
    return previous == 0x20 or (_wordish(byte) and not _wordish(previous))
