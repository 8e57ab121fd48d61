"""Crash safety: `rag index` killed with SIGKILL at random moments, and two writers at once.

The writers are real processes running `tests/conftest.py`'s FakeEmbedder (written out below as a
small script). After every kill the index must load and hold exactly the old or the new state.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, FakeEmbedder

from rag.indexer import update_index
from rag.store import Store

CHUNKER = {"size": 500, "overlap": 100}
TRIALS = 24
SEED = 20240521

WORKER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    import faiss  # noqa: F401  (loaded before "ready": imports are not part of the timed run)
    from conftest import FakeEmbedder
    import rag.cli
    from rag.indexer import update_index
    from rag.store import Store

    def mark(event):
        print(event, time.monotonic(), flush=True)

    write = Store.write
    def marked_write(self, *args, **kwargs):
        mark("writing")
        state = write(self, *args, **kwargs)
        mark("committed")
        return state
    Store.write = marked_write

    class SlowEmbedder(FakeEmbedder):
        # Holds the write lock for HOLD seconds, like a real embedder on a large corpus.
        def embed(self, texts, progress=False):
            mark("embedding")
            time.sleep(float(os.environ["HOLD"]))
            return super().embed(texts, progress)

    mode, index_dir, corpus = sys.argv[1:4]
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
    embedder = SlowEmbedder() if mode == "slow" else FakeEmbedder()
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


def state_of(index_dir: Path) -> tuple:
    """What the index holds: each document's sha256, and the chunk ids in FAISS row order."""
    state = Store(index_dir).load()
    assert len(state.vectors()) == len(state.chunks) == state.manifest["count"]
    return ({d: info["sha256"] for d, info in state.documents.items()}, tuple(c.id for c in state.chunks))


def run_worker(script: Path, mode: str, index_dir: Path, corpus: Path, **env) -> subprocess.Popen:
    import os

    return subprocess.Popen([sys.executable, str(script), mode, str(index_dir), str(corpus)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **{k: str(v) for k, v in env.items()}})


def marks(stdout: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in stdout.splitlines()
            if len(line.split()) == 2 and line.split()[0].isalpha()}


@pytest.fixture
def states(tmp_path):
    """An index holding the old corpus, the corpus changed to its new state, and the worker script."""
    corpus, old = tmp_path / "corpus", tmp_path / "old-index"
    write_corpus(corpus, 1)
    update_index(Store(old), [corpus], FakeEmbedder(), CHUNKER)
    write_corpus(corpus, 2)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), chunker=CHUNKER), encoding="utf-8")
    return corpus, old, script


# --- SIGKILL at random moments ---------------------------------------------------------------------
@pytest.mark.slow
def test_rag_index_killed_at_random_moments_leaves_the_old_or_the_new_index(states, tmp_path):
    corpus, old, script = states
    old_state = state_of(old)

    # One full run times the phases and gives the new state to compare with.
    reference = tmp_path / "reference"
    shutil.copytree(old, reference)
    run = run_worker(script, "index", reference, corpus)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    t = marks(out)
    work, before, write = t["done"] - t["ready"], t["writing"] - t["ready"], t["committed"] - t["writing"]
    new_state = state_of(reference)
    assert new_state != old_state and json.loads(out.splitlines()[-1])["embedded"] > 0

    rng = random.Random(SEED)
    outcomes = {"old": 0, "new": 0}
    phases = {"before the write": 0, "during the write": 0, "after the commit": 0}
    for trial in range(TRIALS):
        index = tmp_path / f"trial-{trial:02d}"
        shutil.copytree(old, index)
        proc = run_worker(script, "index", index, corpus)
        assert proc.stdout.readline().startswith("ready ")
        # Half the kills once the write began, where a torn commit would show; a quarter while the
        # corpus is read and embedded (the write is most of a run); a quarter anywhere in the run.
        read = ""
        if trial % 4 == 1:
            time.sleep(rng.uniform(0, before))
        elif trial % 4 == 3:
            time.sleep(rng.uniform(0, work * 1.1))
        else:
            read = proc.stdout.readline()
            assert read.startswith("writing ")
            time.sleep(rng.uniform(0, write * 0.8))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        seen = marks(read + out)
        phase = ("after the commit" if "committed" in seen else
                 "during the write" if "writing" in seen else "before the write")
        phases[phase] += 1

        found = state_of(index)
        assert found in (old_state, new_state), f"trial {trial}: a mix of old and new after a kill {phase}"
        outcomes["old" if found == old_state else "new"] += 1
        report = update_index(Store(index), [corpus], FakeEmbedder(), CHUNKER, lock_timeout=5)
        assert state_of(index) == new_state and report.skipped == ()
        assert not (index / "CURRENT.tmp").exists()
        assert len(list(index.glob("gen-*"))) <= 2
        shutil.rmtree(index)

    survived = outcomes["old"] + outcomes["new"]
    print(f"\nsurvived {survived}/{TRIALS} kills: {outcomes['old']} left the old index, {outcomes['new']} "
          f"the new; kills {phases}; a run takes {work * 1000:.0f} ms, its write {write * 1000:.0f} ms")
    assert survived == TRIALS
    # Timing on a shared machine varies; most even-numbered kills land inside the write.
    assert phases["during the write"] >= TRIALS // 6, "too few kills landed inside the write"
    assert phases["before the write"] >= 1


# --- two writers -----------------------------------------------------------------------------------
def test_a_second_writer_waits_for_the_first_and_the_index_ends_consistent(states, tmp_path):
    corpus, old, script = states
    index = tmp_path / "index"
    shutil.copytree(old, index)
    first = run_worker(script, "slow", index, corpus, HOLD=1.5)
    assert first.stdout.readline().startswith("ready ")
    assert first.stdout.readline().startswith("embedding ")  # the lock is held from here
    second = run_worker(script, "index", index, corpus)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    first_report, second_report = json.loads(out1.splitlines()[-1]), json.loads(out2.splitlines()[-1])
    assert first_report["embedded"] > 0 and first_report["added"] == 40
    # The second ran after the first committed, so it found nothing left to do.
    assert marks(out2)["done"] > marks(out1)["committed"] and "writing" not in marks(out2)
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
    first = run_worker(script, "slow", index, corpus, HOLD=4)
    assert first.stdout.readline().startswith("ready ")
    assert first.stdout.readline().startswith("embedding ")
    second = run_worker(script, "cli", index, corpus, LOCK_TIMEOUT=0.5)
    out2, err2 = second.communicate(timeout=60)
    assert second.returncode == 2
    assert err2 == (f"rag: error: another process is writing the index in {index}/; "
                    "try again when it finishes\n")
    assert state_of(index) == old_state  # readers meanwhile see the old index, whole
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert json.loads(out1.splitlines()[-1])["added"] == 40
    assert state_of(index) != old_state
