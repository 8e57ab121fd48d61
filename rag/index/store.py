"""The persisted index: immutable segments, and generations that say which segment rows are live.

Layout of the index directory:
    CURRENT            "gen-000007 <sha256 of its manifest>", replaced by rename to commit
    gen-000007/        manifest.json (documents, segments, checksums), df.npy, deleted.npy
    seg-000003/        index.faiss, chunks.jsonl, offsets.npy, terms.json, post_*.npy, lengths.npy
    .lock              held by the one writer

A segment is written once and shared by later generations. An update writes one small segment
with the changed documents' chunks and marks their old rows deleted (tombstones, filtered at search
time), so neither FAISS nor BM25 is rebuilt. The new segment takes in the newest segments up to four
times its size (`segments_kept`), so a long run's many commits copy each row a few times, not the
whole index every few commits; past DELETED_LIMIT of rows deleted, everything is rewritten into one segment. A crash
at any moment leaves the previous generation, and every segment it names, loadable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexBusy, IndexMismatch, IndexMissing, IndexUnwritable
from ..records import Chunk
from .lexical import Postings, count_terms, document_frequencies
from .segments import HNSW_THRESHOLD, ChunkFile, IndexState, Segment, index_kind, make_faiss_index, read_faiss

FORMAT_VERSION = 2
MAX_SEGMENTS = 8
MERGE_RATIO = 4
DELETED_LIMIT = 0.2
REBUILD_HINT = "rebuild it with `rag index --rebuild`"
SEGMENT_FILES = ("index.faiss", "chunks.jsonl", "offsets.npy", "terms.json", "post_ptr.npy", "post_rows.npy",
                 "post_tf.npy", "lengths.npy")
GENERATION_FILES = ("df.npy", "deleted.npy")
# The index holds the documents' text: only its owner may read it.
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


class Store:
    """Reads and atomically writes the index directory."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._read: tuple[str, Path, dict] | None = None  # the last manifest read, with CURRENT's text
        # The generation this writer committed last, with CURRENT's text: the next commit of a long
        # run starts from it instead of reading the manifest and every segment's terms again.
        self._written: tuple[str, IndexState] | None = None

    def exists(self) -> bool:
        return (self.directory / "CURRENT").is_file()

    def read_manifest(self) -> tuple[Path, dict]:
        """The committed generation's folder and manifest, checked against CURRENT (cheap: no vectors)."""
        pointer = self.directory / "CURRENT"
        if not pointer.is_file():
            raise IndexMissing(f"no index in {self.directory}/: build one with `rag index [PATH]`")
        text = pointer.read_text(encoding="utf-8")
        try:
            gen_name, manifest_sha = text.split()
        except ValueError:
            raise IndexMismatch(f"{pointer} is damaged; {REBUILD_HINT}") from None
        gen = self.directory / gen_name
        try:
            manifest_bytes = (gen / "manifest.json").read_bytes()
        except OSError as exc:
            raise IndexMismatch(f"index in {self.directory}/ cannot be read ({exc}); {REBUILD_HINT}") from None
        if _sha256(manifest_bytes) != manifest_sha:
            raise IndexMismatch(f"{gen}/manifest.json was changed after it was written; {REBUILD_HINT}")
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError as exc:
            raise IndexMismatch(f"{gen}/manifest.json cannot be read ({exc}); {REBUILD_HINT}") from None
        if manifest.get("format") == 1:
            raise IndexMismatch(f"the index in {self.directory}/ is of format 1; `rag index` upgrades it")
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexMismatch(f"index format {manifest.get('format')} is not {FORMAT_VERSION}; {REBUILD_HINT}")
        self._read = (text, gen, manifest)
        return gen, manifest

    def load(self) -> IndexState:
        """Load the committed generation, checking every file it uses against the manifest."""
        gen, manifest = self.read_manifest()
        try:
            for path, digest in _files(self.directory, gen, manifest):
                if _file_sha256(path) != digest:
                    raise IndexMismatch(f"{path} is corrupted (checksum differs); {REBUILD_HINT}")
            state = self._open(gen, manifest)
            for segment in state.segments:
                if segment.index.ntotal != segment.rows or segment.index.d != manifest["dim"]:
                    raise IndexMismatch(f"{segment.path} has {segment.index.ntotal} vectors for "
                                        f"{segment.rows} chunks; {REBUILD_HINT}")
        except IndexMismatch:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexMismatch(f"index in {self.directory}/ cannot be read ({exc}); {REBUILD_HINT}") from None
        if state.count != manifest["count"] or len(state.df) != len(state.vocab):
            raise IndexMismatch(f"index in {self.directory}/ has {state.count} live chunks, not "
                                f"{manifest['count']}; {REBUILD_HINT}")
        return state

    def _open(self, gen: Path, manifest: dict) -> IndexState:
        segments, vocab, offset = [], {}, 0
        for entry in manifest["segments"]:
            path = self.directory / entry["name"]
            terms = json.loads((path / "terms.json").read_text(encoding="utf-8"))
            vocab.update(zip(terms, range(len(vocab), len(vocab) + len(terms))))
            postings = Postings(*(np.load(path / f"{n}.npy", mmap_mode="r")
                                  for n in ("post_ptr", "post_rows", "post_tf", "lengths")))
            chunks = ChunkFile(path / "chunks.jsonl", np.load(path / "offsets.npy"))
            segments.append(Segment(entry["name"], offset, chunks, postings, path))
            offset += len(chunks)
        return IndexState(tuple(segments), np.load(gen / "deleted.npy"), vocab, np.load(gen / "df.npy"),
                          manifest, gen)

    def lock(self, timeout: float = 30.0):
        """The writer's lock, as a context manager; IndexBusy when another writer keeps it."""
        from filelock import FileLock, Timeout

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnwritable(f"cannot create the index directory {self.directory}/: "
                           f"{exc.strerror or exc}") from None
        lock = FileLock(str(self.directory / ".lock"), timeout=timeout, mode=PRIVATE_FILE)

        class _Held:
            def __enter__(inner):
                try:
                    lock.acquire()
                except Timeout:
                    raise IndexBusy(f"another process is writing the index in {self.directory}/; "
                                    "try again when it finishes") from None
                return inner

            def __exit__(inner, *exc):
                lock.release()

        return _Held()

    def write(self, chunks: list[Chunk], vectors: np.ndarray, manifest: dict,
              hnsw_threshold: int = HNSW_THRESHOLD, replace: bool = False) -> IndexState:
        """Commit a generation that adds `chunks` and holds `manifest["documents"]`. Call with the lock held.

        A document of the previous generation whose entry no longer names its segment (it was
        changed or removed) has its rows deleted. `replace` starts from nothing. Fresh documents'
        chunks must be contiguous, in `chunks` order. When the disk refuses (full, read-only) the
        half-written files are removed and RagError says why; the previous generation stays committed.
        """
        previous = None if replace or not self.exists() else self._previous_state()
        committed = self._committed_generation()
        # Readers may be loading the committed generation now: it and its segments stay until the next write.
        keep = {committed, *([e["name"] for e in previous.manifest["segments"]] if previous else
                             self._segments_of(committed))}
        self.directory.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name[4:]) for p in self.directory.iterdir()
                          if p.name[:4] in ("gen-", "seg-") and p.name[4:].isdigit()), default=0)
        gen, seg = self.directory / f"gen-{number:06d}", self.directory / f"seg-{number:06d}"
        plan = _plan(previous, chunks, vectors, manifest["documents"], seg.name)
        written = [gen / n for n in (*GENERATION_FILES, "manifest.json")]
        try:
            os.chmod(self.directory, PRIVATE_DIR)
            gen.mkdir(PRIVATE_DIR)
            segments = (previous.manifest["segments"] if previous else [])[: plan.keep]
            if plan.copied or plan.chunks:
                seg.mkdir(PRIVATE_DIR)
                segments = [*segments, _write_segment(seg, plan, hnsw_threshold)]
                written += [seg / n for n in SEGMENT_FILES] + [seg]
            np.save(gen / "df.npy", plan.df)
            np.save(gen / "deleted.npy", plan.deleted)
            kinds = {e["index_type"] for e in segments}
            manifest = {**manifest, "documents": plan.documents, "format": FORMAT_VERSION,
                        "count": sum(e["rows"] for e in segments) - len(plan.deleted),
                        "dim": int(vectors.shape[1]), "index_type": "hnsw" if "hnsw" in kinds else "flat",
                        "segments": segments, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "files": {n: _file_sha256(gen / n) for n in GENERATION_FILES}}
            # Compact: an indented dump runs in pure Python, seconds for a manifest of 100,000 documents.
            manifest_bytes = json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            (gen / "manifest.json").write_bytes(manifest_bytes)
            for path in written:
                path.chmod(PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)
            for path in [*written, gen, self.directory]:
                _fsync(path)
            pointer_tmp, pointer = self.directory / "CURRENT.tmp", f"{gen.name} {_sha256(manifest_bytes)}\n"
            pointer_tmp.write_text(pointer, encoding="utf-8")
            pointer_tmp.chmod(PRIVATE_FILE)
            _fsync(pointer_tmp)
            os.replace(pointer_tmp, self.directory / "CURRENT")
        except OSError as exc:
            shutil.rmtree(gen, ignore_errors=True)
            shutil.rmtree(seg, ignore_errors=True)
            raise IndexUnwritable(f"cannot write the index in {self.directory}/: {exc.strerror or exc}; "
                           "the previous index is unchanged") from None
        _fsync(self.directory)
        # Anything else is a half-written generation or segment left by a crash, or no longer used.
        self._remove_unused({*keep, gen.name, *(e["name"] for e in segments)})
        state = self._open(gen, manifest)
        self._read, self._written = (pointer, gen, manifest), (pointer, state)
        return state

    def upgrade(self) -> bool:
        """Rewrite an index of format 1 (one FAISS file for all rows) as a segment, keeping its vectors.

        Call with the lock held. Returns whether there was one to upgrade.
        """
        try:
            gen_name, manifest_sha = (self.directory / "CURRENT").read_text(encoding="utf-8").split()
            manifest_bytes = (self.directory / gen_name / "manifest.json").read_bytes()
            manifest = json.loads(manifest_bytes)
        except (OSError, ValueError):
            return False  # nothing to upgrade, or damage that read_manifest reports
        if manifest.get("format") != 1 or _sha256(manifest_bytes) != manifest_sha:
            return False
        gen = self.directory / gen_name
        for name, digest in manifest["files"].items():
            if _file_sha256(gen / name) != digest:
                raise IndexMismatch(f"{gen}/{name} is corrupted (checksum differs); {REBUILD_HINT}")
        index = read_faiss(gen / "index.faiss")
        chunks = [Chunk(**json.loads(line)) for line in
                  (gen / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
        vectors = index.reconstruct_n(0, index.ntotal) if index.ntotal else \
            np.zeros((0, manifest["dim"]), dtype=np.float32)
        kept = {k: v for k, v in manifest.items() if k not in ("format", "count", "index_type", "created", "files")}
        self.write(chunks, vectors, kept, replace=True)
        return True

    def _previous_state(self) -> IndexState:
        """The committed generation, opened (call with the lock held)."""
        if self._written and self._written[0] == (self.directory / "CURRENT").read_text(encoding="utf-8"):
            return self._written[1]
        return self._open(*self._manifest_under_lock())

    def _manifest_under_lock(self) -> tuple[Path, dict]:
        """The manifest this writer read last if it is still committed (nobody else writes), else read it."""
        if self._read and self._read[0] == (self.directory / "CURRENT").read_text(encoding="utf-8"):
            return self._read[1], self._read[2]
        return self.read_manifest()

    def _committed_generation(self) -> str:
        try:
            return (self.directory / "CURRENT").read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            return ""

    def _segments_of(self, generation: str) -> list[str]:
        if not generation:
            return []
        try:
            return [e["name"] for e in json.loads((self.directory / generation / "manifest.json").read_bytes())
                    ["segments"]]
        except (OSError, ValueError, KeyError):
            return []

    def _remove_unused(self, keep: set[str]) -> None:
        """Remove generations and segments not in `keep`."""
        for path in [*self.directory.glob("gen-*"), *self.directory.glob("seg-*")]:
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class _Plan:
    """What a write commits: the first `keep` old segments as they are, one new segment, the tombstones."""

    keep: int
    copied: list[bytes]  # the chunks.jsonl lines of the merged segments' live rows, first in the new segment
    chunks: list[Chunk]  # then the new chunks
    vectors: np.ndarray
    postings: Postings
    new_terms: list[str]
    df: np.ndarray
    deleted: np.ndarray
    documents: dict


def _plan(previous: IndexState | None, chunks: list[Chunk], vectors: np.ndarray, documents: dict,
          segment_name: str) -> _Plan:
    """Tombstone replaced documents; merge segments when there are too many or too much is deleted.

    A merged segment's live rows are copied as they are: their chunk lines, vectors and postings
    (renumbered), so a merge never parses or tokenizes them again. Only the new chunks are tokenized.
    """
    segments = previous.segments if previous else ()
    starts = {s.name: s.offset for s in segments}
    gone: list[int] = []
    for doc_id, info in (previous.documents if previous else {}).items():
        if info["chunks"] and documents.get(doc_id, {}).get("segment") != info["segment"]:
            start = starts[info["segment"]] + info["first"]
            gone.extend(range(start, start + info["chunks"]))
    gone_rows = np.asarray(sorted(gone), dtype=np.int64)
    deleted = np.union1d(previous.deleted, gone_rows) if previous else gone_rows
    total = sum(s.rows for s in segments)
    keep = 0 if len(deleted) > DELETED_LIMIT * (total + len(chunks)) else \
        segments_kept([s.rows for s in segments], len(chunks))
    merged_from = segments[keep].offset if keep < len(segments) else total
    live = np.setdiff1d(np.arange(merged_from, total), deleted)
    lines, parts, lengths, old_vectors = [], [], [], []
    merged = 0  # live rows copied so far
    for segment in segments[keep:]:
        rows = live[(live >= segment.offset) & (live < segment.offset + segment.rows)] - segment.offset
        data, offsets = segment.chunks.data, segment.chunks.offsets
        lines.extend(bytes(data[offsets[r]:offsets[r + 1]]) for r in rows)
        if segment.rows:
            old_vectors.append(segment.index.reconstruct_n(0, segment.rows)[rows])
        # The segment's postings of its live rows, renumbered to rows of the new segment.
        p = segment.postings
        terms = np.repeat(np.arange(len(p.ptr) - 1, dtype=np.int32), np.diff(p.ptr))
        renumber = np.full(segment.rows, -1, dtype=np.int64)
        renumber[rows] = np.arange(merged, merged + len(rows))
        new_rows = renumber[np.asarray(p.rows, dtype=np.int64)]
        kept_rows = new_rows >= 0
        parts.append((terms[kept_rows], new_rows[kept_rows].astype(np.int32), np.asarray(p.tf)[kept_rows]))
        lengths.append(np.asarray(p.lengths)[rows])
        merged += len(rows)
    if keep:
        vocab = dict(previous.vocab)
        first_new = len(segments[keep - 1].postings.ptr) - 1 if keep < len(segments) else len(vocab)
    else:
        # Everything is rewritten: the terms that no live row holds any more are dropped.
        old_terms = list(previous.vocab) if previous else []
        used = np.unique(np.concatenate([t for t, _, _ in parts])) if parts else np.zeros(0, dtype=np.int32)
        renumber = np.zeros(len(old_terms), dtype=np.int32)
        renumber[used] = np.arange(len(used))
        parts = [(renumber[t], r, tf) for t, r, tf in parts]
        vocab = {old_terms[t]: i for i, t in enumerate(used.tolist())}
        first_new = 0
    fresh, _ = count_terms([c.text for c in chunks], vocab)
    postings = fresh
    if keep < len(segments):
        fresh_terms = np.repeat(np.arange(len(fresh.ptr) - 1, dtype=np.int32), np.diff(fresh.ptr))
        parts.append((fresh_terms, fresh.rows + np.int32(merged), fresh.tf))
        postings = _postings(parts, np.concatenate([*lengths, fresh.lengths]), len(vocab))
    if keep:
        # The merged rows were live before and still are: only the removed and the new chunks count.
        df = np.zeros(len(vocab), dtype=np.int64)
        df[: len(previous.df)] = previous.df
        if len(gone_rows):
            df -= document_frequencies([previous.chunk(int(r)).text for r in gone_rows], vocab)
        df += np.diff(fresh.ptr)  # a posting per chunk holding the term
    else:
        df = np.diff(postings.ptr)
    if keep < len(segments):
        deleted = deleted[deleted < merged_from]
    new_vectors = np.vstack([*old_vectors, vectors]) if old_vectors else vectors
    documents = {d: {**info, "segment": info.get("segment"), "first": info.get("first", 0)}
                 for d, info in documents.items()}
    moved = {s.name for s in segments[keep:]}
    for info in documents.values():
        if info["segment"] in moved and info["chunks"]:
            info.update(segment=segment_name,
                        first=int(np.searchsorted(live, starts[info["segment"]] + info["first"])))
    for row, chunk in enumerate(chunks):
        if row == 0 or chunks[row - 1].doc_id != chunk.doc_id:
            documents[chunk.doc_id].update(segment=segment_name, first=merged + row)
    return _Plan(keep, lines, chunks, new_vectors, postings, list(vocab)[first_new:], df, deleted, documents)


def _postings(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], lengths: np.ndarray, terms: int) -> Postings:
    """Term-major postings (rows ascending within a term) from (term ids, rows, tf) parts."""
    term_ids = np.concatenate([t for t, _, _ in parts]) if parts else np.zeros(0, dtype=np.int32)
    rows = np.concatenate([r for _, r, _ in parts]) if parts else np.zeros(0, dtype=np.int32)
    tfs = np.concatenate([tf for _, _, tf in parts]) if parts else np.zeros(0, dtype=np.float32)
    order = np.lexsort((rows, term_ids))
    ptr = np.zeros(terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_ids, minlength=terms), out=ptr[1:])
    return Postings(ptr, rows[order].astype(np.int32), tfs[order].astype(np.float32),
                    np.asarray(lengths, dtype=np.float32))


def segments_kept(rows: list[int], new: int) -> int:
    """How many of the segments (their `rows`, oldest first) a commit of `new` rows leaves as they are.

    The new rows take in each segment before them that is at most MERGE_RATIO times what they have
    taken in so far, so segment sizes grow about fivefold from the newest to the oldest: a long run of
    equal commits keeps at most 7 segments up to 20,000 commits, and copies each row about 10 to 14
    times in all, instead of the whole index every few commits. Past MAX_SEGMENTS, more are taken in.

    >>> segments_kept([4000, 1000], 100), segments_kept([4000, 200], 100), segments_kept([800, 200], 100)
    (2, 1, 0)
    """
    keep, taken = len(rows), new
    while keep and rows[keep - 1] <= MERGE_RATIO * taken:
        keep -= 1
        taken += rows[keep]
    return min(keep, MAX_SEGMENTS - 1)


def _write_segment(folder: Path, plan: _Plan, hnsw_threshold: int) -> dict:
    """Write a segment's files; returns its manifest entry."""
    index = make_faiss_index(plan.vectors, hnsw_threshold)
    _write_faiss(index, folder / "index.faiss")
    offsets = [0]
    with open(folder / "chunks.jsonl", "wb") as fh:
        for line in plan.copied:
            offsets.append(offsets[-1] + fh.write(line))
        for chunk in plan.chunks:
            offsets.append(offsets[-1] + fh.write(
                (json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")))
    np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    (folder / "terms.json").write_text(json.dumps(plan.new_terms, ensure_ascii=False), encoding="utf-8")
    for name, array in (("post_ptr", plan.postings.ptr), ("post_rows", plan.postings.rows),
                        ("post_tf", plan.postings.tf), ("lengths", plan.postings.lengths)):
        np.save(folder / f"{name}.npy", array)
    return {"name": folder.name, "rows": len(offsets) - 1, "index_type": index_kind(index),
            "files": {n: _file_sha256(folder / n) for n in SEGMENT_FILES}}


def _files(directory: Path, gen: Path, manifest: dict):
    """(path, sha256) of every file a generation uses."""
    for name, digest in manifest["files"].items():
        yield gen / name, digest
    for entry in manifest["segments"]:
        for name, digest in entry["files"].items():
            yield directory / entry["name"] / name, digest


def check_compatible(manifest: dict, embedder: str, chunker: dict) -> None:
    """Raise IndexMismatch when the index was built with another embedder or chunker."""
    if manifest.get("embedder") != embedder:
        raise IndexMismatch(f"the index was built with embedder {manifest.get('embedder')!r}, "
                            f"not {embedder!r}; {REBUILD_HINT}")
    if manifest.get("chunker") != chunker:
        raise IndexMismatch(f"the index was built with chunker settings {manifest.get('chunker')}, "
                            f"not {chunker}; {REBUILD_HINT}")


def _write_faiss(index, path: Path) -> None:
    """faiss.write_index, raising OSError on failure (faiss raises RuntimeError, reason last)."""
    import faiss

    try:
        faiss.write_index(index, str(path))
    except RuntimeError as exc:
        raise OSError(errno.EIO, str(exc).rsplit(": ", 1)[-1]) from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
