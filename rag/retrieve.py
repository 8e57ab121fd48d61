"""Hybrid retrieval: dense FAISS search and BM25, fused by reciprocal rank."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .embed import Embedder
from .records import Hit
from .store import IndexState
from .text import content_terms

RRF_K = 60


class BM25:
    """Okapi BM25 over chunk texts, as a sparse term-by-chunk weight matrix."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75):
        from scipy.sparse import csr_matrix

        self.vocab: dict[str, int] = {}
        rows, cols, tfs, lengths = [], [], [], []
        for col, text in enumerate(texts):
            counts = Counter(content_terms(text))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                rows.append(self.vocab.setdefault(term, len(self.vocab)))
                cols.append(col)
                tfs.append(tf)
        self.n = len(texts)
        tf = np.asarray(tfs, dtype=np.float32)
        length = np.asarray(lengths, dtype=np.float32)
        avg = float(length.mean()) if self.n else 1.0
        df = np.bincount(np.asarray(rows, dtype=np.int64), minlength=len(self.vocab))
        idf = np.log1p((self.n - df + 0.5) / (df + 0.5)).astype(np.float32)
        col_idx = np.asarray(cols, dtype=np.int64)
        row_idx = np.asarray(rows, dtype=np.int64)
        norm = k1 * (1 - b + b * length[col_idx] / max(avg, 1e-9)) if len(col_idx) else tf
        weights = idf[row_idx] * tf * (k1 + 1) / (tf + norm)
        self.matrix = csr_matrix((weights, (row_idx, col_idx)), shape=(len(self.vocab), self.n))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros where no term matches)."""
        ids = sorted({self.vocab[t] for t in content_terms(query) if t in self.vocab})
        if not ids or not self.n:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.matrix[ids].sum(axis=0)).ravel()


def fuse_rankings(rankings: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1/(k + rank) to the items it ranks."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


class Retriever:
    """Searches one loaded index with one embedder."""

    def __init__(self, state: IndexState, embedder: Embedder):
        self.state = state
        self.embedder = embedder
        self.bm25 = BM25([c.text for c in state.chunks])

    def search(self, query: str, k: int = 5, pool: int = 50) -> list[Hit]:
        """The top `k` chunks for `query`, best first."""
        n = len(self.state.chunks)
        if n == 0 or not query.strip():
            return []
        pool = min(n, max(pool, 4 * k))
        qvec = self.embedder.embed([query])[0]
        dense_scores, dense_rows = self.state.faiss_index.search(qvec[None, :], pool)
        dense_list = [int(r) for r in dense_rows[0] if r >= 0]
        lexical = self.bm25.scores(query)
        top_lex = np.argpartition(-lexical, pool - 1)[:pool] if pool < n else np.arange(n)
        lexical_list = [int(r) for r in sorted(top_lex, key=lambda r: -lexical[r]) if lexical[r] > 0]
        fused = fuse_rankings([dense_list, lexical_list])
        best = sorted(fused, key=lambda r: (-fused[r], r))[:k]
        dense_of = dict(zip(dense_list, (float(s) for s in dense_scores[0])))
        hits = []
        for rank, row in enumerate(best, start=1):
            dense = dense_of.get(row)
            if dense is None:
                dense = float(self.state.faiss_index.reconstruct(row) @ qvec)
            hits.append(Hit(self.state.chunks[row], fused[row], rank, dense, float(lexical[row])))
        return hits


def idf_of(bm25: BM25, term: str) -> float:
    """How rare a stemmed term is in the index (0 for terms it has never seen is avoided: max idf)."""
    if term not in bm25.vocab:
        return math.log1p(bm25.n + 0.5)
    df = bm25.matrix.getrow(bm25.vocab[term]).nnz
    return math.log1p((bm25.n - df + 0.5) / (df + 0.5))
