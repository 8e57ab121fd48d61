"""The Documents tab's watch setting (rag/ui/watching.py): the picked collection kept in step with the folder
it was indexed from, by rag/watch.py's real watcher, until the setting is turned off."""

import time

import gradio as gr
import pytest
from conftest import FakeEmbedder, FakeGenerator

from rag.config import Settings
from rag.pipeline import Pipeline
from rag.ui.backend import Backend
from rag.ui.watching import Watchers, own_folders


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the watcher did not sync in time"
        time.sleep(0.1)


@pytest.fixture
def backend(tmp_path, corpus_copy):
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=FakeEmbedder(),
                        generator=FakeGenerator())
    pipeline.index([corpus_copy])
    return Backend(pipeline)


def test_turned_on_the_collection_follows_its_folder_and_turned_off_it_stops(backend, corpus_copy):
    watchers = Watchers(backend)
    ids = lambda: {d["id"] for d in backend.pipeline.documents()}  # noqa: E731
    assert own_folders(backend.pipeline) == [corpus_copy.resolve()]
    assert watchers.set(True) is True and watchers.is_on(None)
    try:
        (corpus_copy / "zorblax.txt").write_text("The Zorblax festival was founded by Edna Pocklington.\n")
        wait_for(lambda: "zorblax.txt" in ids())
        (corpus_copy / "zorblax.txt").unlink()
        wait_for(lambda: "zorblax.txt" not in ids())
    finally:
        assert watchers.set(False) is False
    assert not watchers.is_on(None)
    (corpus_copy / "after.txt").write_text("Written once the setting was off.\n")
    time.sleep(2.5)  # longer than the watcher's debounce and settling
    assert "after.txt" not in ids()


def test_a_collection_with_no_folder_of_its_own_cannot_be_watched(backend):
    with pytest.raises(gr.Error, match="no folder of its own"):
        Watchers(backend).set(True, "fresh")
