"""A long `rag index` commits as it goes: the cadence, the timings it reports, and resuming after a crash.

The SIGKILL trials on a 2,000-file folder are in test_resume_kill.py; here the runs are in-process,
and a crash is an exception raised by the embedder at a chosen call.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from types import SimpleNamespace

import pytest
from conftest import FakeEmbedder

import rag.index.indexer
from rag import cli
from rag.documents.chunk import chunk_document
from rag.documents.ingest import read_document
from rag.index.indexer import update_index
from rag.index.store import MAX_SEGMENTS, Store, segments_kept

CHUNKER = {"size": 500, "overlap": 100}
OLD_MTIME_NS = 1_600_000_000_000_000_000  # long past: a file this old is trusted by its size and time


def paragraph(i: int, version: int) -> str:
    return (f"File {i} in version {version}. The harbour board met about berth {i * 7 + version} and "
            f"the tide tables for week {i % 52}.")


def write_folder(folder, count: int, version: int = 1, paragraphs=lambda i: 1 + i % 3, only=lambda i: True) -> None:
    """Files 0 to `count` - 1 (those that `only` picks), of one to three chunks; `version` changes each one."""
    folder.mkdir(exist_ok=True)
    for i in filter(only, range(count)):
        path = folder / f"file-{i:04d}.txt"
        path.write_text("\n\n".join(paragraph(i, version) * 4 for _ in range(paragraphs(i))), encoding="utf-8")
        os_utime(path, version)


def os_utime(path, version: int) -> None:
    import os

    os.utime(path, ns=(OLD_MTIME_NS + version, OLD_MTIME_NS + version))


def expected_chunks(path, doc_id: str) -> list[tuple[str, str]]:
    """(id, text) of the chunks that indexing the file as it is now gives."""
    return [(c.id, c.text) for c in chunk_document(read_document(path, doc_id), **CHUNKER)]


class Crash(Exception):
    """Stands in for a kill: raised by the embedder at its `at`-th call."""


class CrashingEmbedder(FakeEmbedder):
    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def embed(self, texts, progress=False):
        if self.calls + 1 == self.at:
            raise Crash
        return super().embed(texts, progress)


class RecordingStore(Store):
    """A Store that keeps the manifest and the new rows of every commit."""

    def __init__(self, directory):
        super().__init__(directory)
        self.commits = []

    def write(self, chunks, vectors, manifest, *args, **kwargs):
        state = super().write(chunks, vectors, manifest, *args, **kwargs)
        self.commits.append(SimpleNamespace(manifest=state.manifest, chunks=len(chunks), state=state))
        return state


def by_document(state) -> dict[str, list[tuple[str, str]]]:
    """(id, text) of each document's chunks in a loaded index (files or PostgreSQL), in order."""
    found: dict[str, list] = {}
    for chunk in state.chunks() if callable(state.chunks) else state.chunks:
        found.setdefault(chunk.doc_id, []).append((chunk.id, chunk.text))
    return found


# --- the cadence ------------------------------------------------------------------------------------
def test_a_long_run_commits_after_every_n_changed_files_and_only_the_last_commit_is_whole(tmp_path):
    folder = tmp_path / "folder"
    write_folder(folder, 25)
    store = RecordingStore(tmp_path / "index")
    report = update_index(store, [folder], FakeEmbedder(), CHUNKER, commit_files=10, commit_seconds=0)
    assert report.commits == len(store.commits) == 3 and report.to_dict()["commits"] == 3
    assert [len(c.manifest["documents"]) for c in store.commits] == [10, 20, 25]
    assert [c.manifest.get("partial", False) for c in store.commits] == [True, True, False]
    assert sum(c.chunks for c in store.commits) == report.embedded == report.chunks
    assert not Store(tmp_path / "index").load().manifest.get("partial")


def test_unchanged_files_do_not_count_toward_the_next_commit(tmp_path):
    folder = tmp_path / "folder"
    write_folder(folder, 30)
    update_index(Store(tmp_path / "index"), [folder], FakeEmbedder(), CHUNKER)
    for i in range(0, 30, 3):  # 10 of the 30 files change
        (folder / f"file-{i:04d}.txt").write_text(paragraph(i, 2), encoding="utf-8")
    store = RecordingStore(tmp_path / "index")
    report = update_index(store, [folder], FakeEmbedder(), CHUNKER, commit_files=4, commit_seconds=0)
    assert len(report.updated) == 10 and report.unchanged == 20
    assert [c.chunks for c in store.commits] == [4, 4, 2]  # one chunk per changed file


def test_a_run_commits_after_commit_seconds_even_below_commit_files(tmp_path, monkeypatch):
    folder = tmp_path / "folder"
    write_folder(folder, 10, paragraphs=lambda i: 1)
    clock = [0.0]
    monkeypatch.setattr(rag.index.indexer, "time", SimpleNamespace(time_ns=time.time_ns, perf_counter=lambda: clock[0]))
    real_read = rag.index.indexer.read_bytes

    def slow_read(path):  # each file takes ten seconds to read, on the indexer's clock
        clock[0] += 10
        return real_read(path)

    monkeypatch.setattr(rag.index.indexer, "read_bytes", slow_read)
    store = RecordingStore(tmp_path / "index")
    report = update_index(store, [folder], FakeEmbedder(), CHUNKER, commit_files=200, commit_seconds=25)
    # 30 s have passed when the fourth file comes: the first three are committed, and so on.
    assert [c.chunks for c in store.commits] == [3, 3, 3, 1] and report.commits == 4


def test_with_both_settings_off_a_run_commits_once(tmp_path):
    folder = tmp_path / "folder"
    write_folder(folder, 12)
    store = RecordingStore(tmp_path / "index")
    report = update_index(store, [folder], FakeEmbedder(), CHUNKER, commit_files=0, commit_seconds=0)
    assert report.commits == len(store.commits) == 1 and report.embedded == report.chunks


def test_the_settings_reach_the_indexer(tmp_path, monkeypatch):
    from rag.config import Settings
    from rag.pipeline import Pipeline

    folder = tmp_path / "folder"
    write_folder(folder, 9)
    monkeypatch.setenv("RAG_COMMIT_FILES", "4")
    monkeypatch.setenv("RAG_COMMIT_SECONDS", "0")
    pipeline = Pipeline(Settings.load(), embedder=FakeEmbedder())
    assert pipeline.index([folder]).commits == 3


# --- resuming ---------------------------------------------------------------------------------------
@pytest.fixture
def changed_folder(tmp_path):
    """An index of 40 files (version 1); then 30 edited, 5 deleted and 5 added (version 2)."""
    folder = tmp_path / "folder"
    write_folder(folder, 40)
    update_index(Store(tmp_path / "index"), [folder], FakeEmbedder(), CHUNKER)
    write_folder(folder, 30, version=2)
    for i in range(35, 40):
        (folder / f"file-{i:04d}.txt").unlink()
    for i in range(40, 45):
        (folder / f"file-{i:04d}.txt").write_text(paragraph(i, 2), encoding="utf-8")
    return folder


def test_a_run_that_crashes_keeps_its_commits_and_the_next_run_embeds_only_the_rest(tmp_path, changed_folder):
    index = tmp_path / "index"
    before = Store(index).load()
    old_docs, old_chunks = before.documents, by_document(before)
    # The run without a crash, on a copy, gives the new state and what a whole run embeds.
    shutil.copytree(index, tmp_path / "reference")
    reference = RecordingStore(tmp_path / "reference")
    whole = update_index(reference, [changed_folder], FakeEmbedder(), CHUNKER, commit_files=10, commit_seconds=0)

    store = RecordingStore(index)
    # The batches are smaller than EMBED_BATCH: each commit embeds its ten files in one call, and the
    # third (files 20-29) fails.
    with pytest.raises(Crash):
        update_index(store, [changed_folder], CrashingEmbedder(at=3), CHUNKER, commit_files=10, commit_seconds=0)
    assert len(store.commits) == 2
    state = Store(index).load()
    assert state.manifest["partial"] is True
    held = by_document(state)
    # Every document is whole: the chunks of the file as it is now, or all of its old chunks.
    for doc_id, info in state.documents.items():
        if info["sha256"] != old_docs.get(doc_id, {}).get("sha256"):
            assert held[doc_id] == expected_chunks(changed_folder / doc_id, doc_id), doc_id
        else:
            assert held[doc_id] == old_chunks[doc_id], doc_id
    assert [d for d, info in state.documents.items() if info["sha256"] != old_docs[d]["sha256"]] == \
        [f"file-{i:04d}.txt" for i in range(20)]
    assert "file-0037.txt" in state.documents  # deleted files are dropped by the last commit

    embedder = FakeEmbedder()
    report = update_index(Store(index), [changed_folder], embedder, CHUNKER, commit_files=10, commit_seconds=0)
    assert report.resumed and report.to_dict()["resumed"] is True
    committed = sum(c.chunks for c in store.commits)
    assert committed > 0 and report.embedded == embedder.embedded == whole.embedded - committed
    final = Store(index).load()
    assert "partial" not in final.manifest and "file-0037.txt" not in final.documents
    assert by_document(final) == by_document(reference.commits[-1].state)
    assert report.removed == tuple(f"file-{i:04d}.txt" for i in range(35, 40))


def test_a_crashed_rebuild_is_resumed_by_a_plain_run(tmp_path, changed_folder):
    index = tmp_path / "index"
    with pytest.raises(Crash):
        update_index(Store(index), [changed_folder], CrashingEmbedder(at=2), CHUNKER, rebuild=True,
                     commit_files=10, commit_seconds=0)
    assert len(Store(index).load().documents) == 10  # the rebuild started from nothing
    report = update_index(Store(index), [changed_folder], FakeEmbedder(), CHUNKER)
    assert report.resumed and report.unchanged == 10 and len(report.added) == 30
    assert len(Store(index).load().documents) == 40


# --- what a commit costs --------------------------------------------------------------------------
def test_segments_kept_takes_in_the_newest_segments_up_to_four_times_the_new_rows():
    assert segments_kept([], 5) == 0
    assert segments_kept([4000, 1000], 100) == 2
    assert segments_kept([4000, 200], 100) == 1  # 100 takes in 200, then 4000 > 4 * 300 stays
    assert segments_kept([800, 200], 100) == 0
    assert segments_kept([5 ** k for k in range(12, 2, -1)], 1) == MAX_SEGMENTS - 1


def rows_copied(commits: int, policy) -> tuple[int, int]:
    """Rows written by `commits` commits of one row each under a merge policy, and the most segments."""
    rows, written, most = [], 0, 0
    for _ in range(commits):
        keep = policy(rows, 1)
        rows = rows[:keep] + [sum(rows[keep:]) + 1]
        written, most = written + rows[-1], max(most, len(rows))
    return written, most


def test_a_long_run_of_commits_copies_each_row_a_few_times_not_the_whole_index_every_few_commits():
    written, most = rows_copied(5000, segments_kept)
    assert written < 15 * 5000 and most <= MAX_SEGMENTS - 1
    # The rule before: past 8 segments, everything after the first was merged.
    before = rows_copied(5000, lambda rows, new: 1 if len(rows) + 1 > MAX_SEGMENTS else len(rows))[0]
    assert before > 20 * written


def test_many_commits_keep_few_segments_and_every_row_once(tmp_path):
    folder = tmp_path / "folder"
    write_folder(folder, 64, paragraphs=lambda i: 1)
    store = RecordingStore(tmp_path / "index")
    report = update_index(store, [folder], FakeEmbedder(), CHUNKER, commit_files=1, commit_seconds=0)
    assert report.commits == 64 and report.chunks == 64
    # The rows each commit wrote: its new segment, which holds the segments it took in.
    written = [c.state.segments[-1].rows for c in store.commits]
    assert sum(written) == rows_copied(64, segments_kept)[0]  # the store merges as the policy says
    assert max(len(c.state.segments) for c in store.commits) <= rows_copied(64, segments_kept)[1]
    state = Store(tmp_path / "index").load()
    assert sorted(by_document(state)) == sorted(f"file-{i:04d}.txt" for i in range(64))
    assert abs(state.vectors() - FakeEmbedder().embed([c.text for c in state.chunks])).max() < 1e-5


def test_an_index_built_in_many_commits_ranks_exactly_like_one_built_in_one(tmp_path, changed_folder):
    from rag.index.retrieve import LocalIndex, Retriever

    # The fixture's index was built in one commit; the update adds, edits and deletes in many, with merges.
    many = RecordingStore(tmp_path / "index")
    update_index(many, [changed_folder], FakeEmbedder(), CHUNKER, commit_files=3, commit_seconds=0)
    assert any(c.state.segments[-1].rows > c.chunks for c in many.commits)  # some commits merged segments
    one = Store(tmp_path / "one")
    update_index(one, [changed_folder], FakeEmbedder(), CHUNKER, commit_files=0, commit_seconds=0)
    a, b = many.load(), one.load()
    assert sorted(c.id for c in a.chunks) == sorted(c.id for c in b.chunks)
    assert (a.bm25().n, a.bm25().avg) == (b.bm25().n, pytest.approx(b.bm25().avg, rel=1e-6))
    retrievers = [Retriever(LocalIndex(s), FakeEmbedder()) for s in (a, b)]
    for question in ["harbour board berth 40", "tide tables for week 7", "File 12 in version 2", "berth 99"]:
        hits_a, hits_b = (r.search(question, k=8) for r in retrievers)
        assert [h.chunk.id for h in hits_a] == [h.chunk.id for h in hits_b], question
        assert [h.score for h in hits_a] == pytest.approx([h.score for h in hits_b], rel=1e-5)
        assert [h.lexical for h in hits_a] == pytest.approx([h.lexical for h in hits_b], rel=1e-5)


# --- what the run reports and shows ---------------------------------------------------------------
class SlowEmbedder(FakeEmbedder):
    def embed(self, texts, progress=False):
        time.sleep(0.05)
        return super().embed(texts, progress)


def test_rag_index_json_reports_the_seconds_of_each_stage_and_the_commits(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "folder"
    write_folder(folder, 30)
    embedder = SlowEmbedder()
    real_pipeline = cli._pipeline

    def pipeline(args):
        made = real_pipeline(args)
        made._embedder = embedder
        return made

    # Each stage takes a known least time, so each must show at least that much.
    def slowly(function, seconds):
        return lambda *args, **kwargs: time.sleep(seconds) or function(*args, **kwargs)

    monkeypatch.setattr(cli, "_pipeline", pipeline)
    monkeypatch.setattr(rag.index.indexer, "read_bytes", slowly(rag.index.indexer.read_bytes, 0.01))
    monkeypatch.setattr(rag.index.indexer, "chunk_document", slowly(rag.index.indexer.chunk_document, 0.01))
    monkeypatch.setattr(Store, "write", slowly(Store.write, 0.05))
    monkeypatch.setenv("RAG_COMMIT_FILES", "10")
    assert cli.main(["index", "--json", str(folder)]) == 0
    report = json.loads(capsys.readouterr().out)
    timings = report["timings"]
    assert report["commits"] == 3 and embedder.calls == 3
    assert sorted(timings) == ["chunk", "embed", "read", "write"]
    assert timings["read"] >= 0.3 and timings["chunk"] >= 0.3 and timings["embed"] >= 0.15
    assert timings["write"] >= 0.15 and sum(timings.values()) <= report["seconds"] + 0.01


def test_the_progress_bar_shows_files_chunks_and_chunks_per_second(tmp_path, monkeypatch):
    folder = tmp_path / "folder"
    write_folder(folder, 12)
    err = io.StringIO()
    err.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", err)
    report = update_index(Store(tmp_path / "index"), [folder], FakeEmbedder(), CHUNKER, progress=True)
    last = err.getvalue().split("\r")[-1]
    assert f"12/12 files, {report.chunks} chunks," in last and "chunks/s" in last and "100%" in last
    err.truncate(0)
    update_index(Store(tmp_path / "index"), [folder], FakeEmbedder(), CHUNKER, progress=True)
    assert err.getvalue() == ""  # nothing to read: no bar
