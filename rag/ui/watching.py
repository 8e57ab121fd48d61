"""The Documents tab's watch setting: keep the picked collection in step with its own folders.

The folders are the ones the collection was indexed from (`rag index FOLDER`, recorded in its manifest) or
last watched (`rag index FOLDER --watch`), never a path typed into the page: a web page may not make the
app read a folder of the user's disk it was not given at the command line. The watcher is rag/watch.py's,
run in a thread of the app until the setting is turned off or the app stops.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from rag.errors import RagError
from rag.pipeline import Pipeline

from .render import error_toast


def own_folders(pipeline: Pipeline) -> list[Path]:
    """The folders a collection was indexed from or last watched, that exist now, less its uploads folder."""
    from rag.index.collections import collection_dir, read_watch_state

    try:
        roots = pipeline.store.read_manifest()[1].get("roots", []) if pipeline.store.exists() else []
    except RagError:
        roots = []
    roots = [*roots, *read_watch_state(collection_dir(pipeline.settings)).get("folders", [])]
    uploads = pipeline.uploads_dir.resolve()
    folders = [Path(r).resolve() for r in roots]
    return [f for f in dict.fromkeys(folders) if f.is_dir() and f != uploads]


class Watchers:
    """One background watcher per collection the UI keeps in step."""

    def __init__(self, backend):
        self.backend = backend
        self.lock = threading.Lock()
        self.running: dict[str, tuple[threading.Thread, threading.Event]] = {}

    def is_on(self, collection: str | None) -> bool:
        with self.lock:
            found = self.running.get(collection or "")
        return bool(found and found[0].is_alive())

    def set(self, on: bool, collection: str | None = None) -> bool:
        """Start or stop keeping `collection` in step with its folders; the setting as it now is."""
        from rag.watch import watch_folders

        key = collection or ""
        with self.lock:
            thread, stop = self.running.pop(key, (None, None))
        if stop:
            stop.set()
            thread.join(timeout=30)
        if not on:
            return False
        try:
            pipeline = self.backend.in_collection(self.backend.pipeline, collection)
        except RagError as exc:
            raise error_toast(exc) from None
        folders = own_folders(pipeline)
        if not folders:
            raise gr.Error("This collection has no folder of its own to watch: index one with "
                           "`rag index FOLDER` (its documents added here are kept without watching).",
                           print_exception=False)
        stop = threading.Event()
        thread = threading.Thread(target=watch_folders, args=(pipeline, folders, stop), daemon=True,
                                  name=f"rag-watch-{key or 'default'}")
        with self.lock:
            self.running[key] = (thread, stop)
        thread.start()
        return True

    def stop_all(self) -> None:
        with self.lock:
            running, self.running = self.running, {}
        for thread, stop in running.values():
            stop.set()
            thread.join(timeout=30)
