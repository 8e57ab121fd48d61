"""`rag index` killed with SIGKILL at random moments of a long run, then run again until it finishes.

The runs are real `rag index --json` processes that commit every few files. After each kill the index
must load, hold every document whole (the chunks of its old version or of its new one, never a mix)
with the vectors of those chunks, and hold more of the new versions than before the run; the run that
finishes must embed only what no commit holds. With conftest's FakeEmbedder on a 2,000-file folder,
and once with the real embedder on a smaller one.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import ROOT, FakeEmbedder
from test_crash import read_until
from test_resume import CHUNKER, by_document, expected_chunks, paragraph, write_folder

from rag.index.indexer import update_index
from rag.index.store import Store

SEED = 20261130
TRIALS = 8

WORKER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import faiss  # noqa: F401  (loaded before "ready", as the CLI would have)
    from conftest import FakeEmbedder
    import rag.cli
    from rag.index.store import Store

    index_dir, folder, embedder = sys.argv[1:4]
    write, commits = Store.write, 0
    def marked_write(self, *args, **kwargs):
        global commits
        print("writing", commits, flush=True)
        state = write(self, *args, **kwargs)
        commits += 1
        print("committed", commits, flush=True)
        return state
    Store.write = marked_write
    if embedder == "fake":
        real_pipeline = rag.cli._pipeline
        def fake_pipeline(args):
            pipeline = real_pipeline(args)
            pipeline._embedder = FakeEmbedder()
            return pipeline
        rag.cli._pipeline = fake_pipeline
    print("ready", flush=True)
    sys.exit(rag.cli.main(["index", "--json", "--index-dir", index_dir, folder]))
""")


def start(script, index, folder, embedder: str, commit_files: int) -> subprocess.Popen:
    import os

    env = {**os.environ, "RAG_COMMIT_FILES": str(commit_files), "RAG_COMMIT_SECONDS": "0"}
    return subprocess.Popen([sys.executable, str(script), str(index), str(folder), embedder], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_at_a_random_moment(proc: subprocess.Popen, rng: random.Random, trial: int) -> None:
    """Inside a write after one to three commits of this run (odd trials), or at a random moment of the
    commit cycle after two or three (even trials).

    The random moment is a share of the cycle this run last took, not a fixed span of seconds: on a fast
    CPU 0.3 s held several commits, and the early trials committed what the later ones needed to find
    (a run with nothing left to write ended before its kill)."""
    if trial % 2:
        for _ in range(1 + rng.randrange(3)):
            read_until(proc, "committed")
        read_until(proc, "writing")
        time.sleep(rng.uniform(0, 0.02))
    else:
        read_until(proc, "committed")
        for _ in range(1 + rng.randrange(2)):
            begun = time.monotonic()
            read_until(proc, "committed")
        time.sleep(rng.uniform(0, 1) * (time.monotonic() - begun))
    proc.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -9, f"trial {trial}: the run ended before its kill: {out[-300:]}{err[-300:]}"


def vectors_by_chunk(state) -> dict[tuple[str, str], np.ndarray]:
    return {(c.id, c.text): v for c, v in zip(state.chunks, state.vectors())}


@pytest.fixture
def worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests")), encoding="utf-8")
    return script


@pytest.mark.slow
def test_rag_index_killed_at_random_moments_keeps_every_document_whole_and_resumes(tmp_path, worker):
    folder, index = tmp_path / "folder", tmp_path / "index"
    write_folder(folder, 2000)
    update_index(Store(index), [folder], FakeEmbedder(), CHUNKER, commit_files=0, commit_seconds=0)
    old = Store(index).load()
    old_docs, old_chunks, vectors = old.documents, by_document(old), vectors_by_chunk(old)
    # The new state: 1,425 files edited, 100 deleted, 100 added.
    write_folder(folder, 1900, version=2, only=lambda i: i % 4 != 3)
    for i in range(1900, 2000):
        (folder / f"file-{i:04d}.txt").unlink()
    for i in range(2000, 2100):
        (folder / f"file-{i:04d}.txt").write_text(paragraph(i, 2), encoding="utf-8")
    changed = {f"file-{i:04d}.txt" for i in [*range(0, 1900), *range(2000, 2100)] if i % 4 != 3 or i >= 2000}

    # One run to the end, on a copy: the new state, checked against the files, and what a whole run embeds.
    shutil.copytree(index, tmp_path / "reference")
    whole = update_index(Store(tmp_path / "reference"), [folder], FakeEmbedder(), CHUNKER)
    reference = Store(tmp_path / "reference").load()
    new_docs, new_chunks = reference.documents, by_document(reference)
    assert {d for d in new_docs if new_docs[d]["sha256"] != old_docs.get(d, {}).get("sha256")} == changed
    assert all(new_chunks[d] == expected_chunks(folder / d, d) for d in changed)
    vectors.update(vectors_by_chunk(reference))

    rng = random.Random(SEED)
    done = 0  # documents of the index in their new version
    for trial in range(TRIALS):
        kill_at_a_random_moment(start(worker, index, folder, "fake", commit_files=40), rng, trial)
        state = Store(index).load()
        assert len(state.vectors()) == len(state.chunks) == state.manifest["count"], trial
        assert state.manifest["partial"] is True
        held = by_document(state)
        new = {d for d, info in state.documents.items() if info["sha256"] == new_docs.get(d, {}).get("sha256")
               and d in changed}
        for doc_id in state.documents:
            assert held[doc_id] == (new_chunks if doc_id in new else old_chunks)[doc_id], (trial, doc_id)
        assert set(state.documents) == set(old_docs) | new  # the deleted files go at the last commit
        expected = np.stack([vectors[(c.id, c.text)] for c in state.chunks])
        assert abs(state.vectors() - expected).max() < 1e-6, trial
        assert len(new) > done, f"trial {trial}: the run committed nothing new"
        done = len(new)

    proc = start(worker, index, folder, "fake", commit_files=40)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    left = sum(len(new_chunks[d]) for d in changed - new)
    assert report["resumed"] and report["embedded"] == left < whole.embedded
    final = Store(index).load()
    assert "partial" not in final.manifest and by_document(final) == new_chunks
    print(f"\n{TRIALS} kills: {done} of {len(changed)} changed files committed before the last run, which "
          f"embedded {report['embedded']} of {whole.embedded} chunks in {report['commits']} commits")


@pytest.mark.slow
@pytest.mark.integration
def test_rag_index_with_the_real_embedder_killed_after_two_commits_resumes_and_embeds_only_the_rest(
        tmp_path, worker):
    folder, index = tmp_path / "folder", tmp_path / "index"
    write_folder(folder, 80)
    total = sum(len(expected_chunks(p, p.name)) for p in folder.iterdir())
    proc = start(worker, index, folder, "real", commit_files=15)
    read_until(proc, "committed")
    kill_at_a_random_moment(proc, random.Random(SEED), trial=0)
    state = Store(index).load()
    held = by_document(state)
    assert state.manifest["partial"] is True and 30 <= len(state.documents) < 80
    assert all(held[d] == expected_chunks(folder / d, d) for d in state.documents)
    sample = random.Random(SEED).sample(range(state.count), 16)
    stored = state.vectors()[sample]
    # The stored vectors are these chunks', from the embedder the index records (the int8 default).
    from rag.index.embedders import open_embedder

    fresh = open_embedder("", recorded=state.manifest["embedder"]).embed([state.chunks[i].text for i in sample])
    assert np.min(np.sum(stored * fresh, axis=1)) > 0.999

    proc = start(worker, index, folder, "real", commit_files=15)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["resumed"] and report["embedded"] == total - state.count and report["embedded"] < total
    final = Store(index).load()
    assert report["chunks"] == final.count == total and "partial" not in final.manifest
