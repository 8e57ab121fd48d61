"""Where the web UI's upload cache lives, and how long a file stays in it.

Gradio keeps each uploaded file under a folder named by its content hash and file name, by default
in the machine's shared temp folder, where any local user can list the names; files posted straight
to its upload route are never deleted. The app keeps that cache in `index_dir/gradio-cache` (0700)
instead, and a background sweep deletes what is older than `CACHE_AGE_SECONDS`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

FOLDER_NAME = "gradio-cache"
# An upload is indexed (and its cached copy deleted) within minutes; an hour leaves a wide margin.
CACHE_AGE_SECONDS = 3600.0
SWEEP_SECONDS = 600.0


def private_cache(index_dir: Path) -> Path:
    """Make `index_dir/gradio-cache` (0700) and point Gradio at it (GRADIO_TEMP_DIR); call before the UI is built."""
    folder = Path(index_dir).resolve() / FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def expire(folder: Path, age: float = CACHE_AGE_SECONDS, now: float | None = None) -> int:
    """Delete the files under `folder` last changed more than `age` seconds ago, and the folders left empty.

    Returns how many files were deleted; a file that vanishes meanwhile is no error.
    """
    cutoff = (time.time() if now is None else now) - age
    deleted = 0
    for root, _, files in os.walk(folder, topdown=False):
        try:
            changed = Path(root).lstat().st_mtime  # before this sweep's deletions change it
        except OSError:
            continue
        for name in files:
            path = Path(root) / name
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    deleted += 1
            except OSError:
                continue
        if Path(root) != Path(folder):
            try:
                if changed < cutoff:  # not one Gradio is about to write into
                    Path(root).rmdir()  # only when empty
            except OSError:
                pass
    return deleted


def start_expiry(folder: Path, age: float = CACHE_AGE_SECONDS, every: float = SWEEP_SECONDS) -> threading.Thread:
    """Sweep `folder` with `expire` every `every` seconds, in a daemon thread."""
    def sweep() -> None:
        while True:
            time.sleep(every)
            expire(folder, age)

    thread = threading.Thread(target=sweep, daemon=True, name="rag-cache-expiry")
    thread.start()
    return thread
