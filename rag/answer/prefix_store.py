"""The KV states of the modes' fixed prefixes, kept on disk so that a new process does not evaluate them again.

A fixed prefix (system prompt and example turns: 100 to 300 tokens) costs 5 to 15 s of prompt evaluation on
a slow CPU, and every new `rag ask`, `rag chat`, `rag serve` or web UI process paid it once per mode. Its
KV state is the same bytes every time for the same model file, llama.cpp build, context size and tokens, so
the state `LlamaGenerator.keep_state` takes is also written here and read back by the next process.

Each file is keyed by the sha256 of all of those and holds the sha256 of its own bytes: a torn or altered
file is never handed to llama.cpp, it is deleted and the prefix evaluated as before. The folder is the
cache folder (`$RAG_CACHE_DIR`, else `~/.cache/rag`) under `prefixes/`, kept under MAX_BYTES by dropping the
least recently used files. `RAG_PREFIX_CACHE=0` turns it off; a folder that cannot be written is ignored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

MAGIC = b"rag-kv-state 1\n"
# The folder's limit: 12 to 20 states of 9 to 14 MB with the bundled tiers (every mode of every tier).
MAX_BYTES = 400 * 2**20


def enabled() -> bool:
    return os.environ.get("RAG_PREFIX_CACHE", "1") != "0"


class PrefixStore:
    """Prefix KV states of one model in one context size, on disk."""

    def __init__(self, folder: Path, model_key: str):
        self.folder = folder
        self.model_key = model_key

    @classmethod
    def for_model(cls, path: Path, n_ctx: int) -> PrefixStore | None:
        """The store for this model file in a context of `n_ctx`, or None when turned off."""
        if not enabled():
            return None
        import llama_cpp

        from ..config import cache_dir

        stat = path.stat()
        key = f"{llama_cpp.__version__} {path.resolve()} {stat.st_size} {stat.st_mtime_ns} n_ctx={n_ctx}"
        return cls(cache_dir() / "prefixes", key)

    def file(self, tokens: tuple[int, ...]) -> Path:
        digest = hashlib.sha256(self.model_key.encode())
        digest.update(b"\0" + b",".join(str(t).encode() for t in tokens))
        return self.folder / f"{digest.hexdigest()[:40]}.kv"

    def load(self, tokens: tuple[int, ...]) -> bytes | None:
        """The kept state of exactly these tokens, or None; a file that fails its checksum is deleted."""
        path = self.file(tokens)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        head = len(MAGIC) + 32
        if data[:len(MAGIC)] == MAGIC and hashlib.sha256(data[head:]).digest() == data[len(MAGIC):head]:
            try:
                os.utime(path)  # recently used: pruned last
            except OSError:
                pass
            return data[head:]
        path.unlink(missing_ok=True)
        return None

    def save(self, tokens: tuple[int, ...], state: bytes) -> None:
        """Write the state (atomically: another process reads the old file or the whole new one)."""
        path = self.file(tokens)
        try:
            if path.exists():
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(MAGIC + hashlib.sha256(state).digest())
                    out.write(state)
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            self.prune()
        except OSError:
            return  # a read-only or full cache folder costs the next process time, nothing else

    def prune(self, limit: int = MAX_BYTES) -> None:
        """Drop the least recently used states past `limit` bytes."""
        files = []
        for path in self.folder.glob("*.kv"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= limit:
                break
            path.unlink(missing_ok=True)
            total -= size
