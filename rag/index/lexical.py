"""BM25 over term frequencies saved with each index segment, so loading and updating rebuild nothing.

Each segment keeps raw term frequencies (term-major postings) and chunk lengths. Document
frequencies are kept per generation for the live chunks; idf and length normalization are computed
at query time, so an update only adds the new chunks' postings and adjusts the changed terms' counts.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..text import content_terms

K1, B = 1.2, 0.75


@dataclass(frozen=True)
class Postings:
    """One segment's term frequencies: the chunks holding term t are `rows[ptr[t]:ptr[t + 1]]`."""

    ptr: np.ndarray  # int64; covers the term ids known when the segment was written
    rows: np.ndarray  # int32 row within the segment
    tf: np.ndarray  # float32 count of the term in that chunk
    lengths: np.ndarray  # float32 content terms per chunk


def count_terms(texts: list[str], vocab: dict[str, int]) -> tuple[Postings, list[str]]:
    """Postings of `texts`, giving unseen terms the next ids in `vocab`; returns them and the new terms."""
    first_new = len(vocab)
    # Typed arrays, not lists: a 50 MB file makes millions of postings, 4 bytes each instead of 36.
    terms, rows, tfs, lengths = array("i"), array("i"), array("f"), array("f")
    for row, text in enumerate(texts):
        counts = Counter(content_terms(text))
        lengths.append(sum(counts.values()))
        for term, tf in counts.items():
            terms.append(vocab.setdefault(term, len(vocab)))
            rows.append(row)
            tfs.append(tf)
    term_ids = np.frombuffer(terms, dtype=np.int32)
    order = np.argsort(term_ids, kind="stable")  # rows stay ascending within a term
    ptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_ids, minlength=len(vocab)), out=ptr[1:])
    postings = Postings(ptr, np.frombuffer(rows, dtype=np.int32)[order], np.frombuffer(tfs, dtype=np.float32)[order],
                        np.frombuffer(lengths, dtype=np.float32).copy())
    new_terms = list(vocab)[first_new:] if len(vocab) > first_new else []
    return postings, new_terms


def document_frequencies(texts: list[str], vocab: dict[str, int]) -> np.ndarray:
    """How many of `texts` hold each term of `vocab` (every term must be in it)."""
    ids = [vocab[t] for text in texts for t in set(content_terms(text))]
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(vocab))


class BM25:
    """Okapi BM25 over segments' postings, scored over global rows (a segment's rows start at its offset)."""

    def __init__(self, vocab: dict[str, int], df: np.ndarray, parts: list[tuple[int, Postings]],
                 deleted: np.ndarray):
        self.vocab = vocab
        self.df = df
        self.parts = parts
        self.deleted = deleted
        self.total = sum(len(p.lengths) for _, p in parts)
        self.n = self.total - len(deleted)
        lengths = np.concatenate([p.lengths for _, p in parts]) if parts else np.zeros(0, dtype=np.float32)
        if len(deleted):
            lengths = np.delete(lengths, deleted)
        self.avg = float(lengths.mean()) if self.n else 1.0

    @classmethod
    def from_texts(cls, texts: list[str]) -> BM25:
        """An in-memory BM25 over `texts` (row i is text i)."""
        vocab: dict[str, int] = {}
        postings, _ = count_terms(texts, vocab)
        return cls(vocab, np.diff(postings.ptr), [(0, postings)], np.zeros(0, dtype=np.int64))

    def idf(self, term: str) -> float:
        """Inverse document frequency of a (stemmed) term among the live chunks."""
        row = self.vocab.get(term)
        df = 0 if row is None else int(self.df[row])
        return math.log1p((self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every global row for the query (zeros where no term matches, and for deleted rows)."""
        scores = np.zeros(self.total, dtype=np.float32)
        ids = sorted({self.vocab[t] for t in content_terms(query) if t in self.vocab})
        if not ids or not self.n:
            return scores
        avg = max(self.avg, 1e-9)
        for term in ids:
            df = self.df[term]
            idf = np.float32(np.log1p((self.n - df + 0.5) / (df + 0.5)))
            for offset, p in self.parts:
                if term + 1 >= len(p.ptr) or p.ptr[term] == p.ptr[term + 1]:
                    continue
                rows, tf = p.rows[p.ptr[term]:p.ptr[term + 1]], p.tf[p.ptr[term]:p.ptr[term + 1]]
                norm = K1 * (1 - B + B * p.lengths[rows] / avg)
                scores[offset + rows] += idf * tf * (K1 + 1) / (tf + norm)
        scores[self.deleted] = 0
        return scores
