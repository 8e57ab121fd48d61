"""PDF and HTML parsed in a child process with a memory limit and a deadline.

A crafted file can make a parser run for hours (pypdf on a page listed thousands of times,
Python 3.11's html.parser on unclosed tags) or take gigabytes. In the child, such a file costs at
most `ReadLimits.seconds` and `ReadLimits.memory_mb`, and then it is skipped with one line.

The child holds no more than it needs: an environment of a few variables (no `RAG_API_KEY`,
`RAG_UI_PASSWORD` or `RAG_LLM_API_KEY`), an empty working directory of its own, no new privileges
(`PR_SET_NO_NEW_PRIVS`), and, where the kernel allows it, a network namespace of its own with no
interfaces but loopback, so a parser tricked into fetching something reaches nothing.

One child serves a whole run: it starts at the first PDF or HTML file and is replaced only after
a file times out or kills it. Text and Markdown are read in-process: decoding them is linear and
yields no more text than the file holds. The child is a fresh `python -m rag.documents.isolation`, never a
fork of the (threaded) app.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import UnreadableDocument
from ..records import Document
from .formats import FORMAT_SUFFIXES
from .ingest import HTML_SUFFIXES, ReadLimits, read_document, reason_of

# Office files and e-books too: their libraries parse attacker-controlled XML from a zip.
ISOLATED_SUFFIXES = {".pdf", *HTML_SUFFIXES, *FORMAT_SUFFIXES}
# Starting Python and importing pypdf, on a busy machine; not counted against any file.
START_SECONDS = 60.0
# What the child inherits of the environment: what Python, tesseract and the locale need.
CHILD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TESSDATA_PREFIX", "OMP_THREAD_LIMIT")
_LENGTH = struct.Struct(">Q")


class IsolatedReader:
    """Reads files like `read_document`, parsing PDF and HTML in a child process. A context manager.

    >>> with IsolatedReader(ReadLimits(seconds=30)) as reader:
    ...     doc = reader.read(Path("report.pdf"), "report.pdf", data)
    """

    def __init__(self, limits: ReadLimits = ReadLimits(), progress=None):
        self.limits = limits
        # progress(path, done, total): the pages of a scanned PDF as OCR reads them.
        self.progress = progress
        self._child: subprocess.Popen | None = None
        self._folder: str | None = None  # the child's working directory, empty

    def __enter__(self) -> IsolatedReader:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:  # Ctrl-C or an error: the child's work (an OCR of many pages) is not wanted
            self._stop()
        self.close()

    def read(self, path: Path, doc_id: str, data: bytes) -> Document:
        """The file as a Document, or UnreadableDocument naming why not (a parser error, time, memory)."""
        if path.suffix.lower() not in ISOLATED_SUFFIXES:
            return read_document(path, doc_id, data, self.limits)
        child = self._running_child(path)
        try:
            _send(child.stdin, json.dumps({"path": str(path), "doc_id": doc_id}).encode())
            _send(child.stdin, data)
            reply = _decode(_receive(child.stdout.fileno(), time.monotonic() + self.limits.seconds))
            # A scanned PDF reports each page before OCR reads it; each page has its own time.
            while "progress" in reply:
                if self.progress:
                    self.progress(path, *reply["progress"])
                reply = _decode(_receive(child.stdout.fileno(),
                                         time.monotonic() + self.limits.ocr_seconds + 5.0))
        except TimeoutError:
            self._stop()
            raise UnreadableDocument(f"{path}: took longer than {self.limits.seconds:g} s to read "
                                     "(parse_timeout)") from None
        except (OSError, EOFError):  # the child died: a crash in C code, or killed from outside
            raise UnreadableDocument(f"{path}: the reader process died ({self._stop()})") from None
        if "error" in reply:
            raise UnreadableDocument(f"{path}: {reply['error']}")
        return Document(doc_id, str(path), reply["sha256"], reply["text"], tuple(reply["pages"]),
                        tuple((offset, label) for offset, label in reply.get("sections", ())))

    def close(self) -> None:
        """Let the child finish (it exits when its input closes), or kill it."""
        if self._child is None:
            return
        child, self._child = self._child, None
        try:
            child.stdin.close()
            child.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()
        child.stdout.close()
        self._remove_folder()

    def _remove_folder(self) -> None:
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _running_child(self, path: Path) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self._stop()
        package_parent = str(Path(__file__).resolve().parent.parent)
        env = {name: os.environ[name] for name in CHILD_ENVIRONMENT if name in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        # The child works in a folder of its own, so the cache's path must not be relative.
        limits = replace(self.limits, ocr_cache=str(Path(self.limits.ocr_cache).resolve())
                         if self.limits.ocr_cache else "")
        self._folder = tempfile.mkdtemp(prefix="rag-reader-")
        try:
            # -P: the working directory is not put on sys.path, so only this package is imported.
            self._child = subprocess.Popen(
                [sys.executable, "-P", "-m", "rag.documents.isolation", json.dumps(asdict(limits))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                cwd=self._folder)
            _receive(self._child.stdout.fileno(), time.monotonic() + START_SECONDS)
        except (OSError, EOFError, TimeoutError) as exc:
            self._stop()
            raise UnreadableDocument(f"{path}: the reader process did not start ({type(exc).__name__})") from None
        return self._child

    def _stop(self) -> str:
        """Kill the child, if any; describe how it ended."""
        if self._child is None:
            self._remove_folder()
            return "not running"
        child, self._child = self._child, None
        child.kill()
        code = child.wait()
        self._remove_folder()
        for stream in (child.stdin, child.stdout):
            try:
                stream.close()
            except OSError:  # a broken pipe with unflushed data
                pass
        if code >= 0:
            return f"exit code {code}"
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"signal {-code}"


def _send(stream, payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _receive(fd: int, deadline: float) -> bytes:
    """One length-prefixed message from a pipe, or TimeoutError at the deadline, EOFError if it closes."""
    header = _read_exactly(fd, _LENGTH.size, deadline)
    return _read_exactly(fd, _LENGTH.unpack(header)[0], deadline)


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    parts, left = [], size
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not selector.select(wait):
                raise TimeoutError
            part = os.read(fd, min(left, 1 << 20))
            if not part:
                raise EOFError
            parts.append(part)
            left -= len(part)
    return b"".join(parts)


def _encode(message: dict) -> bytes:
    # surrogatepass: text from a broken PDF can hold lone surrogates, and must arrive as it was read.
    return json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _decode(payload: bytes) -> dict:
    return json.loads(payload.decode("utf-8", "surrogatepass"))


def _read_message(stream) -> bytes | None:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    return stream.read(_LENGTH.unpack(header)[0])


def confine() -> list[str]:
    """In the child, before any parser loads: no new privileges, and no network where the kernel lets
    an unprivileged process have a namespace of its own. Returns what could not be done."""
    if not sys.platform.startswith("linux"):
        return ["no_new_privs", "network"]
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, CLONE_NEWUSER, CLONE_NEWNET = 38, 0x10000000, 0x40000000
    missing = [] if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 else ["no_new_privs"]
    # As root CLONE_NEWNET suffices; as a user it needs a user namespace too (where they are enabled).
    if libc.unshare(CLONE_NEWNET) != 0 and libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        missing.append("network")
    return missing


def serve(limits: ReadLimits) -> None:
    """The child: read (header, bytes) requests from stdin, reply with the document or the reason."""
    import resource

    confine()

    import pypdf  # noqa: F401  (loaded now, so the first file's deadline does not pay for it)
    import pypdfium2  # noqa: F401

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's stray print goes to stderr, not into the replies
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    _send(replies, b"{}")
    requests = sys.stdin.buffer
    while (header := _read_message(requests)) is not None:
        request, data = json.loads(header), _read_message(requests)
        path = Path(request["path"])
        def progress(done: int, total: int) -> None:
            _send(replies, _encode({"progress": [done, total]}))

        try:
            doc = read_document(path, request["doc_id"], data, limits, progress)
            reply = _encode({"sha256": doc.sha256, "text": doc.text, "pages": doc.pages,
                             "sections": doc.sections})
        except UnreadableDocument as exc:
            reply = _encode({"error": reason_of(exc, path)})
        except MemoryError:  # the text was read, but its reply does not fit
            reply = _encode({"error": "ran out of memory while reading"})
        _send(replies, reply)


if __name__ == "__main__":
    serve(ReadLimits(**json.loads(sys.argv[1])))
