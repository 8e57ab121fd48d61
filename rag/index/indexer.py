"""Incremental indexing: read the roots, embed only new or changed documents, commit atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..documents.chunk import chunk_document
from ..documents.ingest import ReadLimits, Skipped, find_files, read_bytes, reason_of
from ..documents.isolation import IsolatedReader
from ..documents.ocr import print_progress as print_ocr_progress
from ..errors import IndexMissing, RagError, UnreadableDocument
from ..records import Chunk
from .embed import Embedder
from .segments import HNSW_THRESHOLD, IndexState
from .store import Store, _sha256, check_compatible

# A file's stat is trusted only when it was last modified this long before the scan began.
STAT_MARGIN_NS = 2_000_000_000


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
                 hnsw_threshold: int = HNSW_THRESHOLD, lock_timeout: float = 30.0,
                 limits: ReadLimits = ReadLimits()) -> IndexReport:
    """Make the index hold exactly the readable documents under `roots`, less `exclude`.

    Unchanged files (same size and modification time, else same sha256) keep their chunks and
    vectors, and are not read; a file that was indexed before but cannot be read now keeps its
    old chunks, so a bad copy loses nothing. Excluded document ids are remembered in the
    manifest until a rebuild. PDF and HTML are parsed in a child process within `limits`, and
    new or changed files are read before the lock is taken (`read_before_lock`).
    """
    began = time.perf_counter()
    early = read_before_lock(store, roots, exclude, rebuild, limits, progress, (embedder.name, chunker))
    with store.lock(lock_timeout):
        if not rebuild:
            store.upgrade()
        previous = None if rebuild else _previous_manifest(store, embedder, chunker)
        old_docs = previous["documents"] if previous else {}
        excluded = set(exclude) | set(previous.get("excluded", []) if previous else [])
        files, skipped = find_files(roots)
        files = [(path, doc_id) for path, doc_id in files if doc_id not in excluded]
        settled = time.time_ns() - STAT_MARGIN_NS
        keep: dict[str, dict] = {}
        fresh_chunks: list[Chunk] = []
        fresh_docs: dict[str, dict] = {}
        added, updated = [], []
        with IsolatedReader(limits, print_ocr_progress if progress else None) as reader:
            for path, doc_id in files:
                if doc_id in keep or doc_id in fresh_docs:
                    skipped.append(Skipped(str(path), f"duplicate document id {doc_id!r}", doc_id))
                    continue
                old = old_docs.get(doc_id, {})
                try:
                    # A file read before the lock keeps what was seen then: its stat was taken before
                    # its bytes were read, so a later change makes the next run read it again.
                    stat, sha, doc = early.pop(doc_id, None) or (_stat(path, settled), "", None)
                    if stat and old.get("stat") == stat:
                        keep[doc_id] = {**old, "path": str(path)}
                        continue
                    data = None if sha else read_bytes(path)
                    sha = sha or _sha256(data)
                    if old.get("sha256") == sha:
                        keep[doc_id] = {**old, "path": str(path), "stat": stat}
                        continue
                    if isinstance(doc, UnreadableDocument):
                        raise doc
                    doc = doc or reader.read(path, doc_id, data or read_bytes(path))
                except UnreadableDocument as exc:
                    skipped.append(Skipped(str(path), reason_of(exc, path), doc_id))
                    if doc_id in old_docs:
                        keep[doc_id] = old_docs[doc_id]
                    continue
                chunks = chunk_document(doc, chunker["size"], chunker["overlap"])
                fresh_chunks.extend(chunks)
                fresh_docs[doc_id] = {"path": str(path), "sha256": doc.sha256, "chunks": len(chunks),
                                      "pages": len(doc.pages), "stat": stat}
                (updated if doc_id in old_docs else added).append(doc_id)

        removed = tuple(sorted(set(old_docs) - set(keep) - set(fresh_docs)))
        documents = dict(sorted({**keep, **fresh_docs}.items()))
        state = None
        if rebuild or added or updated or removed or previous is None:
            vectors = embedder.embed([c.text for c in fresh_chunks], progress=progress) if fresh_chunks else \
                np.zeros((0, embedder.dim), dtype=np.float32)
            manifest = {"embedder": embedder.name, "dim": embedder.dim, "chunker": chunker,
                        "roots": [str(Path(r).resolve()) for r in roots], "excluded": sorted(excluded),
                        "documents": documents}
            state = store.write(fresh_chunks, vectors, manifest, hnsw_threshold, replace=previous is None)
        return IndexReport(
            documents=len(documents), chunks=sum(d["chunks"] for d in documents.values()), added=tuple(added),
            updated=tuple(updated), removed=removed, unchanged=len(keep), skipped=tuple(skipped),
            embedded=len(fresh_chunks), seconds=time.perf_counter() - began, state=state)


def read_before_lock(store: Store, roots: list[Path], exclude: set[str], rebuild: bool, limits: ReadLimits,
                     progress: bool, built_with: tuple[str, dict]) -> dict[str, tuple]:
    """Read the new and changed files before the index lock is taken: {doc_id: (stat, sha256, result)}.

    Parsing, and OCR of a scanned PDF above all, can take minutes, and another writer (an upload in
    the UI) would wait for the lock all that time. The result is None for a file whose bytes are
    what the index holds.
    """
    try:
        manifest = {} if rebuild else store.read_manifest()[1]
    except RagError:  # no index yet, or one the locked pass will report on
        manifest = {}
    if manifest:
        check_compatible(manifest, *built_with)  # say so now, not after minutes of OCR
    old_docs = manifest.get("documents", {})
    excluded = set(exclude) | set(manifest.get("excluded", []))
    settled = time.time_ns() - STAT_MARGIN_NS
    early: dict[str, tuple] = {}
    with IsolatedReader(limits, print_ocr_progress if progress else None) as reader:
        for path, doc_id in find_files(roots)[0]:
            if doc_id in excluded or doc_id in early:
                continue
            old = old_docs.get(doc_id, {})
            try:
                stat = _stat(path, settled)
                if stat and old.get("stat") == stat:
                    continue
                data = read_bytes(path)
            except UnreadableDocument:
                continue  # the locked pass says why
            sha = _sha256(data)
            if old.get("sha256") == sha:
                early[doc_id] = (stat, sha, None)  # unchanged: not read again under the lock
                continue
            try:
                early[doc_id] = (stat, sha, reader.read(path, doc_id, data))
            except UnreadableDocument as exc:
                early[doc_id] = (stat, sha, exc)
    return early


def _previous_manifest(store: Store, embedder: Embedder, chunker: dict) -> dict | None:
    try:
        _, manifest = store.read_manifest()
    except IndexMissing:
        return None
    check_compatible(manifest, embedder.name, chunker)
    return manifest


def _stat(path: Path, settled: int) -> list[int] | None:
    """[size, mtime_ns] of a file modified before `settled`; None for a recent one, which is always read.

    A file changed again within the clock tick of its last read keeps the same size and time,
    so only files older than a safety margin are trusted by their stat.
    """
    try:
        st = path.stat()
    except OSError:
        return None  # reading it says why, in one line
    return [st.st_size, st.st_mtime_ns] if st.st_mtime_ns < settled else None
