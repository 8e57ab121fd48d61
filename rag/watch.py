"""`rag index PATH --watch`: keep a collection in step with its folders as they change.

A sync is an ordinary `Pipeline.index` of the watched folders plus the documents added in the UI (which a
sync therefore never removes): new and changed files are indexed, files gone from the folders are removed,
and a renamed file keeps its vectors (the indexer matches its content hash). File system events come from
watchfiles; a burst of them is gathered (debounce), and the changed files must then keep their size and
modification time for `settle` seconds, so an editor's half-written file is read once, when it is done.
Every `rescan` seconds a sync runs anyway, for file systems that send no events. A watched folder that is
deleted empties its part of the index; when it comes back it is watched and indexed again. A watcher killed
mid-sync leaves the index at its last commit, and its next start catches up (docs/watch.md).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import RagError
from .index.collections import WATCH_FILE, collection_dir, read_watch_state
from .pipeline import Pipeline

SETTLE_SECONDS = 1.0
RESCAN_SECONDS = 300.0
DEBOUNCE_MS = 500
MAX_SETTLE_SECONDS = 60.0
# Names editors and browsers give files that are not done yet, or lock files beside an open document.
_TEMPORARY = ("~", ".tmp", ".part", ".crdownload", ".swp", ".swx")


def is_temporary(path: str) -> bool:
    """True for a name an editor or a download gives a file that is not finished (or a lock file)."""
    name = Path(path).name
    return name.startswith((".", "~$", "#")) or name.lower().endswith(_TEMPORARY)


def relevant(path: str, index_dir: Path) -> bool:
    """True for a change that may need a sync: not a temporary file, not inside the index folder."""
    return not is_temporary(path) and not Path(path).is_relative_to(index_dir)


def watch_roots(pipeline: Pipeline, folders: list[Path]) -> list[Path]:
    """What a sync indexes: the watched folders and, when it exists, the folder of documents added in the UI."""
    uploads = [pipeline.uploads_dir.resolve()] if pipeline.uploads_dir.is_dir() else []
    return list(dict.fromkeys([*(Path(f).resolve() for f in folders), *uploads]))


def sync(pipeline: Pipeline, folders: list[Path], report: Callable = None):
    """Index the folders once (see `watch_roots`), record the sync in the collection's watch state, and
    hand the IndexReport to `report`; a RagError (the index busy, a full disk) is reported and returns None."""
    try:
        result = pipeline.index(watch_roots(pipeline, folders))
    except RagError as exc:
        print(f"rag: error: {exc}; trying again at the next change", file=sys.stderr, flush=True)
        return None
    write_state(pipeline, folders, running=True)
    if report:
        report(result)
    return result


def settled(paths: set[Path], settle: float, stop: threading.Event) -> None:
    """Wait until none of the files changes size or modification time for `settle` seconds (at most a minute)."""
    def snapshot():
        out = {}
        for p in paths:
            try:
                st = p.stat()
                out[p] = (st.st_size, st.st_mtime_ns)
            except OSError:
                out[p] = None
        return out

    began, before = time.monotonic(), snapshot()
    while not stop.wait(settle):
        now = snapshot()
        if now == before or time.monotonic() - began > MAX_SETTLE_SECONDS:
            return
        before = now


def identities(folders: list[Path]) -> dict[Path, tuple[int, int]]:
    """The folders that exist, each with its device and inode: a folder deleted and created again is a new one."""
    out = {}
    for f in folders:
        try:
            st = f.stat()
        except OSError:
            continue
        out[f] = (st.st_dev, st.st_ino)
    return out


def watch_folders(pipeline: Pipeline, folders: list[Path], stop: threading.Event | None = None,
                  report: Callable = None, settle: float = SETTLE_SECONDS, rescan: float = RESCAN_SECONDS,
                  debounce_ms: int = DEBOUNCE_MS) -> None:
    """Sync now, then after every settled burst of changes and every `rescan` seconds, until `stop` is set."""
    import watchfiles

    stop = stop or threading.Event()
    folders = [Path(f).resolve() for f in folders]
    tick = min(1.0, rescan)
    own = Path(pipeline.settings.index_dir).resolve()  # a sync writes there: no event of its own may start one
    last_sync = 0.0
    gone_synced = False  # whether a sync has run since every folder went
    try:
        while not stop.is_set():
            watched = identities(folders)
            if not watched:
                # Nothing to watch: empty the index of the folders once, then wait for a folder's return.
                if not gone_synced:
                    sync(pipeline, folders, report)
                    last_sync, gone_synced = time.monotonic(), True
                stop.wait(tick)
                continue
            gone_synced = False
            # The watcher is up at its first yield (a change or the first tick): sync then, so that no change
            # made before it started, while it starts or during the last sync is missed.
            catch_up = True
            try:
                for changes in watchfiles.watch(*watched, watch_filter=lambda _, p: relevant(p, own),
                                                debounce=debounce_ms, rust_timeout=int(tick * 1000),
                                                yield_on_timeout=True, stop_event=stop, raise_interrupt=True):
                    if changes:
                        settled({Path(p) for _, p in changes}, settle, stop)
                    if stop.is_set():
                        break
                    if changes or catch_up or time.monotonic() - last_sync >= rescan:
                        sync(pipeline, folders, report)
                        last_sync, catch_up = time.monotonic(), False
                    if identities(folders) != watched:
                        break  # a folder went, came back, or was replaced by a new one: watch what is there now
            except (OSError, RuntimeError) as exc:  # the watcher lost its folder mid-call, say
                print(f"rag: watching restarts: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
                stop.wait(tick)
    finally:
        write_state(pipeline, folders, running=False)


def run_watch(pipeline: Pipeline, folders: list[Path], report: Callable, rescan: float = RESCAN_SECONDS) -> int:
    """`rag index --watch`: watch until Ctrl-C, or SIGTERM (a service manager's stop), which lets a sync finish."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"watching {', '.join(str(f) for f in folders)}; Ctrl-C stops", file=sys.stderr, flush=True)
    watch_folders(pipeline, folders, stop, report=report, rescan=rescan)
    return 0


# --- what `rag collections` shows ---------------------------------------------------------------------
def write_state(pipeline: Pipeline, folders: list[Path], running: bool) -> None:
    """Record the watched folders, the last sync and the watcher's process in the collection's folder."""
    path = collection_dir(pipeline.settings) / WATCH_FILE
    old = read_watch_state(path.parent)
    state = {"folders": [str(f) for f in folders], "pid": os.getpid() if running else None,
             "last_sync": time.strftime("%Y-%m-%dT%H:%M:%S%z") if running else old.get("last_sync", "")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{WATCH_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        print(f"rag: cannot record the watch state in {path}: {exc.strerror or exc}", file=sys.stderr)
