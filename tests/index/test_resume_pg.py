"""A long `rag index` into PostgreSQL commits as it goes too: one transaction per commit, and it resumes."""

from __future__ import annotations

import pytest
from conftest import FakeEmbedder
from test_pgstore import cluster, pg_url  # noqa: F401  (fixtures: the session's server, a database per test)
from test_resume import CHUNKER, Crash, CrashingEmbedder, by_document, expected_chunks, paragraph, write_folder

from rag.index.indexer import update_index
from rag.index.pgstore import PgStore
from rag.index.store import Store

pytestmark = pytest.mark.integration  # a real PostgreSQL server


def test_a_crashed_run_into_postgres_keeps_whole_documents_and_the_next_embeds_only_the_rest(
        tmp_path, pg_url):  # noqa: F811 (the fixture imported above)
    folder = tmp_path / "folder"
    write_folder(folder, 40)
    store = PgStore(pg_url)
    update_index(store, [folder], FakeEmbedder(), CHUNKER, hnsw_threshold=10)
    old = store.load()
    old_chunks = by_document(old)
    old.close()
    write_folder(folder, 30, version=2)
    for i in range(35, 40):
        (folder / f"file-{i:04d}.txt").unlink()
    for i in range(40, 45):
        (folder / f"file-{i:04d}.txt").write_text(paragraph(i, 2), encoding="utf-8")
    update_index(Store(tmp_path / "local"), [folder], FakeEmbedder(), CHUNKER)

    with pytest.raises(Crash):
        update_index(store, [folder], CrashingEmbedder(at=3), CHUNKER, hnsw_threshold=10, commit_files=10,
                     commit_seconds=0)
    index = store.load()
    held = by_document(index)
    assert index.manifest["partial"] is True and index.manifest["count"] == len(index.chunks())
    new = {f"file-{i:04d}.txt" for i in range(20)}
    for doc_id in index.documents:
        assert held[doc_id] == (expected_chunks(folder / doc_id, doc_id) if doc_id in new else old_chunks[doc_id])
    assert set(index.documents) == set(old_chunks)  # the deleted files are dropped by the last commit
    index.close()

    embedder = FakeEmbedder()
    report = update_index(store, [folder], embedder, CHUNKER, hnsw_threshold=10, commit_files=10, commit_seconds=0)
    left = [f"file-{i:04d}.txt" for i in [*range(20, 30), *range(40, 45)]]  # 30-34 are unchanged
    assert report.resumed and report.commits == 2
    assert report.embedded == embedder.embedded == sum(len(expected_chunks(folder / d, d)) for d in left)
    index = store.load()
    assert "partial" not in index.manifest and index.manifest["index_type"] == "hnsw"
    assert by_document(index) == by_document(Store(tmp_path / "local").load())
    index.close()


def test_an_intermediate_commit_into_postgres_leaves_the_hnsw_index_to_the_last_one(
        tmp_path, pg_url, monkeypatch):  # noqa: F811
    folder = tmp_path / "folder"
    write_folder(folder, 30)
    store = PgStore(pg_url)
    kinds = []
    write = PgStore.write

    def recording_write(self, chunks, vectors, manifest, *args, **kwargs):
        write(self, chunks, vectors, manifest, *args, **kwargs)
        with self._connection() as conn:
            kinds.append(conn.execute("SELECT to_regclass('rag_chunks_hnsw') IS NOT NULL").fetchone()[0])

    monkeypatch.setattr(PgStore, "write", recording_write)
    update_index(store, [folder], FakeEmbedder(), CHUNKER, hnsw_threshold=10, commit_files=10, commit_seconds=0)
    assert kinds == [False, False, True]
