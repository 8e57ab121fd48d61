"""The sentences a summary may show, numbered for the model, and its reply: a few of those numbers.

A summary shows only the document's own sentences. Each part's sentences are shown to the model one a
line, numbered ("3. The council met on 3 May."), and the model replies with the numbers of those that
carry the part's main facts ("3, 7"): a few tokens a part instead of written sentences. On a local model
the reply is decoded under `NumberChoice`, so it can only be distinct numbers that exist, separated by
commas, as many as asked; any other generator's reply is read by `parse_numbers`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from ..documents.chunk import split_sentences
from ..records import Citation
from ..text import words
from .source import readable

# A line with fewer words of letters (a heading such as "Staffing.", a byline, a page number, a row of
# figures) is shown for context, unnumbered: it states no fact a summary could show on its own.
MIN_WORDS = 3
# A sentence ends like one (a full stop, a question or an exclamation mark, closed by quotes, brackets or
# Markdown emphasis); a line that does not is a title, a heading, a byline or a link, shown for context.
_ENDS_LIKE_A_SENTENCE = re.compile(r"[.!?…][\"'”’)\]*_]*$")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a part: its number in the part (None when shown only for context), its text with
    whitespace runs as one space, its passage, and its doc span."""

    number: int | None
    text: str
    passage: Citation
    span: tuple[int, int]


def part_sentences(part: list[Citation], least: int = 1) -> list[Sentence]:
    """The part's sentences in document order, the choosable ones numbered from 1: those of at least
    MIN_WORDS words that end like a sentence, and the lines that do not too when such sentences are fewer
    than `least` (a slide's bullet points have no full stops).

    Instruction-like sentences are left out (`readable` blanks them): they are data, never a summary.

    >>> p = Citation(1, "d", None, 10, 57, "Minutes\\n\\nThe council met on 3 May. It agreed.")
    >>> [(s.number, s.text, s.span) for s in part_sentences([p])]
    [(None, 'Minutes', (10, 17)), (1, 'The council met on 3 May.', (19, 44)), (None, 'It agreed.', (45, 55))]
    """
    found: list[tuple[Citation, int, int, str, bool]] = []
    for passage in part:
        text = readable(passage)
        for a, b in split_sentences(text):
            shown = " ".join(text[a:b].split())
            if sum(any(ch.isalpha() for ch in w) for w in words(shown)) >= MIN_WORDS:
                found.append((passage, a, b, shown, bool(_ENDS_LIKE_A_SENTENCE.search(shown))))
            else:
                found.append((passage, a, b, shown, None))
    lines_too = sum(ends is True for *_, ends in found) < least
    out: list[Sentence] = []
    number = 0
    for passage, a, b, shown, ends in found:
        choosable = ends is True or (ends is False and lines_too)
        number += choosable
        out.append(Sentence(number if choosable else None, shown, passage, (passage.start + a, passage.start + b)))
    return out


def parse_numbers(reply: str, total: int, count: int) -> list[int]:
    """The first `count` distinct numbers of 1..`total` a free reply names, in its order.

    >>> parse_numbers("7, 3, 3, 12 and 2.5", 10, 3)
    [7, 3]
    """
    found = [int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.]\d)", reply)]
    return [n for n in dict.fromkeys(found) if 1 <= n <= total][:count]


def reply_tokens(total: int, count: int) -> int:
    """Room for a reply of `count` numbers up to `total`: a token a digit, two for each ", ", and the end."""
    return count * (len(str(total)) + 2) + 2


@functools.cache
def number_pieces(vocabulary) -> tuple[tuple[int, str], ...]:
    """(token, text) of the vocabulary's pieces made only of digits, commas and spaces."""
    return tuple((token, piece.decode("ascii")) for token, piece in enumerate(vocabulary.pieces)
                 if piece and re.fullmatch(rb"[0-9, ]+", piece))


class NumberChoice:
    """The tokens that keep a reply `count` distinct numbers of 1..`total`, comma-separated, step by step
    (the generator's constraint protocol, as `spans.SpanConstraint`)."""

    abstained = False

    def __init__(self, total: int, count: int, vocabulary):
        self.total, self.count = total, min(count, total)
        self.vocabulary = vocabulary
        self.pieces = number_pieces(vocabulary)
        self.text = ""

    def allowed(self) -> np.ndarray:
        found = [token for token, piece in self.pieces if self.valid(self.text + piece)]
        if self.can_end():
            found.extend(int(t) for t in self.vocabulary.end_ids)
        return np.array(sorted(set(found)), dtype=np.int64)

    def advance(self, token: int) -> None:
        self.text += self.vocabulary.pieces[token].decode("ascii", errors="replace")

    def can_end(self) -> bool:
        read = self.read(self.text)
        if read is None or read[1] is None:
            return False
        done, last = read
        return len(done) + 1 == self.count and self.fresh(last, done)

    def chosen(self) -> list[int]:
        """The numbers of the reply so far, in its order."""
        read = self.read(self.text)
        return [] if read is None else read[0] + ([read[1]] if read[1] is not None else [])

    def valid(self, text: str) -> bool:
        """Whether `text` can still grow into a whole reply."""
        read = self.read(text)
        if read is None:
            return False
        done, last = read
        if last is None:  # at the start, or after a comma: one more number to come
            return len(done) < self.count
        if len(done) + 1 > self.count:
            return False
        return any(str(n).startswith(str(last)) and self.fresh(n, done) for n in range(last, self.total + 1))

    def fresh(self, n: int, done: list[int]) -> bool:
        return 1 <= n <= self.total and n not in done

    @staticmethod
    def read(text: str) -> tuple[list[int], int | None] | None:
        """(the finished numbers, the one being written or None), or None when the text breaks the form:
        numbers without leading zeros, each after a comma and a space but the first."""
        items = text.split(",")
        if not all(re.fullmatch(r"(?:[1-9]\d*)?" if i == 0 else r" ?(?:[1-9]\d*)?", item)
                   for i, item in enumerate(items)):
            return None
        if not all(item.strip() for item in items[:-1]):
            return None
        done = [int(item) for item in items[:-1]]
        if len(set(done)) != len(done):
            return None
        return done, int(items[-1]) if items[-1].strip() else None
