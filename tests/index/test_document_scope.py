"""Retrieval restricted to chosen documents happens inside the store (FAISS id selection, a WHERE in
PostgreSQL), so a small document gets its k passages from a collection where other documents rank higher."""

from __future__ import annotations

import pytest
from conftest import FakeEmbedder
from test_pgstore import cluster, pg_url  # noqa: F401  (the PostgreSQL server fixtures)

from rag.index.indexer import update_index
from rag.index.pgstore import CANDIDATES, PgStore, scoped
from rag.index.retrieve import LocalIndex, Retriever
from rag.index.store import Store

CHUNKER = {"size": 500, "overlap": 100}
QUERY = "water tariff rise river board"


def write_collection(folder):
    """60 long documents that match the query well, and one small one that matches it a little."""
    folder.mkdir()
    for i in range(60):
        (folder / f"board-{i:02d}.txt").write_text(" ".join(
            f"The river board set the water tariff rise number {i}-{j} for the river basin." for j in range(40)))
    (folder / "small.txt").write_text(" ".join(
        f"Paragraph {j} of the small note mentions a tariff once, among gardens and bicycles and tea."
        for j in range(16)))


def search_both_ways(index, k=3):
    retriever = Retriever(index, FakeEmbedder())
    return retriever.search(QUERY, k), retriever.search(QUERY, k, documents=frozenset({"small.txt"}))


def check(everywhere, chosen):
    assert "small.txt" not in {h.chunk.doc_id for h in everywhere}  # filtering the top k after would find none
    assert len(chosen) == 3 and {h.chunk.doc_id for h in chosen} == {"small.txt"}
    assert [h.rank for h in chosen] == [1, 2, 3] and chosen[0].score >= chosen[-1].score


def test_faiss_finds_k_passages_of_a_small_chosen_document(tmp_path):
    write_collection(tmp_path / "docs")
    store = Store(tmp_path / "index")
    update_index(store, [tmp_path / "docs"], FakeEmbedder(), CHUNKER)
    check(*search_both_ways(LocalIndex(store.load())))


def test_faiss_scoping_follows_an_update_that_moved_the_document_to_a_new_segment(tmp_path):
    write_collection(tmp_path / "docs")
    store = Store(tmp_path / "index")
    update_index(store, [tmp_path / "docs"], FakeEmbedder(), CHUNKER)
    (tmp_path / "docs" / "small.txt").write_text((tmp_path / "docs" / "small.txt").read_text() + " A tariff.")
    update_index(store, [tmp_path / "docs"], FakeEmbedder(), CHUNKER)
    state = store.load()
    assert len(state.segments) == 2
    check(*search_both_ways(LocalIndex(state)))


def test_the_postgres_query_is_restricted_in_both_rankings():
    text = scoped(CANDIDATES)
    assert text.count("doc_id = ANY(%(docs)s)") == 2 and CANDIDATES.count("doc_id") == 1


def check_balanced(retriever, k=4):
    """Two chosen documents, a large one that matches the query everywhere and a small one that matches it
    a little: each gets half of the k, best first overall."""
    hits = retriever.search(QUERY, k, documents=frozenset({"board-00.txt", "small.txt"}))
    assert [h.chunk.doc_id for h in hits].count("small.txt") == 2 and len(hits) == k
    assert {h.chunk.doc_id for h in hits} == {"board-00.txt", "small.txt"}
    assert [h.rank for h in hits] == [1, 2, 3, 4] and [h.score for h in hits] == sorted(
        (h.score for h in hits), reverse=True)
    # Three documents and k=4: one each, and the fourth place to the best of the rest.
    three = retriever.search(QUERY, 4, documents=frozenset({"board-00.txt", "board-01.txt", "small.txt"}))
    assert {h.chunk.doc_id for h in three} == {"board-00.txt", "board-01.txt", "small.txt"}
    # More documents than k: no share to give, the best k of them as before.
    many = frozenset({f"board-{i:02d}.txt" for i in range(5)} | {"small.txt"})
    assert "small.txt" not in {h.chunk.doc_id for h in retriever.search(QUERY, 4, documents=many)}


def test_faiss_gives_each_of_two_chosen_documents_its_share_of_the_k(tmp_path):
    write_collection(tmp_path / "docs")
    store = Store(tmp_path / "index")
    update_index(store, [tmp_path / "docs"], FakeEmbedder(), CHUNKER)
    check_balanced(Retriever(LocalIndex(store.load()), FakeEmbedder()))


@pytest.mark.integration
def test_postgres_finds_k_passages_of_a_small_chosen_document(tmp_path, pg_url):  # noqa: F811
    write_collection(tmp_path / "docs")
    store = PgStore(pg_url)
    update_index(store, [tmp_path / "docs"], FakeEmbedder(), CHUNKER)
    index = store.load()
    try:
        check(*search_both_ways(index))
        check_balanced(Retriever(index, FakeEmbedder()))
    finally:
        index.close()

