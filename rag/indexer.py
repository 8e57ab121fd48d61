"""Incremental indexing: read the roots, embed only new or changed documents, commit atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chunk import chunk_document
from .embed import Embedder
from .errors import IndexMissing, UnreadableDocument
from .ingest import Skipped, find_files, read_bytes, read_document, reason_of
from .records import Chunk
from .store import HNSW_THRESHOLD, IndexState, Store, _sha256, check_compatible


@dataclass(frozen=True)
class IndexReport:
    """What one `rag index` run did."""

    documents: int
    chunks: int
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    skipped: tuple[Skipped, ...]
    embedded: int
    seconds: float
    state: IndexState | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "documents": self.documents, "chunks": self.chunks, "added": len(self.added),
            "updated": len(self.updated), "removed": len(self.removed), "unchanged": self.unchanged,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "embedded": self.embedded, "seconds": round(self.seconds, 3),
        }


def update_index(store: Store, roots: list[Path], embedder: Embedder, chunker: dict,
                 rebuild: bool = False, progress: bool = False, exclude: set[str] = frozenset(),
                 hnsw_threshold: int = HNSW_THRESHOLD, lock_timeout: float = 30.0) -> IndexReport:
    """Make the index hold exactly the readable documents under `roots`, less `exclude`.

    Unchanged files (same sha256) keep their chunks and vectors; a file that was indexed
    before but cannot be read now keeps its old chunks, so a bad copy loses nothing.
    Excluded document ids are remembered in the manifest until a rebuild.
    """
    began = time.perf_counter()
    with store.lock(lock_timeout):
        previous = None if rebuild else _load_previous(store, embedder, chunker)
        old_docs = previous.documents if previous else {}
        old_rows: dict[str, list[int]] = {}
        if previous:
            for row, chunk in enumerate(previous.chunks):
                old_rows.setdefault(chunk.doc_id, []).append(row)

        excluded = set(exclude) | set(previous.manifest.get("excluded", []) if previous else [])
        files, skipped = find_files(roots)
        files = [(path, doc_id) for path, doc_id in files if doc_id not in excluded]
        keep: dict[str, dict] = {}
        fresh_chunks: list[Chunk] = []
        fresh_docs: dict[str, dict] = {}
        added, updated = [], []
        for path, doc_id in files:
            if doc_id in keep or doc_id in fresh_docs:
                skipped.append(Skipped(str(path), f"duplicate document id {doc_id!r}", doc_id))
                continue
            try:
                data = read_bytes(path)
                sha = _sha256(data)
                if old_docs.get(doc_id, {}).get("sha256") == sha:
                    keep[doc_id] = {**old_docs[doc_id], "path": str(path)}
                    continue
                doc = read_document(path, doc_id, data)
            except UnreadableDocument as exc:
                skipped.append(Skipped(str(path), reason_of(exc, path), doc_id))
                if doc_id in old_docs:
                    keep[doc_id] = old_docs[doc_id]
                continue
            chunks = chunk_document(doc, chunker["size"], chunker["overlap"])
            fresh_chunks.extend(chunks)
            fresh_docs[doc_id] = {"path": str(path), "sha256": doc.sha256, "chunks": len(chunks),
                                  "pages": len(doc.pages)}
            (updated if doc_id in old_docs else added).append(doc_id)

        removed = tuple(sorted(set(old_docs) - set(keep) - set(fresh_docs)))
        state = previous
        if rebuild or added or updated or removed or previous is None:
            kept_rows = [r for d in keep for r in old_rows.get(d, [])]
            kept_chunks = [previous.chunks[r] for r in kept_rows] if previous else []
            kept_vectors = previous.vectors()[kept_rows] if previous and kept_rows else \
                np.zeros((0, embedder.dim), dtype=np.float32)
            new_vectors = embedder.embed([c.text for c in fresh_chunks], progress=progress)
            manifest = {"embedder": embedder.name, "dim": embedder.dim, "chunker": chunker,
                        "roots": [str(Path(r).resolve()) for r in roots], "excluded": sorted(excluded),
                        "documents": dict(sorted({**keep, **fresh_docs}.items()))}
            state = store.write(kept_chunks + fresh_chunks, np.vstack([kept_vectors, new_vectors]),
                                manifest, hnsw_threshold)
        return IndexReport(
            documents=len(state.documents), chunks=len(state.chunks), added=tuple(added),
            updated=tuple(updated), removed=removed, unchanged=len(keep), skipped=tuple(skipped),
            embedded=len(fresh_chunks), seconds=time.perf_counter() - began, state=state)


def _load_previous(store: Store, embedder: Embedder, chunker: dict) -> IndexState | None:
    try:
        previous = store.load()
    except IndexMissing:
        return None
    check_compatible(previous.manifest, embedder.name, chunker)
    return previous

