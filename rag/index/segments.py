"""What one generation holds: segments (chunks, FAISS index, BM25 postings) and which rows are live."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..records import Chunk
from .lexical import BM25, Postings

HNSW_THRESHOLD = 50_000
# How widely an HNSW search looks (faiss's efSearch). At 1M synthetic chunks on 2 cores, 64 found 0.51
# of the exact top 10 with a dense p95 of 1.3 ms, 256 found 0.86 with 3.3 ms (docs/performance.md):
# a few milliseconds against an answer's seconds, so recall wins. Set on every index read, so an
# index built with another value searches with this one.
EF_SEARCH = 256


class ChunkFile(Sequence):
    """A segment's chunk records, each parsed from chunks.jsonl when asked for."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.offsets = offsets
        self.data = path.read_bytes() if path.stat().st_size == 0 else _mmap(path)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return Chunk(**json.loads(self.data[self.offsets[row]:self.offsets[row + 1]]))


@dataclass(frozen=True)
class Segment:
    """Chunks, their FAISS index (ids are rows within the segment) and their BM25 postings."""

    name: str
    offset: int  # global row of the segment's first chunk
    chunks: ChunkFile
    postings: Postings
    path: Path
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def rows(self) -> int:
        return len(self.chunks)

    @property
    def index(self):
        """The FAISS index, read on first use."""
        if "index" not in self.cache:
            self.cache["index"] = read_faiss(self.path / "index.faiss")
        return self.cache["index"]


@dataclass(frozen=True)
class IndexState:
    """A loaded generation: its segments, the deleted global rows, the BM25 statistics, the manifest."""

    segments: tuple[Segment, ...]
    deleted: np.ndarray  # sorted global rows
    vocab: dict[str, int]
    df: np.ndarray
    manifest: dict
    directory: Path = field(default=Path("."))
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def documents(self) -> dict:
        return self.manifest["documents"]

    @property
    def total(self) -> int:
        """Rows in all segments, deleted ones included."""
        return sum(s.rows for s in self.segments)

    @property
    def count(self) -> int:
        return self.total - len(self.deleted)

    @property
    def live_rows(self) -> np.ndarray:
        if "live" not in self.cache:
            self.cache["live"] = np.delete(np.arange(self.total), self.deleted)
        return self.cache["live"]

    @property
    def chunks(self) -> Sequence[Chunk]:
        """The live chunks, in global row order (read on demand)."""
        return _LiveChunks(self)

    def locate(self, row: int) -> tuple[Segment, int]:
        """The segment holding a global row, and the row within it."""
        at = bisect.bisect_right([s.offset for s in self.segments], row) - 1
        return self.segments[at], row - self.segments[at].offset

    def chunk(self, row: int) -> Chunk:
        segment, local = self.locate(row)
        return segment.chunks[local]

    def vector(self, row: int) -> np.ndarray:
        segment, local = self.locate(row)
        return segment.index.reconstruct(local)

    def vectors(self) -> np.ndarray:
        """The live vectors in row order."""
        dim = self.manifest["dim"]
        parts = [s.index.reconstruct_n(0, s.rows) for s in self.segments if s.rows]
        every = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        return every[self.live_rows] if len(self.deleted) else every

    def bm25(self) -> BM25:
        return BM25(self.vocab, self.df, [(s.offset, s.postings) for s in self.segments], self.deleted)

    def search(self, qvec: np.ndarray, k: int, only: np.ndarray | None = None) -> dict[int, float]:
        """Inner product of the best `k` live rows (approximate on HNSW segments): {global row: score}.

        `only` (sorted global rows, all live) restricts the search to those rows inside FAISS.
        """
        found: dict[int, float] = {}
        for segment in self.segments:
            if not segment.rows:
                continue
            params = self._skip(segment) if only is None else _select(segment, only)
            if params is False:
                continue
            scores, rows = segment.index.search(qvec[None, :], min(k, segment.rows), params=params)
            found.update((segment.offset + int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0)
        return dict(sorted(found.items(), key=lambda item: -item[1])[:k])

    def document_rows(self, doc_ids) -> np.ndarray:
        """The global rows of these documents' chunks, sorted (unknown ids have none)."""
        starts = {s.name: s.offset for s in self.segments}
        parts = [np.arange(starts[info["segment"]] + info["first"], starts[info["segment"]] + info["first"]
                           + info["chunks"], dtype=np.int64)
                 for d in doc_ids if (info := self.documents.get(d)) and info.get("chunks")]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _skip(self, segment: Segment):
        """FAISS search parameters that skip the segment's deleted rows (None when it has none)."""
        import faiss

        key = ("skip", segment.name)
        if key not in self.cache:
            lo, hi = np.searchsorted(self.deleted, [segment.offset, segment.offset + segment.rows])
            gone = np.asarray(self.deleted[lo:hi] - segment.offset, dtype=np.int64)
            params = None
            if len(gone):
                selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(len(gone), faiss.swig_ptr(gone)))
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=segment.index.hnsw.efSearch) \
                    if index_kind(segment.index) == "hnsw" else faiss.SearchParameters(sel=selector)
                params.keep_alive = (selector, gone)  # faiss holds raw pointers to both
            self.cache[key] = params
        return self.cache[key]


def _select(segment: Segment, only: np.ndarray):
    """FAISS search parameters that let only the segment's rows among `only` be found; False for none."""
    import faiss

    lo, hi = np.searchsorted(only, [segment.offset, segment.offset + segment.rows])
    if lo == hi:
        return False
    local = np.ascontiguousarray(only[lo:hi] - segment.offset, dtype=np.int64)
    selector = faiss.IDSelectorBatch(len(local), faiss.swig_ptr(local))
    params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(segment.index.hnsw.efSearch, len(local))) \
        if index_kind(segment.index) == "hnsw" else faiss.SearchParameters(sel=selector)
    params.keep_alive = (selector, local)  # faiss holds raw pointers to both
    return params


class _LiveChunks(Sequence):
    def __init__(self, state: IndexState):
        self.state = state

    def __len__(self) -> int:
        return self.state.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.state.chunk(int(r)) for r in self.state.live_rows[i]]
        return self.state.chunk(int(self.state.live_rows[i]))


def make_faiss_index(vectors: np.ndarray, threshold: int = HNSW_THRESHOLD):
    """Exact inner product below `threshold` rows; HNSW (approximate) at and above it."""
    import faiss

    dim = vectors.shape[1]
    if len(vectors) >= threshold:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def index_kind(index) -> str:
    return "hnsw" if type(index).__name__.startswith("IndexHNSW") else "flat"


def read_faiss(path: Path):
    import faiss

    index = faiss.read_index(str(path))
    if index_kind(index) == "hnsw":
        index.hnsw.efSearch = EF_SEARCH
    return index


def _mmap(path: Path):
    import mmap

    with open(path, "rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
