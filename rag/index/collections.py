"""Named collections: each one its own index, so one collection's documents never reach another's answers.

The default collection (name "" or "default") is `index_dir` itself, the layout from before there were
collections. A named one lives in `index_dir/collections/NAME/` (FAISS), or, with vector_store =
"postgres", in its own PostgreSQL schema `rag_NAME`. This module is the one place that turns a name
into a store; the pipeline and the front ends only pass names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Settings
from ..errors import BadInput

DEFAULT = "default"
FOLDER = "collections"
SCHEMA_PREFIX = "rag_"
WATCH_FILE = "watch.json"  # written by `rag index --watch` (rag/watch.py)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class CollectionInfo:
    """One collection as `rag collections` lists it."""

    name: str
    documents: int
    chunks: int
    size_bytes: int
    last_indexed: str  # the manifest's "created", "" when nothing is indexed yet
    # `rag index --watch` (rag/watch.py): the folders it keeps in step, its last sync, whether it runs now.
    watched: tuple[str, ...] = ()
    last_sync: str = ""
    watching: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def check_name(name: str) -> str:
    """The collection's canonical name ("" for the default one); BadInput for a name that is no safe slug.

    >>> check_name("Default"), check_name("papers-2024")
    ('', 'papers-2024')
    """
    name = (name or "").strip()
    if name.lower() in ("", DEFAULT):
        return ""
    if not _NAME.fullmatch(name):
        raise BadInput(f"collection name {name!r} must be 1 to 32 lowercase letters, digits, '-' or '_', "
                       "starting with a letter or digit")
    return name


def display_name(name: str) -> str:
    """The name shown for a collection: "default" for the default one."""
    return check_name(name) or DEFAULT


def collection_dir(settings: Settings) -> Path:
    """The folder of the settings' collection: `index_dir`, or `index_dir/collections/NAME`."""
    name = check_name(settings.collection)
    if not name:
        return Path(settings.index_dir)
    folder = Path(settings.index_dir) / FOLDER / name
    # A link would send this collection's writes (and a removal) to a folder somebody else chose.
    for part in (folder.parent, folder):
        if part.is_symlink():
            raise BadInput(f"collection {name!r}: {part} is a symbolic link; a collection's folder must be a "
                           "real folder under the index")
    return folder


def pg_schema(name: str) -> str:
    """The PostgreSQL schema of a named collection ("" for the default one, whose tables are on the
    server's search_path as before)."""
    name = check_name(name)
    return f"{SCHEMA_PREFIX}{name}" if name else ""


def open_store(settings: Settings):
    """The store of the settings' collection: a `Store` on its folder, or a `PgStore` on its schema."""
    if settings.vector_store == "postgres":
        from .pgstore import PgStore

        return PgStore(settings.pg_url, schema=pg_schema(settings.collection))
    if settings.vector_store != "faiss":
        raise BadInput(f"vector_store must be \"faiss\" or \"postgres\", not {settings.vector_store!r}")
    from .store import Store

    return Store(collection_dir(settings))


def collection_names(settings: Settings) -> list[str]:
    """Every collection's name, the default one first."""
    if settings.vector_store == "postgres":
        from .pgstore import list_schemas

        named = [s[len(SCHEMA_PREFIX):] for s in list_schemas(settings.pg_url, SCHEMA_PREFIX)]
    else:
        folder = Path(settings.index_dir) / FOLDER
        named = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return [DEFAULT, *sorted(n for n in named if _NAME.fullmatch(n) and n != DEFAULT)]


def list_collections(settings: Settings) -> list[CollectionInfo]:
    """Every collection with its documents, chunks, size on disk (or in the database) and last indexing."""
    out = []
    for name in collection_names(settings):
        store = open_store(settings.replace(collection=name))
        manifest = store.read_manifest()[1] if store.exists() else {}
        watch = read_watch_state(collection_dir(settings.replace(collection=name)))
        out.append(CollectionInfo(name=name, documents=len(manifest.get("documents", {})),
                                  chunks=int(manifest.get("count", 0)), size_bytes=_size(settings, name, store),
                                  last_indexed=manifest.get("created", ""), watched=tuple(watch.get("folders", ())),
                                  last_sync=watch.get("last_sync", ""), watching=watch.get("running", False)))
    return out


def remove_collection(settings: Settings, name: str) -> None:
    """Delete a named collection's index (and its uploaded files); the others are untouched.

    The default collection is not removed here (`make clean-index` empties it); an unknown name is BadInput.
    """
    name = check_name(name)
    if not name:
        raise BadInput("the default collection cannot be removed; `make clean-index` empties it")
    if name not in collection_names(settings):
        raise BadInput(f"no collection named {name!r}; `rag collections` lists them")
    store = open_store(settings.replace(collection=name))
    if settings.vector_store == "postgres":
        store.drop()
        return
    with store.lock():
        # Renamed first, so a crash mid-delete leaves no half collection under its name.
        doomed = store.directory.parent / f".removing-{name}-{uuid.uuid4().hex[:8]}"
        os.replace(store.directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _size(settings: Settings, name: str, store) -> int:
    if settings.vector_store == "postgres":
        return store.size_bytes()
    root = store.directory
    skip = {root / FOLDER} if not check_name(name) else set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        # The default collection's folder also holds the named ones, and other tools' files (history).
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        if Path(dirpath) == root and skip:
            filenames = [f for f in filenames if f.startswith(("CURRENT", ".lock"))]
        total += sum(os.path.getsize(Path(dirpath, f)) for f in filenames if Path(dirpath, f).is_file())
    return total


def read_watch_state(folder: Path) -> dict:
    """A collection folder's watch state: folders, last_sync, pid, and `running` (its watcher is alive);
    {} when it was never watched."""
    try:
        state = json.loads((Path(folder) / WATCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    state["running"] = _alive(state.get("pid"))
    return state


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
