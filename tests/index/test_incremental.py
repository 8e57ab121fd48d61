"""The embedded index updates in place: persisted BM25, tombstones, small segments, same rankings as before."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CORPUS, ROOT, FakeEmbedder

import rag.errors
import rag.index.indexer
import rag.index.lexical
from rag.index.indexer import update_index
from rag.index.retrieve import LocalIndex, Retriever
from rag.index.store import Store
from rag.text import content_terms

CHUNKER = {"size": 500, "overlap": 100}
QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "eval" / "dataset.jsonl").read_text().splitlines()]


def reference_bm25_scores(texts: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """The BM25 that rag/retrieve.py rebuilt at every load before scores were persisted, as the oracle."""
    from scipy.sparse import csr_matrix

    vocab: dict[str, int] = {}
    rows, cols, tfs, lengths = [], [], [], []
    for col, text in enumerate(texts):
        counts = Counter(content_terms(text))
        lengths.append(sum(counts.values()))
        for term, tf in counts.items():
            rows.append(vocab.setdefault(term, len(vocab)))
            cols.append(col)
            tfs.append(tf)
    n, tf = len(texts), np.asarray(tfs, dtype=np.float32)
    length = np.asarray(lengths, dtype=np.float32)
    avg = float(length.mean())
    df = np.bincount(np.asarray(rows, dtype=np.int64), minlength=len(vocab))
    idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
    col_idx, row_idx = np.asarray(cols, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    norm = k1 * (1 - b + b * length[col_idx] / max(avg, 1e-9))
    matrix = csr_matrix((idf[row_idx] * tf * (k1 + 1) / (tf + norm), (row_idx, col_idx)), shape=(len(vocab), n))
    ids = sorted({vocab[t] for t in content_terms(query) if t in vocab})
    return np.asarray(matrix[ids].sum(axis=0)).ravel() if ids else np.zeros(n, dtype=np.float32)


def build(store: Store, root, **kw):
    return update_index(store, [root], FakeEmbedder(), CHUNKER, **kw)


def top_ids(scores: np.ndarray, k: int = 10) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


@pytest.fixture
def big_corpus(tmp_path):
    """The eval corpus plus thirty notes, so updates touch a small share of the rows."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    for i in range(30):
        (corpus / f"note-{i:02d}.txt").write_text(
            f"Note {i}. The committee on {['helium', 'comets', 'debris'][i % 3]} met on day {i} and approved "
            f"item {i * 7}.\n\nDelegates from {i + 2} nations discussed AI governance and the Bletchley "
            f"summit at meeting {i}.", encoding="utf-8")
    return corpus


def test_persisted_bm25_scores_match_the_in_memory_bm25_on_the_corpus(tmp_path):
    store = Store(tmp_path / "idx")
    build(store, CORPUS)
    state = store.load()
    texts = [c.text for c in state.chunks]
    bm25 = state.bm25()
    for question in QUESTIONS:
        expected, found = reference_bm25_scores(texts, question), bm25.scores(question)
        assert np.array_equal(found, expected), question
        assert top_ids(found) == top_ids(expected)


def test_loading_the_index_tokenizes_no_chunk(tmp_path, monkeypatch):
    store = Store(tmp_path / "idx")
    build(store, CORPUS)
    calls = []
    monkeypatch.setattr(rag.index.lexical, "content_terms", lambda text: calls.append(text) or content_terms(text))
    bm25 = store.load().bm25()
    assert calls == []
    assert bm25.scores("Bletchley Declaration").max() > 0 and calls == ["Bletchley Declaration"]


def test_an_incremental_update_ranks_exactly_like_a_full_rebuild(tmp_path, big_corpus):
    incremental, full = Store(tmp_path / "incremental"), Store(tmp_path / "full")
    build(incremental, big_corpus)
    (big_corpus / "note-03.txt").write_text("Note 3 was rewritten: the Bletchley summit moved to day 99.")
    (big_corpus / "note-07.txt").unlink()
    (big_corpus / "note-99.txt").write_text("A new note about AI governance in 28 nations.")
    report = build(incremental, big_corpus)
    assert (report.added, report.updated, report.removed) == (("note-99.txt",), ("note-03.txt",), ("note-07.txt",))
    build(full, big_corpus, rebuild=True)
    a, b = incremental.load(), full.load()
    assert len(a.segments) == 2 and len(a.deleted) == 2 and len(b.segments) == 1 and len(b.deleted) == 0
    assert sorted(c.id for c in a.chunks) == sorted(c.id for c in b.chunks)
    bm25_a, bm25_b = a.bm25(), b.bm25()
    assert (bm25_a.n, bm25_a.avg) == (bm25_b.n, pytest.approx(bm25_b.avg, rel=1e-6))
    retrievers = [Retriever(LocalIndex(s), FakeEmbedder()) for s in (a, b)]
    for question in QUESTIONS + ["Where did the Bletchley summit move?", "AI governance in 28 nations"]:
        hits_a, hits_b = (r.search(question, k=5) for r in retrievers)
        assert [h.chunk.id for h in hits_a] == [h.chunk.id for h in hits_b], question
        assert [h.score for h in hits_a] == pytest.approx([h.score for h in hits_b], rel=1e-5)


def test_a_one_file_update_writes_one_small_segment_and_leaves_the_base_untouched(tmp_path, big_corpus):
    store = Store(tmp_path / "idx")
    build(store, big_corpus)
    base = store.load().segments[0].path
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in base.iterdir()}
    old_rows = store.load().documents["note-05.txt"]["chunks"]
    (big_corpus / "note-05.txt").write_text("Note 5, edited: the committee approved item 12345.")
    embedder = FakeEmbedder()
    report = update_index(store, [big_corpus], embedder, CHUNKER)
    state = store.load()
    assert report.embedded == embedder.embedded == 1
    assert [s.rows for s in state.segments[1:]] == [1] and len(state.deleted) == old_rows
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in base.iterdir()} == before
    assert state.documents["note-05.txt"]["segment"] == state.segments[1].name
    hits = Retriever(LocalIndex(state), FakeEmbedder()).search("committee approved item 12345", k=3)
    assert hits[0].chunk.text == "Note 5, edited: the committee approved item 12345."
    assert all("item 35." not in h.chunk.text for h in hits)  # the old text of note 5 is gone


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_deleted_rows_never_come_back_from_dense_or_lexical_search(tmp_path, big_corpus, kind):
    store = Store(tmp_path / "idx")
    threshold = 0 if kind == "hnsw" else 10**9
    update_index(store, [big_corpus], FakeEmbedder(), CHUNKER, hnsw_threshold=threshold)
    gone = (big_corpus / "note-11.txt").read_text()
    (big_corpus / "note-11.txt").unlink()
    update_index(store, [big_corpus], FakeEmbedder(), CHUNKER, hnsw_threshold=threshold)
    state = store.load()
    assert state.manifest["index_type"] == kind and len(state.deleted) == 1
    dense = state.search(FakeEmbedder().embed([gone])[0], state.count)
    assert len(dense) == state.count and int(state.deleted[0]) not in dense
    assert state.bm25().scores(gone)[state.deleted[0]] == 0
    hits = Retriever(LocalIndex(state), FakeEmbedder()).search(gone, k=state.count)
    assert len(hits) == state.count and all(h.chunk.doc_id != "note-11.txt" for h in hits)


def test_an_hnsw_segment_built_with_another_efsearch_searches_with_the_products(tmp_path):
    import faiss

    from rag.index.segments import EF_SEARCH, make_faiss_index, read_faiss

    vectors = FakeEmbedder().embed([f"note {i}" for i in range(200)])
    index = make_faiss_index(vectors, threshold=100)
    assert index.hnsw.efSearch == EF_SEARCH  # what a new index is built with
    index.hnsw.efSearch = 16  # as in an index written before EF_SEARCH changed
    faiss.write_index(index, str(tmp_path / "old.faiss"))
    assert faiss.read_index(str(tmp_path / "old.faiss")).hnsw.efSearch == 16
    assert read_faiss(tmp_path / "old.faiss").hnsw.efSearch == EF_SEARCH


def test_past_the_deleted_limit_everything_is_rewritten_into_one_segment(tmp_path, big_corpus):
    store = Store(tmp_path / "idx")
    build(store, big_corpus)
    for i in range(12):
        (big_corpus / f"note-{i:02d}.txt").unlink()
    build(store, big_corpus)
    state = store.load()
    assert len(state.segments) == 1 and len(state.deleted) == 0
    assert {c.doc_id for c in state.chunks} == set(state.documents)
    # The previous generation's segment stays for readers loading it now, until the next write.
    assert sorted(p.name for p in (tmp_path / "idx").glob("seg-*")) == ["seg-000001", "seg-000002"]
    (big_corpus / "note-29.txt").unlink()
    build(store, big_corpus)
    assert sorted(p.name for p in (tmp_path / "idx").glob("seg-*")) == ["seg-000002"]


def test_many_small_updates_are_merged_and_stay_searchable(tmp_path, big_corpus):
    store = Store(tmp_path / "idx")
    build(store, big_corpus)
    for i in range(12):
        (big_corpus / f"update-{i:02d}.txt").write_text(f"Update number {i} mentions the zorblax{i} treaty.")
        build(store, big_corpus)
        assert len(store.load().segments) <= 8
    state = store.load()
    assert state.count == len(state.chunks) == state.manifest["count"]
    assert len(state.vectors()) == state.count
    retriever = Retriever(LocalIndex(state), FakeEmbedder())
    for i in range(12):
        assert retriever.search(f"zorblax{i} treaty", k=1)[0].chunk.doc_id == f"update-{i:02d}.txt"
    expected = FakeEmbedder().embed([c.text for c in state.chunks])
    assert abs(state.vectors() - expected).max() < 1e-5


def test_an_old_unchanged_file_is_not_read_again(tmp_path, big_corpus, monkeypatch):
    store = Store(tmp_path / "idx")
    old = 1_600_000_000_000_000_000
    for path in big_corpus.iterdir():
        os.utime(path, ns=(old, old))
    build(store, big_corpus)
    fresh = big_corpus / "note-01.txt"
    fresh.write_text("Fresh text, written just now.")
    # The indexer's clock stands still half the margin after the write, however long the runs take.
    now = fresh.stat().st_mtime_ns + rag.index.indexer.STAT_MARGIN_NS // 2
    monkeypatch.setattr(rag.index.indexer, "time", SimpleNamespace(time_ns=lambda: now, perf_counter=time.perf_counter))
    read = []
    real = rag.index.indexer.read_bytes
    monkeypatch.setattr(rag.index.indexer, "read_bytes", lambda path: read.append(path.name) or real(path))
    report = build(store, big_corpus)
    assert read == ["note-01.txt"] and report.updated == ("note-01.txt",)
    # A file changed within the margin keeps being read (its stat is not trusted yet).
    read.clear()
    report = build(store, big_corpus)
    assert read == ["note-01.txt"] and report.updated == ()


def test_a_same_size_edit_of_an_old_file_is_seen(tmp_path, big_corpus):
    store = Store(tmp_path / "idx")
    path = big_corpus / "note-02.txt"
    old = 1_600_000_000_000_000_000
    os.utime(path, ns=(old, old))
    build(store, big_corpus)
    text = path.read_text()
    path.write_text(text.replace("day 2 ", "day 8 "))
    assert len(path.read_text()) == len(text)
    assert build(store, big_corpus).updated == ("note-02.txt",)


def test_an_index_of_format_1_is_upgraded_by_rag_index_without_embedding_again(tmp_path, corpus_copy):
    import faiss

    from rag.index.store import _file_sha256, _sha256

    # The layout before segments: one generation with one FAISS file and every chunk.
    reference = build(Store(tmp_path / "reference"), corpus_copy).state
    gen = tmp_path / "old" / "gen-000001"
    gen.mkdir(parents=True)
    index = faiss.IndexFlatIP(FakeEmbedder.dim)
    index.add(reference.vectors())
    faiss.write_index(index, str(gen / "index.faiss"))
    (gen / "chunks.jsonl").write_text("".join(json.dumps(c.to_dict()) + "\n" for c in reference.chunks))
    documents = {d: {k: v for k, v in info.items() if k in ("path", "sha256", "chunks", "pages")}
                 for d, info in reference.documents.items()}
    manifest = {"embedder": FakeEmbedder.name, "dim": FakeEmbedder.dim, "chunker": CHUNKER, "roots": [],
                "excluded": [], "documents": documents, "format": 1, "count": reference.count,
                "index_type": "flat", "files": {n: _file_sha256(gen / n) for n in ("index.faiss", "chunks.jsonl")}}
    (gen / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "old" / "CURRENT").write_text(f"gen-000001 {_sha256((gen / 'manifest.json').read_bytes())}\n")
    store = Store(tmp_path / "old")
    with pytest.raises(rag.errors.IndexMismatch, match="format 1; `rag index` upgrades it"):
        store.load()
    embedder = FakeEmbedder()
    report = update_index(store, [corpus_copy], embedder, CHUNKER)
    assert (report.embedded, embedder.embedded, report.unchanged) == (0, 0, 2)
    state = store.load()
    assert [c.id for c in state.chunks] == [c.id for c in reference.chunks]
    assert np.array_equal(state.vectors(), reference.vectors())
    assert [h.chunk.id for h in Retriever(LocalIndex(state), FakeEmbedder()).search("Bletchley Declaration")] == \
        [h.chunk.id for h in Retriever(LocalIndex(reference), FakeEmbedder()).search("Bletchley Declaration")]
