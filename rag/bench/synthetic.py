"""Synthetic chunks for the scale bench: made-up texts with Zipf-distributed words, clustered vectors.

See `scale` for what is synthetic and why; `ivfpq` uses the vectors alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDS_PER_CHUNK = 60
VOCABULARY = 50_000
TOPICS = 2_000
TOPIC_WORDS = 40
ZIPF_S = 1.07
SUBSPACE = 64
DOC_CHUNKS = 10  # chunks per synthetic document
EMBEDDER = "synthetic-384"
DIM = 384


@dataclass(frozen=True)
class Synthetic:
    """A synthetic corpus: chunk texts and vectors (row i is chunk i), and queries drawn the same way."""

    texts: list[str]
    vectors: np.ndarray
    queries: list[str]
    query_vectors: np.ndarray


def vocabulary() -> list[str]:
    """The stopwords (which content_terms drops, as in real text) then made-up words, most frequent first."""
    from ..text import STOPWORDS

    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70; words end in a vowel: no stemming
    made_up, n = [], 0
    while len(made_up) < VOCABULARY:
        word, k = "", n
        while True:
            word += syllables[k % len(syllables)]
            k //= len(syllables)
            if k == 0:
                break
        if len(word) > 3:
            made_up.append(word)
        n += 1
    return sorted(STOPWORDS) + made_up


def synthesize(rows: int, queries: int, seed: int = 20261130, texts: bool = True) -> Synthetic:
    """`rows` chunks and `queries` queries; deterministic for a seed. `texts=False` leaves the chunk texts out."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary())
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -ZIPF_S)
    cdf /= cdf[-1]
    topics = rng.integers(len(words) // 50, len(words), size=(TOPICS, TOPIC_WORDS))  # mid and rare words
    centres = _unit(rng.standard_normal((TOPICS, DIM), dtype=np.float32))
    basis = rng.standard_normal((SUBSPACE, DIM), dtype=np.float32) / np.sqrt(DIM)

    def draw(count: int, length: int, topical: int, with_texts: bool = True):
        cluster = rng.integers(0, TOPICS, size=count)
        texts = []
        for start in range(0, count if with_texts else 0, 50_000):
            m = min(count, start + 50_000) - start
            ids = np.searchsorted(cdf, rng.random((m, length)))
            ids[:, :topical] = topics[cluster[start:start + m, None], rng.integers(0, TOPIC_WORDS, size=(m, topical))]
            texts += [" ".join(words[row]) + "." for row in ids]
        vectors = np.empty((count, DIM), dtype=np.float32)
        for start in range(0, count, 50_000):
            part = slice(start, min(count, start + 50_000))
            m = part.stop - part.start
            noise = rng.standard_normal((m, SUBSPACE), dtype=np.float32) @ basis * 1.2
            noise += 0.15 * rng.standard_normal((m, DIM), dtype=np.float32) / np.sqrt(DIM)
            vectors[part] = _unit(centres[cluster[part]] + noise)
        return texts, vectors

    chunk_texts, vectors = draw(rows, WORDS_PER_CHUNK, WORDS_PER_CHUNK // 5, texts)
    query_texts, query_vectors = draw(queries, 6, 3)
    return Synthetic(chunk_texts, vectors, query_texts, query_vectors)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def documents_of(rows: int) -> dict:
    """The manifest's documents: `DOC_CHUNKS` chunks each, as a folder of small files would give."""
    return {f"doc-{d:07d}": {"path": f"doc-{d:07d}.txt", "sha256": "0", "pages": 1,
                             "chunks": min(DOC_CHUNKS, rows - DOC_CHUNKS * d)}
            for d in range((rows + DOC_CHUNKS - 1) // DOC_CHUNKS)}


def chunks_of(texts: list[str]):
    from ..records import Chunk

    return [Chunk(f"doc-{i // DOC_CHUNKS:07d}#{i % DOC_CHUNKS}", f"doc-{i // DOC_CHUNKS:07d}", t, 0, len(t))
            for i, t in enumerate(texts)]


class LookupEmbedder:
    """The retriever's embedder for synthetic queries: each query's vector was drawn with its text."""

    name, dim = EMBEDDER, DIM

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.table = dict(zip(texts, vectors))

    def embed(self, texts, progress=False):
        return np.vstack([self.table[t] for t in texts])


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the exact top-`k` by inner product (FAISS flat search)."""
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, k)[1]


def recall(found, truth, k: int) -> float:
    return round(float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(found, truth, strict=True)])), 4)


def run_child(script: str, *args: str, what: str) -> dict:
    """Run `script` in a new Python process (this package importable) and return the JSON it prints
    last; RagError naming `what` when the process fails."""
    from ..config import PROJECT_ROOT
    from ..errors import RagError

    package_parent = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=7200, cwd=PROJECT_ROOT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [package_parent, os.environ.get("PYTHONPATH", "")])})
    if done.returncode:
        raise RagError(f"the {what} process failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def progress(message: str) -> None:
    print(f"[bench scale] {message}", file=sys.stderr, flush=True)
