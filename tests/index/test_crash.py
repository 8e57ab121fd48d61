"""Crash safety: `rag index` killed with SIGKILL at random steps of its work, and two writers at once.

The writers are real processes running `tests/conftest.py`'s FakeEmbedder (written out below as a
small script). A worker stops itself at the file operation the test chose and is killed there; the
index must then load and hold exactly the old state (killed up to the rename that commits) or the new.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, FakeEmbedder

from rag.index.indexer import update_index
from rag.index.store import Store

CHUNKER = {"size": 500, "overlap": 100}
TRIALS = 24
SEED = 20240521

WORKER = textwrap.dedent("""
    import json, logging, os, signal, sys
    sys.path.insert(0, {tests!r})
    import faiss  # noqa: F401  (loaded before "ready", as the CLI would have)
    from conftest import FakeEmbedder
    import rag.cli
    from rag.index.indexer import update_index
    from rag.index.store import Store

    mode, index_dir, corpus = sys.argv[1:4]
    PAUSE_AT = int(os.environ.get("PAUSE_AT", "-1"))
    steps = 0

    def mark(event):
        print(event, steps, flush=True)

    # Every file operation on the corpus or the index is a step, counted by an audit hook that runs
    # just before it. At step PAUSE_AT the worker says so and stops itself, for the test to kill it there.
    WATCHED = {{"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"}}  # os.replace: os.rename

    def audit(event, args):
        global steps
        if event not in WATCHED or not str(args[0]).startswith((index_dir, corpus)):
            return
        if event == "os.rename" and str(args[1]).endswith("CURRENT"):
            mark("commit")  # this step is the rename that commits the new generation
        if steps == PAUSE_AT:
            mark("paused")
            os.kill(os.getpid(), signal.SIGSTOP)
        steps += 1

    write = Store.write
    def marked_write(self, *args, **kwargs):
        mark("writing")
        state = write(self, *args, **kwargs)
        mark("committed")
        return state
    Store.write = marked_write

    class HeldEmbedder(FakeEmbedder):
        # Holds the write lock until the test writes a line to standard input.
        def embed(self, texts, progress=False):
            mark("embedding")
            sys.stdin.readline()
            return super().embed(texts, progress)

    class Waiting(logging.Handler):
        # filelock logs each failed attempt before it sleeps and tries again.
        def emit(self, record):
            if record.msg.startswith("Lock %s not acquired"):
                mark("waiting")
                logging.getLogger("filelock").removeHandler(self)

    logging.getLogger("filelock").addHandler(Waiting())
    logging.getLogger("filelock").setLevel(logging.DEBUG)
    sys.addaudithook(audit)
    mark("ready")
    if mode == "cli":
        # `rag index` itself, with the fake embedder and (the CLI waits 30 s) a short lock timeout.
        real_pipeline, real_lock = rag.cli._pipeline, Store.lock
        def fake_pipeline(args):
            pipeline = real_pipeline(args)
            pipeline._embedder = FakeEmbedder()
            return pipeline
        rag.cli._pipeline = fake_pipeline
        Store.lock = lambda self, timeout=30.0: real_lock(self, float(os.environ["LOCK_TIMEOUT"]))
        sys.exit(rag.cli.main(["index", "--json", "--index-dir", index_dir, corpus]))
    embedder = HeldEmbedder() if mode == "hold" else FakeEmbedder()
    report = update_index(Store(index_dir), [corpus], embedder, {chunker!r})
    mark("done")
    print(json.dumps(report.to_dict()), flush=True)
""")


# --- a corpus with an old and a new state ---------------------------------------------------------
TOPICS = ["helium mining", "comet tourism", "orbital debris", "lunar water", "radio quiet zones",
          "asteroid claims", "satellite spectrum", "space weather"]


def note(i: int, version: int) -> str:
    """One to four paragraphs about a topic; `version` changes every paragraph."""
    topic = TOPICS[i % len(TOPICS)]
    return "\n\n".join(f"Note {i}, version {version}, part {k}. The council discussed {topic} at meeting "
                       f"{i * 3 + version}. Delegates from {i % 40 + 2} countries voted on motion {i}-{k}."
                       for k in range(1 + i % 4))


# Fixed modification times, long past: the indexer trusts the size and mtime of a file that old and
# skips it, so which files a run reads never depends on how long ago the test wrote them.
MTIME_NS = {1: 1_600_000_000_000_000_000, 2: 1_600_000_100_000_000_000}


def write_corpus(folder: Path, version: int) -> None:
    """Version 1: notes 0-299. Version 2: 40 notes edited, 20 deleted, 40 added."""
    folder.mkdir(exist_ok=True)
    for i in range(340):
        path = folder / f"topic-{i % 8}" / f"note-{i:03d}.txt"
        path.parent.mkdir(exist_ok=True)
        if version == 1:
            present, edited = i < 300, False
        else:
            present, edited = not 100 <= i < 120, i % 7 == 0 and i < 280
        if not present:
            path.unlink(missing_ok=True)
        elif version == 1 or edited or i >= 300:
            path.write_text(note(i, 2 if edited else 1), encoding="utf-8")
            os.utime(path, ns=(MTIME_NS[version], MTIME_NS[version]))


def state_of(index_dir: Path) -> tuple:
    """What the index holds: each document's sha256, and the chunk ids in FAISS row order."""
    state = Store(index_dir).load()
    assert len(state.vectors()) == len(state.chunks) == state.manifest["count"]
    return ({d: info["sha256"] for d, info in state.documents.items()}, tuple(c.id for c in state.chunks))


def run_worker(script: Path, mode: str, index_dir: Path, corpus: Path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), mode, str(index_dir), str(corpus)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **{k: str(v) for k, v in env.items()}})


def marks(stdout: str) -> dict[str, int]:
    """The worker's marks: event -> the number of file operations done before it."""
    return {line.split()[0]: int(line.split()[1]) for line in stdout.splitlines()
            if len(line.split()) == 2 and line.split()[0].isalpha()}


def read_until(proc: subprocess.Popen, event: str) -> str:
    """The worker's output up to and including the line that starts with `event`."""
    lines = []
    while not (lines and lines[-1].startswith(event + " ")):
        line = proc.stdout.readline()
        assert line, f"the worker ended before {event!r}: {''.join(lines)}{proc.stderr.read()}"
        lines.append(line)
    return "".join(lines)


def stopped(proc: subprocess.Popen) -> None:
    """Wait until the worker has stopped itself (SIGSTOP) at the step it announced."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status


@pytest.fixture
def states(tmp_path):
    """An index holding the old corpus, the corpus changed to its new state, and the worker script."""
    corpus, old = tmp_path / "corpus", tmp_path / "old-index"
    write_corpus(corpus, 1)
    update_index(Store(old), [corpus], FakeEmbedder(), CHUNKER, commit_files=0)  # one commit: one generation
    write_corpus(corpus, 2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), chunker=CHUNKER), encoding="utf-8")
    return corpus, old, script


# --- SIGKILL at random steps ------------------------------------------------------------------------
@pytest.mark.slow
def test_rag_index_killed_at_random_steps_leaves_the_old_index_before_the_commit_and_the_new_after(
        states, tmp_path):
    corpus, old, script = states
    old_state = state_of(old)

    # One full run counts the steps and gives the new state to compare with.
    reference = tmp_path / "reference"
    shutil.copytree(old, reference)
    run = run_worker(script, "index", reference, corpus)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    t = marks(out)
    assert t["ready"] == 0 < t["writing"] < t["commit"] < t["done"] - 1
    new_state = state_of(reference)
    assert new_state != old_state and json.loads(out.splitlines()[-1])["embedded"] > 0

    # Step t["commit"] is the rename that commits: killed there, the old index; one step later, the new.
    # The other kills: half inside the write, where a torn commit would show; a quarter while the corpus
    # is read and embedded; a quarter after the commit, while the old generation is cleaned up.
    rng = random.Random(SEED)
    kill_steps = [t["commit"], t["commit"] + 1] + [
        rng.randrange(t["writing"], t["commit"]) if trial % 2 == 0 else
        rng.randrange(0, t["writing"]) if trial % 4 == 1 else rng.randrange(t["commit"] + 1, t["done"])
        for trial in range(2, TRIALS)]
    phases = {"before the write": 0, "during the write": 0, "after the commit": 0}
    for trial, step in enumerate(kill_steps):
        index = tmp_path / f"trial-{trial:02d}"
        shutil.copytree(old, index)
        proc = run_worker(script, "index", index, corpus, PAUSE_AT=step)
        read_until(proc, "paused")
        stopped(proc)
        proc.kill()
        proc.communicate(timeout=60)
        phase = ("before the write" if step < t["writing"] else
                 "during the write" if step <= t["commit"] else "after the commit")
        phases[phase] += 1

        expected = old_state if step <= t["commit"] else new_state
        assert state_of(index) == expected, f"trial {trial}: killed at step {step} ({phase})"
        report = update_index(Store(index), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=5)
        assert state_of(index) == new_state and report.skipped == ()
        assert not (index / "CURRENT.tmp").exists()
        assert len(list(index.glob("gen-*"))) <= 2
        shutil.rmtree(index)

    old_count = sum(step <= t["commit"] for step in kill_steps)
    print(f"\nsurvived {TRIALS}/{TRIALS} kills: {old_count} left the old index, {TRIALS - old_count} the new; "
          f"kills {phases}; a run takes {t['done']} file operations, its write {t['commit'] - t['writing'] + 1}")


# --- two writers -----------------------------------------------------------------------------------
def test_a_second_writer_waits_for_the_first_and_the_index_ends_consistent(states, tmp_path):
    corpus, old, script = states
    index = tmp_path / "index"
    shutil.copytree(old, index)
    first = run_worker(script, "hold", index, corpus)
    read_until(first, "embedding")  # the first holds the lock until told to go on
    second = run_worker(script, "index", index, corpus)
    read_until(second, "waiting")  # the second has tried the lock, found it held, and waits
    out1, err1 = first.communicate("go\n", timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    first_report, second_report = json.loads(out1.splitlines()[-1]), json.loads(out2.splitlines()[-1])
    assert first_report["embedded"] > 0 and first_report["added"] == 40
    # The second ran after the first committed, so it found nothing left to do.
    assert "writing" not in marks(out2)
    assert (second_report["embedded"], second_report["added"], second_report["updated"]) == (0, 0, 0)
    reference = tmp_path / "reference"
    shutil.copytree(old, reference)
    update_index(Store(reference), [corpus], FakeEmbedder(), CHUNKER)
    assert state_of(index) == state_of(reference)


def test_a_second_rag_index_fails_in_one_line_with_exit_2_while_another_writes(states, tmp_path):
    corpus, old, script = states
    index = tmp_path / "index"
    shutil.copytree(old, index)
    old_state = state_of(index)
    first = run_worker(script, "hold", index, corpus)
    read_until(first, "embedding")
    second = run_worker(script, "cli", index, corpus, LOCK_TIMEOUT=0.5)
    out2, err2 = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "waiting" in marks(out2)
    assert err2 == (f"rag: error: another process is writing the index in {index}/; "
                    "try again when it finishes\n")
    assert state_of(index) == old_state  # readers meanwhile see the old index, whole
    out1, err1 = first.communicate("go\n", timeout=120)
    assert first.returncode == 0, err1
    assert json.loads(out1.splitlines()[-1])["added"] == 40
    assert state_of(index) != old_state
