"""The model's partial summaries kept on disk by the hash of what it read, so a second summary (or a
compare) of the same document only reads the parts that changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def content_key(*pieces) -> str:
    """A sha256 over JSON-able pieces (model, prompt text, passages' text): the same input, the same key."""
    return hashlib.sha256(json.dumps(pieces, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


class PartCache:
    """Raw model replies in `directory/<key>.json`, written atomically; unreadable entries count as absent."""

    def __init__(self, directory: Path | str | None):
        self.directory = Path(directory) if directory else None

    def get(self, key: str) -> str | None:
        if self.directory is None:
            return None
        try:
            entry = json.loads((self.directory / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry.get("reply") if isinstance(entry, dict) and isinstance(entry.get("reply"), str) else None

    def put(self, key: str, reply: str) -> None:
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.directory / f".{key}.{os.getpid()}.part"
            tmp.write_text(json.dumps({"reply": reply}, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.directory / f"{key}.json")
        except OSError:
            pass  # a cache that cannot be written only costs time
