import json

import pytest
from conftest import FakeEmbedder

from rag.errors import IndexBusy, IndexMismatch, IndexMissing
from rag.index.indexer import update_index
from rag.index.store import Store

CHUNKER = {"size": 500, "overlap": 100}


def index(store, root, embedder=None, **kw):
    return update_index(store, [root], embedder or FakeEmbedder(), CHUNKER, **kw)


def test_reindex_of_unchanged_corpus_embeds_nothing(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    first = index(store, corpus_copy)
    assert len(first.added) == 2 and first.embedded == first.chunks > 10
    embedder = FakeEmbedder()
    second = index(store, corpus_copy, embedder)
    assert (second.added, second.updated, second.removed, second.unchanged) == ((), (), (), 2)
    assert second.embedded == 0 and embedder.embedded == 0
    assert second.chunks == first.chunks


def test_changed_file_is_reembedded_and_deleted_file_removed(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    index(store, corpus_copy)
    xi = corpus_copy / "xi-global-ai-collaboration.txt"
    xi.write_text(xi.read_text() + "\n\nA new closing paragraph about governance.")
    (corpus_copy / "global-backing-for-china-ai-governance.txt").unlink()
    report = index(store, corpus_copy)
    assert report.updated == ("xi-global-ai-collaboration.txt",)
    assert report.removed == ("global-backing-for-china-ai-governance.txt",)
    state = store.load()
    assert {c.doc_id for c in state.chunks} == {"xi-global-ai-collaboration.txt"}
    assert any("new closing paragraph" in c.text for c in state.chunks)
    assert len(state.vectors()) == len(state.chunks) == state.manifest["count"]


def test_kept_vectors_stay_aligned_with_their_chunks(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    index(store, corpus_copy)
    (corpus_copy / "new.txt").write_text("Penguins live in Antarctica and eat krill.")
    index(store, corpus_copy)
    state = store.load()
    expected = FakeEmbedder().embed([c.text for c in state.chunks])
    assert abs(state.vectors() - expected).max() < 1e-5


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexMissing, match="rag index"):
        Store(tmp_path / "nothing").load()


def test_index_made_with_other_chunker_or_embedder_names_the_fix(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    index(store, corpus_copy)
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        update_index(store, [corpus_copy], FakeEmbedder(), {"size": 300, "overlap": 0})
    other = FakeEmbedder()
    other.name = "another-model"
    with pytest.raises(IndexMismatch, match="another-model.*--rebuild"):
        update_index(store, [corpus_copy], other, CHUNKER)
    rebuilt = update_index(store, [corpus_copy], other, CHUNKER, rebuild=True)
    assert store.load().manifest["embedder"] == "another-model" and rebuilt.embedded == rebuilt.chunks


def test_crash_during_write_leaves_the_previous_index_loadable(tmp_path, corpus_copy, monkeypatch):
    store = Store(tmp_path / "idx")
    index(store, corpus_copy)
    before = [c.id for c in store.load().chunks]
    (corpus_copy / "extra.txt").write_text("Something entirely new about the Bletchley summit.")

    def crash(*a, **k):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("rag.index.store._fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        index(store, corpus_copy)
    monkeypatch.undo()
    assert [c.id for c in store.load().chunks] == before
    report = index(store, corpus_copy)
    assert report.added == ("extra.txt",)
    assert len(list((tmp_path / "idx").glob("gen-*"))) == 2


@pytest.mark.parametrize("damage", ["truncate_faiss", "edit_manifest", "drop_chunk", "pointer"])
def test_corrupted_index_is_refused_with_the_fix(tmp_path, corpus_copy, damage):
    store = Store(tmp_path / "idx")
    index(store, corpus_copy)
    state = store.load()
    gen, segment = state.directory, state.segments[0].path
    if damage == "truncate_faiss":
        data = (segment / "index.faiss").read_bytes()
        (segment / "index.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "edit_manifest":
        manifest = json.loads((gen / "manifest.json").read_text())
        manifest["dim"] = 32
        (gen / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "drop_chunk":
        lines = (segment / "chunks.jsonl").read_text().splitlines()
        (segment / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    else:
        (tmp_path / "idx" / "CURRENT").write_text("garbage")
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        store.load()


def test_a_second_writer_fails_clearly_while_the_first_holds_the_lock(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    with store.lock():
        with pytest.raises(IndexBusy, match="another process is writing"):
            index(store, corpus_copy, lock_timeout=0.2)
    assert index(store, corpus_copy).chunks > 0


def test_unreadable_copy_of_an_indexed_file_keeps_its_old_chunks(tmp_path, corpus_copy):
    store = Store(tmp_path / "idx")
    first = index(store, corpus_copy)
    (corpus_copy / "xi-global-ai-collaboration.txt").write_bytes(b"\x00\x01\x02 binary now")
    report = index(store, corpus_copy)
    assert [s.reason for s in report.skipped] == ["binary data, not text"]
    assert report.chunks == first.chunks and report.removed == ()


def test_index_files_are_readable_by_their_owner_only(tmp_path, corpus_copy):
    directory = tmp_path / "idx"
    directory.mkdir(mode=0o755)
    index(Store(directory), corpus_copy)
    modes = {p.relative_to(directory).as_posix(): p.stat().st_mode & 0o777
             for p in [directory, *directory.rglob("*")]}
    assert modes["."] == 0o700 and modes["CURRENT"] == 0o600
    assert {m for name, m in modes.items() if name.startswith(("gen-", "seg-")) and "/" not in name} == {0o700}
    assert {m for name, m in modes.items() if "/" in name} == {0o600}
