"""`rag index --watch`: real files and the real watcher (watchfiles) keep the index in step with a folder.

The watcher runs in a thread over conftest's fake pipeline, with short debounce and settle times; each test
waits for the sync reports it expects. The kill test runs the real `rag index --watch` in a process, kills
it mid-sync with SIGKILL, and starts it again.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager

import pytest
from conftest import ROOT, FakeEmbedder, FakeGenerator

from rag import cli
from rag.config import Settings
from rag.index.collections import read_watch_state
from rag.index.store import Store
from rag.pipeline import Pipeline
from rag.watch import is_temporary, watch_folders

WAIT = 20.0


@pytest.fixture
def pipeline(tmp_path):
    return Pipeline(Settings.load(index_dir=tmp_path / "index", min_relevance=0.05),
                    embedder=FakeEmbedder(), generator=FakeGenerator())


@contextmanager
def watching(pipeline, folder, **options):
    """watch_folders in a thread; yields a function that waits for the next sync's IndexReport."""
    reports: queue.Queue = queue.Queue()
    stop = threading.Event()
    options = {"settle": 0.3, "debounce_ms": 100, "rescan": 60.0, **options}
    thread = threading.Thread(target=watch_folders, args=(pipeline, [folder], stop, reports.put), kwargs=options,
                              daemon=True)
    thread.start()

    def next_report(where=lambda r: True, wait=WAIT):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                report = reports.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if where(report):
                return report
        raise AssertionError("no such sync within the wait")

    try:
        next_report()  # the first sync, at start
        yield next_report
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        assert not thread.is_alive()


def texts(pipeline) -> dict:
    return {d["id"]: d for d in pipeline.documents()}


def test_an_edit_a_rename_and_a_deletion_each_show_in_the_next_search(pipeline, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("The heron festival starts on 3 May in Wexford. " * 20)
    with watching(pipeline, folder) as next_report:
        (folder / "b.txt").write_text("The lantern parade is led by Ines Okafor every autumn. " * 20)
        report = next_report(lambda r: r.added)
        assert report.added == ("b.txt",) and pipeline.search("lantern parade leader")[0].chunk.doc_id == "b.txt"

        (folder / "a.txt").write_text("The heron festival moved to 9 June in Sligo. " * 20)
        report = next_report(lambda r: r.updated)
        assert report.updated == ("a.txt",) and "Sligo" in pipeline.search("heron festival Sligo")[0].chunk.text

        (folder / "b.txt").rename(folder / "parade.txt")
        report = next_report(lambda r: r.added or r.removed)
        assert (report.added, report.removed, report.embedded) == (("parade.txt",), ("b.txt",), 0)
        assert pipeline.search("lantern parade leader")[0].chunk.doc_id == "parade.txt"

        (folder / "a.txt").unlink()
        report = next_report(lambda r: r.removed)
        assert report.removed == ("a.txt",) and set(texts(pipeline)) == {"parade.txt"}


def test_a_file_written_in_pieces_is_indexed_once_when_it_settles(pipeline, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    with watching(pipeline, folder, settle=0.8) as next_report:
        with open(folder / "long.txt", "w") as fh:
            for part in range(5):
                fh.write(f"Part {part} of the minutes records the budget vote. " * 30)
                fh.flush()
                time.sleep(0.25)
        report = next_report(lambda r: r.added or r.updated)
        assert report.added == ("long.txt",) and report.updated == ()
        assert "Part 4" in " ".join(c.text for c in Store(tmp_path / "index").load().chunks)


def test_documents_added_in_the_ui_survive_every_sync(pipeline, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Folder text about the harbour ferry timetable. " * 10)
    pipeline.add_documents([("uploaded.txt", b"An uploaded note about the lighthouse keeper's rota. " * 10)])
    with watching(pipeline, folder) as next_report:
        (folder / "a.txt").unlink()
        report = next_report(lambda r: r.removed)
        assert report.removed == ("a.txt",) and set(texts(pipeline)) == {"uploaded.txt"}


def test_a_deleted_folder_empties_and_its_return_is_indexed_again(pipeline, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Notes on the river survey of 2026. " * 10)
    with watching(pipeline, folder) as next_report:
        shutil.rmtree(folder)
        next_report(lambda r: r.documents == 0)
        folder.mkdir()
        (folder / "b.txt").write_text("Notes on the bridge survey of 2027. " * 10)
        report = next_report(lambda r: r.added)
        assert report.added == ("b.txt",) and set(texts(pipeline)) == {"b.txt"}


def test_without_events_the_folder_is_rescanned_on_a_timer(pipeline, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    with watching(pipeline, folder, rescan=0.5) as next_report:
        began = time.monotonic()
        next_report()
        next_report()
        assert time.monotonic() - began < 5
    state = read_watch_state(tmp_path / "index")
    assert state["folders"] == [str(folder.resolve())] and state["last_sync"] and state["running"] is False


def test_a_folder_holding_the_index_is_not_synced_by_the_syncs_own_writes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Notes on the tram timetable. " * 10)
    pipeline = Pipeline(Settings.load(index_dir=folder / "index"), embedder=FakeEmbedder(), generator=FakeGenerator())
    with watching(pipeline, folder) as next_report:
        with pytest.raises(AssertionError, match="no such sync"):
            next_report(lambda r: True, wait=3.0)


def test_editor_and_download_leftovers_are_not_events():
    assert all(map(is_temporary, ["~$report.docx", ".notes.md.swp", "notes.md~", "x.pdf.part", "#a.txt#",
                                  "film.crdownload", ".~lock.sheet.ods#"]))
    assert not any(map(is_temporary, ["report.docx", "notes.md", "2026.pdf"]))


# --- the real command, killed mid-sync ---------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    import rag.cli
    from rag.index.store import Store

    class SlowEmbedder(FakeEmbedder):
        def embed(self, texts, progress=False):
            time.sleep(0.02)
            return super().embed(texts, progress)

    write = Store.write
    def marked_write(self, *args, **kwargs):
        state = write(self, *args, **kwargs)
        print("committed", flush=True)
        return state
    Store.write = marked_write
    real_pipeline = rag.cli._pipeline
    def fake_pipeline(args):
        pipeline = real_pipeline(args)
        pipeline._embedder = SlowEmbedder()
        return pipeline
    rag.cli._pipeline = fake_pipeline
    sys.exit(rag.cli.main(["index", "--watch", "--json", "--index-dir", sys.argv[1], sys.argv[2]]))
""")


def start_watcher(tmp_path, folder):
    env = {**os.environ, "RAG_COMMIT_FILES": "40",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    return subprocess.Popen([sys.executable, "-c", WORKER.format(tests=str(ROOT / "tests")), str(tmp_path / "index"),
                             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_watcher_killed_mid_sync_catches_up_at_its_next_start_with_nothing_lost_or_doubled(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(200):
        (folder / f"n{i:03d}.txt").write_text(f"Note {i} on the allotment committee's plot {i}. " * 12)
    proc = start_watcher(tmp_path, folder)
    try:
        assert proc.stdout.readline() == "committed\n", proc.stderr.read()  # 40 of 200 files committed
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=WAIT)
    proc = start_watcher(tmp_path, folder)
    try:
        lines = []
        while not lines or not lines[-1].startswith("{"):
            lines.append(proc.stdout.readline())
            assert lines[-1], proc.stderr.read()
        report = json.loads(lines[-1])
        assert cli.main(["collections", "--index-dir", str(tmp_path / "index")]) == 0
        assert f"default watches {folder.resolve()}: last sync " in capsys.readouterr().out.splitlines()[-1]
    finally:
        proc.terminate()  # SIGTERM, as a service manager stops it: the watcher finishes and records that
        proc.wait(timeout=WAIT)
    assert proc.returncode == 0, proc.stderr.read()
    assert read_watch_state(tmp_path / "index")["running"] is False
    assert report["resumed"] is True and report["added"] < 200 and report["documents"] == 200
    state = Store(tmp_path / "index").load()
    assert len(state.documents) == 200 and state.count == sum(d["chunks"] for d in state.documents.values())
    assert len({c.id for c in state.chunks}) == state.count  # no chunk twice


@pytest.mark.parametrize("argv", [["--rebuild"], ["--rescan", "0"]])
def test_watch_options_that_cannot_work_are_one_line_and_exit_2(tmp_path, capsys, argv):
    assert cli.main(["index", str(tmp_path), "--watch", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: error: --watch takes no --rebuild") and err.count("\n") == 1
