"""Incremental indexing: read the roots, embed only new or changed documents, commit as it goes."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from ..documents.chunk import chunk_document
from ..documents.ingest import ReadLimits, Skipped, find_files, read_bytes, reason_of
from ..documents.isolation import IsolatedReader
from ..documents.ocr import print_progress as print_ocr_progress
from ..errors import IndexMissing, RagError, UnreadableDocument
from ..records import Chunk
from .embed import Embedder
from .progress import IndexProgress, Stopwatch
from .segments import HNSW_THRESHOLD, IndexState
from .store import Store, _sha256, check_compatible

# A file's stat is trusted only when it was last modified this long before the scan began.
STAT_MARGIN_NS = 2_000_000_000


# A long run commits as it goes, so a run killed after hours keeps what it did: after this many
# changed files, or this many seconds, whichever comes first (Settings.commit_files, commit_seconds).
COMMIT_FILES = 200
COMMIT_SECONDS = 60.0
# The text of PDFs read before the lock (read_before_lock) that is kept for the locked pass.
EARLY_TEXT_BUDGET = 50_000_000
# Chunks embedded per call: the progress bar moves this often.
EMBED_BATCH = 256


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
    commits: int = 0
    timings: dict = field(default_factory=dict)  # seconds per stage: read, chunk, embed, write
    resumed: bool = False  # the previous run was interrupted after committing part of its work
    state: IndexState | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "documents": self.documents, "chunks": self.chunks, "added": len(self.added),
            "updated": len(self.updated), "removed": len(self.removed), "unchanged": self.unchanged,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "embedded": self.embedded, "seconds": round(self.seconds, 3), "commits": self.commits,
            "resumed": self.resumed, "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass
class _Fresh:
    """A new or changed document read in this run: its manifest entry, chunks and (once embedded) vectors."""

    doc_id: str
    info: dict
    chunks: list[Chunk]
    size: int
    vectors: np.ndarray | None = None  # filled batch by batch
    embedded: int = 0


def update_index(store: Store, roots: list[Path], embedder: Embedder, chunker: dict,
                 rebuild: bool = False, progress: bool = False, exclude: set[str] = frozenset(),
                 hnsw_threshold: int = HNSW_THRESHOLD, lock_timeout: float = 30.0,
                 limits: ReadLimits = ReadLimits(), commit_files: int = COMMIT_FILES,
                 commit_seconds: float = COMMIT_SECONDS) -> IndexReport:
    """Make the index hold exactly the readable documents under `roots`, less `exclude`.

    Unchanged files (same size and modification time, else same sha256) keep their chunks and
    vectors, and are not read; a file that was indexed before but cannot be read now keeps its
    old chunks, so a bad copy loses nothing. Excluded document ids are remembered in the
    manifest until a rebuild. Files are parsed in one child process within `limits`; new or changed
    PDFs are read before the lock is taken (`read_before_lock`).

    The run commits after every `commit_files` changed files or `commit_seconds` (0 turns either
    off), each commit crash-safe and whole documents only; the manifest of such a commit is marked
    "partial" and still holds the documents not yet reached, in their old version. The last commit
    drops the removed documents. A run killed at any moment leaves the last commit, and the next
    run reads the files it committed as unchanged: it re-embeds only what no commit holds.
    """
    # One reader process for the run: the PDFs read before the lock and the files read under it.
    with IsolatedReader(limits, print_ocr_progress if progress else None) as reader:
        return _update_index(store, roots, embedder, chunker, rebuild, progress, exclude, hnsw_threshold,
                             lock_timeout, reader, commit_files, commit_seconds)


def _update_index(store: Store, roots: list[Path], embedder: Embedder, chunker: dict, rebuild: bool,
                  progress: bool, exclude: set[str], hnsw_threshold: int, lock_timeout: float,
                  reader: IsolatedReader, commit_files: int, commit_seconds: float) -> IndexReport:
    began = time.perf_counter()
    watch = Stopwatch()
    with watch("read"):
        early = read_before_lock(store, roots, exclude, rebuild, reader, (embedder.name, chunker))
    with store.lock(lock_timeout):
        if not rebuild:
            store.upgrade()
        previous = None if rebuild else _previous_manifest(store, embedder, chunker)
        old_docs = previous["documents"] if previous else {}
        excluded = set(exclude) | set(previous.get("excluded", []) if previous else [])
        with watch("read"):
            files, skipped = find_files(roots)
            settled = time.time_ns() - STAT_MARGIN_NS
            files = [(path, doc_id, _stat(path, settled)) for path, doc_id in files if doc_id not in excluded]
        # The bytes of each file that must be read (0 for a file whose size and time are unchanged).
        sizes = [0 if stat and old_docs.get(doc_id, {}).get("stat") == stat else stat[0] if stat else _size(path)
                 for path, doc_id, stat in files]
        # Documents no longer under the roots, by content: a file found under a new name takes their vectors.
        listed = {doc_id for _, doc_id, _ in files}
        gone = {info["sha256"]: d for d, info in old_docs.items() if d not in listed and info.get("chunks")}
        with closing(IndexProgress(len(files), sum(sizes), progress)) as shown:
            committed = dict(old_docs)  # the documents of the last commit, as the store wrote them
            kept: dict[str, dict] = {}  # unchanged documents: what their entry changes (path, stat)
            present: set[str] = set()
            pending: list[_Fresh] = []
            added, updated = [], []
            embedded = commits = waiting = 0
            last_commit = time.perf_counter()

            def embed_pending(everything: bool) -> None:
                """Embed the pending chunks in batches of EMBED_BATCH (all of them when `everything`)."""
                nonlocal embedded, waiting
                while waiting >= EMBED_BATCH or (everything and waiting):
                    batch = list(islice(((f, f.chunks[i]) for f in pending
                                         for i in range(f.embedded, len(f.chunks))), EMBED_BATCH))
                    with watch("embed"):
                        vectors = embedder.embed([c.text for _, c in batch])
                    finished = []
                    for fresh, rows in _runs(batch, vectors):
                        if fresh.vectors is None:
                            fresh.vectors = np.empty((len(fresh.chunks), vectors.shape[1]), dtype=np.float32)
                        fresh.vectors[fresh.embedded:fresh.embedded + len(rows)] = rows
                        fresh.embedded += len(rows)
                        if fresh.embedded == len(fresh.chunks):
                            finished.append(fresh.size)
                    embedded += len(batch)
                    waiting -= len(batch)
                    shown.advance(files=len(finished), chunks=len(batch), read=sum(finished))

            def commit(final: bool) -> IndexState | None:
                nonlocal committed, pending, commits, last_commit
                embed_pending(everything=True)
                empty = [f.size for f in pending if not f.chunks]  # documents of no text: nothing to embed
                shown.advance(files=len(empty), read=sum(empty))
                documents = {**committed, **{d: {**committed[d], **change} for d, change in kept.items()},
                             **{f.doc_id: f.info for f in pending}}
                if final:
                    documents = {d: info for d, info in documents.items() if d in present}
                manifest = {"embedder": embedder.name, "dim": embedder.dim, "chunker": chunker,
                            "roots": [str(Path(r).resolve()) for r in roots], "excluded": sorted(excluded),
                            "documents": dict(sorted(documents.items())), **({} if final else {"partial": True})}
                chunks = [c for f in pending for c in f.chunks]
                parts = [f.vectors for f in pending if f.chunks]
                # One document (a big file): its vectors as they are, not a copy.
                vectors = parts[0] if len(parts) == 1 else np.vstack(parts) if parts else \
                    np.zeros((0, embedder.dim), dtype=np.float32)
                with watch("write"):
                    state = store.write(chunks, vectors, manifest, hnsw_threshold,
                                        replace=previous is None and not commits)
                # The store places each document's chunks (segment, first row): later commits build on that.
                committed = dict(state.documents) if state is not None else manifest["documents"]
                kept.clear()
                pending, commits, last_commit = [], commits + 1, time.perf_counter()
                return state

            for (path, doc_id, stat), size in zip(files, sizes):
                if pending and (0 < commit_files <= len(pending) or
                                0 < commit_seconds <= time.perf_counter() - last_commit):
                    commit(final=False)
                if doc_id in present:
                    skipped.append(Skipped(str(path), f"duplicate document id {doc_id!r}", doc_id))
                    continue
                present.add(doc_id)
                old = committed.get(doc_id, {})
                # A file read before the lock keeps what was seen then: its stat was taken before
                # its bytes were read, so a later change makes the next run read it again.
                seen = early.pop(doc_id, None)
                stat, sha, doc = seen if seen else (stat, "", None)
                try:
                    if stat and old.get("stat") == stat:
                        kept[doc_id] = {"path": str(path)}
                        shown.advance(files=1)
                        continue
                    with watch("read"):
                        data = None if sha else read_bytes(path)
                        sha = sha or _sha256(data)
                    if old.get("sha256") == sha:
                        kept[doc_id] = {"path": str(path), "stat": stat}
                        shown.advance(files=1, read=size)
                        continue
                    if isinstance(doc, UnreadableDocument):
                        raise doc
                    with watch("read"):
                        doc = doc or reader.read(path, doc_id, data or read_bytes(path))
                except UnreadableDocument as exc:
                    skipped.append(Skipped(str(path), reason_of(exc, path), doc_id))
                    if doc_id not in old_docs:
                        present.discard(doc_id)
                    shown.advance(files=1, read=size)
                    continue
                with watch("chunk"):
                    chunks = chunk_document(doc, chunker["size"], chunker["overlap"])
                fresh = _Fresh(doc_id, {"path": str(path), "sha256": doc.sha256, "chunks": len(chunks),
                                        "pages": len(doc.pages), "stat": stat}, chunks, size)
                moved = gone.pop(doc.sha256, None)
                fresh.vectors = _moved_vectors(store, moved, chunks) if moved else None
                pending.append(fresh)
                if fresh.vectors is not None:  # renamed or moved: the same chunks, so the same vectors
                    fresh.embedded = len(chunks)
                    shown.advance(files=1, read=size)
                else:
                    waiting += len(chunks)
                (updated if doc_id in old_docs else added).append(doc_id)
                embed_pending(everything=False)

            removed = tuple(sorted(set(old_docs) - present))
            resumed = bool(previous and previous.get("partial"))
            state = None
            if pending or removed or commits or previous is None or resumed:
                state = commit(final=True)
            documents = {d: info for d, info in committed.items() if d in present}
        return IndexReport(
            documents=len(documents), chunks=sum(d["chunks"] for d in documents.values()), added=tuple(added),
            updated=tuple(updated), removed=removed, unchanged=len(present) - len(added) - len(updated),
            skipped=tuple(skipped), embedded=embedded, seconds=time.perf_counter() - began, commits=commits,
            timings=watch.seconds, resumed=resumed, state=state)


def _runs(batch: list[tuple[_Fresh, Chunk]], vectors: np.ndarray):
    """(document, its rows of `vectors`) for each run of one document's chunks in `batch`."""
    start = 0
    for end in range(1, len(batch) + 1):
        if end == len(batch) or batch[end][0] is not batch[start][0]:
            yield batch[start][0], vectors[start:end]
            start = end


def _moved_vectors(store, doc_id: str, chunks: list[Chunk]) -> np.ndarray | None:
    """The vectors a renamed or moved document had under `doc_id`, when its chunks are the same; else None.
    PostgreSQL reads them from its committed rows; FAISS from the committed generation, at hand."""
    if hasattr(store, "document_vectors"):
        return store.document_vectors(doc_id, chunks)
    return _vectors_of(store._previous_state(), doc_id, chunks)


def _vectors_of(state: IndexState, doc_id: str, chunks: list[Chunk]) -> np.ndarray | None:
    """The vectors `doc_id` has in `state`, when its chunks there are `chunks` (same texts and spans); else None."""
    rows = state.document_rows([doc_id])
    if len(rows) != len(chunks):
        return None
    for row, chunk in zip(rows, chunks):
        old = state.chunk(int(row))
        if (old.text, old.start, old.end) != (chunk.text, chunk.start, chunk.end):
            return None
    return np.stack([state.vector(int(row)) for row in rows]).astype(np.float32)


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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_before_lock(store: Store, roots: list[Path], exclude: set[str], rebuild: bool, reader: IsolatedReader,
                     built_with: tuple[str, dict]) -> dict[str, tuple]:
    """Read the new and changed PDFs before the index lock is taken: {doc_id: (stat, sha256, result)}.

    OCR of a scanned PDF can take minutes, and another writer (an upload in the UI) would wait for
    the lock all that time. Only PDFs are read here: other files parse in milliseconds, and reading
    them under the lock lets a long run commit as it goes. A document's text is kept for the locked
    pass within EARLY_TEXT_BUDGET characters; past it, the result is None and the locked pass reads
    the file again, its OCR then coming from the cache. The result is also None for a file whose
    bytes are what the index holds.
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
    kept_chars = 0
    for path, doc_id in find_files(roots)[0]:
        if doc_id in excluded or doc_id in early or path.suffix.lower() != ".pdf":
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
            doc = reader.read(path, doc_id, data)
        except UnreadableDocument as exc:
            early[doc_id] = (stat, sha, exc)
            continue
        kept_chars += len(doc.text)
        early[doc_id] = (stat, sha, doc if kept_chars <= EARLY_TEXT_BUDGET else None)
    return early
