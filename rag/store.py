"""The persisted index: a FAISS file, chunk records and a manifest, written atomically.

Layout of the index directory:
    CURRENT            "gen-000007 <sha256 of its manifest>", replaced by rename to commit
    gen-000007/        manifest.json, index.faiss, chunks.jsonl
    .lock              held by the one writer

A writer builds a new generation beside the live one and commits it by renaming CURRENT, so a
crash at any moment leaves the previous generation loadable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import IndexBusy, IndexMismatch, IndexMissing, IndexUnwritable
from .records import Chunk

FORMAT_VERSION = 1
HNSW_THRESHOLD = 50_000
REBUILD_HINT = "rebuild it with `rag index --rebuild`"


@dataclass(frozen=True)
class IndexState:
    """A loaded index: chunk records in the FAISS row order, the FAISS index, the manifest."""

    chunks: tuple[Chunk, ...]
    faiss_index: object
    manifest: dict
    directory: Path = field(default=Path("."))

    @property
    def documents(self) -> dict:
        return self.manifest["documents"]

    def vectors(self) -> np.ndarray:
        """All vectors in row order (reconstructed from the FAISS index)."""
        n = self.faiss_index.ntotal
        if n == 0:
            return np.zeros((0, self.manifest["dim"]), dtype=np.float32)
        return self.faiss_index.reconstruct_n(0, n)


def make_faiss_index(vectors: np.ndarray, threshold: int = HNSW_THRESHOLD):
    """Exact inner product below `threshold` rows; HNSW (approximate) at and above it."""
    import faiss

    dim = vectors.shape[1]
    if len(vectors) >= threshold:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def index_kind(index) -> str:
    return "hnsw" if type(index).__name__.startswith("IndexHNSW") else "flat"


class Store:
    """Reads and atomically writes the index directory."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    def exists(self) -> bool:
        return (self.directory / "CURRENT").is_file()

    def read_manifest(self) -> tuple[Path, dict]:
        """The committed generation's folder and manifest, checked against CURRENT (cheap: no vectors)."""
        pointer = self.directory / "CURRENT"
        if not pointer.is_file():
            raise IndexMissing(f"no index in {self.directory}/: build one with `rag index [PATH]`")
        try:
            gen_name, manifest_sha = pointer.read_text(encoding="utf-8").split()
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
            return gen, json.loads(manifest_bytes)
        except ValueError as exc:
            raise IndexMismatch(f"{gen}/manifest.json cannot be read ({exc}); {REBUILD_HINT}") from None

    def load(self) -> IndexState:
        """Load the committed generation, checking every file against the manifest."""
        import faiss

        gen, manifest = self.read_manifest()
        try:
            for name, digest in manifest["files"].items():
                if _file_sha256(gen / name) != digest:
                    raise IndexMismatch(f"{gen}/{name} is corrupted (checksum differs); {REBUILD_HINT}")
            if manifest.get("format") != FORMAT_VERSION:
                raise IndexMismatch(f"index format {manifest.get('format')} is not {FORMAT_VERSION}; {REBUILD_HINT}")
            index = faiss.read_index(str(gen / "index.faiss"))
            chunks = tuple(Chunk(**json.loads(line)) for line in
                           (gen / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line)
        except IndexMismatch:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexMismatch(f"index in {self.directory}/ cannot be read ({exc}); {REBUILD_HINT}") from None
        if not (len(chunks) == index.ntotal == manifest["count"]) or index.d != manifest["dim"]:
            raise IndexMismatch(f"index in {self.directory}/ has {index.ntotal} vectors for "
                                f"{len(chunks)} chunks; {REBUILD_HINT}")
        return IndexState(chunks, index, manifest, gen)

    def lock(self, timeout: float = 30.0):
        """The writer's lock, as a context manager; IndexBusy when another writer keeps it."""
        from filelock import FileLock, Timeout

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnwritable(f"cannot create the index directory {self.directory}/: "
                           f"{exc.strerror or exc}") from None
        lock = FileLock(str(self.directory / ".lock"), timeout=timeout)

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
              hnsw_threshold: int = HNSW_THRESHOLD) -> IndexState:
        """Write a new generation and commit it. Call with the lock held.

        When the disk refuses (full, read-only) the half-written generation is removed and RagError
        says why; the previous generation stays committed.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name[4:]) for p in self.directory.glob("gen-*") if p.name[4:].isdigit()),
                         default=0)
        gen = self.directory / f"gen-{number:06d}"
        try:
            gen.mkdir()
            index = make_faiss_index(vectors, hnsw_threshold)
            _write_faiss(index, gen / "index.faiss")
            with open(gen / "chunks.jsonl", "w", encoding="utf-8") as fh:
                for chunk in chunks:
                    fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
            manifest = {**manifest, "format": FORMAT_VERSION, "count": len(chunks),
                        "dim": int(vectors.shape[1]), "index_type": index_kind(index),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "files": {n: _file_sha256(gen / n) for n in ("index.faiss", "chunks.jsonl")}}
            manifest_bytes = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
            (gen / "manifest.json").write_bytes(manifest_bytes)
            for name in ("index.faiss", "chunks.jsonl", "manifest.json"):
                _fsync(gen / name)
            _fsync(gen)
            previous = self._committed_generation()
            pointer_tmp = self.directory / "CURRENT.tmp"
            pointer_tmp.write_text(f"{gen.name} {_sha256(manifest_bytes)}\n", encoding="utf-8")
            _fsync(pointer_tmp)
            os.replace(pointer_tmp, self.directory / "CURRENT")
        except OSError as exc:
            shutil.rmtree(gen, ignore_errors=True)
            raise IndexUnwritable(f"cannot write the index in {self.directory}/: {exc.strerror or exc}; "
                           "the previous index is unchanged") from None
        _fsync(self.directory)
        # The previous generation stays until the next write, for readers that are loading it now;
        # anything else is a half-written generation left by a crash.
        self._remove_generations_except({gen.name, previous})
        return IndexState(tuple(chunks), index, manifest, gen)

    def _committed_generation(self) -> str:
        try:
            return (self.directory / "CURRENT").read_text(encoding="utf-8").split()[0]
        except (OSError, IndexError):
            return ""

    def _remove_generations_except(self, keep: set[str]) -> None:
        for path in self.directory.glob("gen-*"):
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


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
