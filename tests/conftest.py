"""Shared fixtures: fakes for fast unit tests, the real models for integration tests, no network."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.text import content_terms

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
# A folder whose sitecustomize.py blocks connections outside loopback in the Python processes it starts.
NETGUARD = ROOT / "tests" / "netguard"
# The tests mirror the package's folders; a few share helpers across them (`from test_crash import …`),
# which works from any folder once every test folder is importable.
sys.path.extend(str(d) for d in sorted((ROOT / "tests").iterdir()) if d.is_dir() and d.name != "netguard")


def pytest_configure(config):
    """Guard the child processes too: pytest-socket (`--allow-hosts` in pyproject.toml) guards only this one.

    Every Python child (a `rag` command, a worker, `python -m llama_cpp.server`) inherits PYTHONPATH, so
    it imports the guard at start-up and a hidden download there fails loudly as well.
    """
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), os.environ.get("PYTHONPATH")]))
    # Anything cached is kept in a folder this run owns (shared by its tests and their child processes),
    # never written to the user's ~/.cache/rag. The one thing read from there is the int8 embedder that
    # `make install` (`rag models install`) made: a copy, so the run does not spend 30 s making it again.
    from rag.config import cache_dir

    made = sorted(cache_dir().glob("all-MiniLM-L6-v2-int8-*.onnx"))
    # With several test processes (`make test` runs two where there are two cores), each one's embedder
    # takes its share of the cores: ONNX Runtime's threads spin while they wait, and two processes with
    # two threads each on two cores embedded 22 texts/s each, against 52 with one thread each
    # (docs/performance.md). The apps and commands the tests start inherit the setting.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if workers > 1:
        from rag.config import usable_cores

        os.environ.setdefault("RAG_EMBED_THREADS", str(max(1, usable_cores() // workers)))
    os.environ["RAG_CACHE_DIR"] = tempfile.mkdtemp(prefix="rag-test-cache-")
    for path in made:
        shutil.copy2(path, cache_dir() / path.name)


def pytest_unconfigure(config):
    cache = os.environ.get("RAG_CACHE_DIR", "")
    if Path(cache).name.startswith("rag-test-cache-"):
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _index_in_tmp(tmp_path, monkeypatch):
    """Every test gets its own index directory unless it asks otherwise."""
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))


class FakeEmbedder:
    """A hashed bag of stemmed words: similar wording gives similar vectors, deterministically."""

    name = "fake-embedder"
    dim = 64

    def __init__(self):
        self.calls = 0
        self.embedded = 0

    def embed(self, texts, progress=False):
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in content_terms(text) or ["<empty>"]:
                out[row, int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeGenerator:
    """Replays queued replies; counts a token per word."""

    name = "fake-generator"

    def __init__(self, *replies, n_ctx=2048):
        self.replies = list(replies)
        self.n_ctx = n_ctx
        self.prompts = []
        self.last_scores = None

    def count_tokens(self, text):
        return len(text.split())

    def chat_overhead(self, messages):
        return 4 * len(messages)

    def stream(self, messages, max_tokens=128, stop_at_newline=False, abstain_word=""):
        self.prompts.append(messages)
        reply = self.replies.pop(0) if self.replies else "I can't find that in the documents."
        for word in reply.split(" "):
            yield word + " "


@pytest.fixture
def corpus_copy(tmp_path):
    dest = tmp_path / "corpus"
    shutil.copytree(CORPUS, dest)
    return dest


@pytest.fixture
def fake_pipeline(tmp_path, corpus_copy):
    """A pipeline over a copy of the corpus with the fake embedder; queue replies on `.generator`."""
    from rag.pipeline import Pipeline

    settings = Settings.load(index_dir=tmp_path / "index", min_relevance=0.05, min_coverage=0.3)
    pipeline = Pipeline(settings, embedder=FakeEmbedder(), generator=FakeGenerator())
    pipeline.index([corpus_copy])
    return pipeline


@pytest.fixture(scope="session")
def real_embedder():
    """The embedder users get: int8 through ONNX Runtime, with the weight type this CPU multiplies exactly
    (uint8 on an AVX2-only CPU); tests/index/test_weight_types.py checks both against fp32."""
    from rag.index.embedders import open_embedder

    return open_embedder(threads=Settings.load().embed_threads)


@pytest.fixture(scope="session")
def eval_index_root(tmp_path_factory):
    """Where `rag eval --index-root` keeps each eval set's index: built once per test run, shared by the
    tests that run the eval."""
    return tmp_path_factory.mktemp("eval-indexes")


@pytest.fixture(scope="session")
def real_generator():
    from rag.answer.generate import LlamaGenerator

    # As many threads as this process may use (Settings.threads): two threads sharing one core of
    # `taskset -c 0` evaluated prompts at 31.2 tokens/s against one thread's 31.9 and decoded 6.3 against 6.7.
    return LlamaGenerator(n_threads=Settings.load().threads)


def real_pipeline_with(tmp_path: Path, name: str, text: str, embedder, generator):
    """The real models over a copy of the corpus plus one extra document, indexed in `tmp_path`."""
    from rag.pipeline import Pipeline

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / name).write_text(text, encoding="utf-8")
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder, generator)
    pipeline.index([corpus])
    return pipeline


@pytest.fixture(scope="session")
def real_pipeline(tmp_path_factory, real_embedder, real_generator):
    """The real models over the bundled corpus, indexed once per session."""
    from rag.pipeline import Pipeline

    settings = Settings.load(index_dir=tmp_path_factory.mktemp("real") / "index")
    pipeline = Pipeline(settings, embedder=real_embedder, generator=real_generator)
    pipeline.index([CORPUS])
    return pipeline


def wait_until_listening(proc, port: int, seconds: float = 30) -> None:
    """Wait until a server child process accepts connections on `port` (fail if it exits or takes long)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)


@contextmanager
def running_app(root: Path, embedder, generator):
    """The web app served on a free loopback port over a copy of the corpus; yields its URL."""
    from rag.pipeline import Pipeline

    shutil.copytree(CORPUS, root / "corpus")
    pipeline = Pipeline(Settings.load(index_dir=root / "index"), embedder=embedder, generator=generator)
    pipeline.index([root / "corpus"])
    with serving_app(pipeline) as url:
        yield url


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving_app(pipeline):
    """The web app over `pipeline` (its index as it is), served on a free loopback port; yields its URL."""
    import app

    port = free_port()
    server = app.serve(app.build_app(pipeline), "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
