"""The on-disk store of prefix KV states (rag/answer/prefix_store.py), without a model."""

import os

from rag.answer.prefix_store import MAGIC, PrefixStore


def test_a_state_comes_back_as_written_under_its_model_and_tokens_only(tmp_path):
    store = PrefixStore(tmp_path, "model-a n_ctx=2048")
    store.save((1, 2, 3), b"kv" * 1000)
    assert store.load((1, 2, 3)) == b"kv" * 1000
    assert store.load((1, 2)) is None and store.load((1, 2, 3, 4)) is None
    assert PrefixStore(tmp_path, "model-a n_ctx=4096").load((1, 2, 3)) is None
    assert PrefixStore(tmp_path, "model-b n_ctx=2048").load((1, 2, 3)) is None
    assert not list(tmp_path.glob("*.part"))


def test_a_torn_or_altered_file_is_deleted_not_returned(tmp_path):
    store = PrefixStore(tmp_path, "m")
    for damage in (lambda b: b[:-1], lambda b: b[:-10] + b"x" * 10, lambda b: b"other" + b[5:]):
        store.save((7,), b"state" * 100)
        path = store.file((7,))
        assert path.read_bytes().startswith(MAGIC)
        path.write_bytes(damage(path.read_bytes()))
        assert store.load((7,)) is None
        assert not path.exists()


def test_the_least_recently_used_states_go_first_past_the_limit(tmp_path):
    store = PrefixStore(tmp_path, "m")
    for n in range(4):
        store.save((n,), bytes(1000))
        os.utime(store.file((n,)), (1000 + n, 1000 + n))
    assert store.load((0,)) is not None  # used now: the newest
    store.prune(limit=2 * 1100)
    assert [n for n in range(4) if store.file((n,)).exists()] == [0, 3]


def test_turned_off_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_PREFIX_CACHE", "0")
    assert PrefixStore.for_model(tmp_path / "any.gguf", 2048) is None


def test_an_unwritable_folder_is_left_alone(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    store = PrefixStore(blocked / "prefixes", "m")
    store.save((1,), b"x")  # no error: the next process evaluates the prefix, as before
    assert store.load((1,)) is None
