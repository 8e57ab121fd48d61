"""Named collections in PostgreSQL: each in its own schema, never reading or writing another's tables."""

from __future__ import annotations

import psycopg
import pytest
from conftest import CORPUS, FakeEmbedder, FakeGenerator
from test_collections import ASK_VANTOR, ASK_ZORBLAX, VANTOR, ZORBLAX, folder_with
from test_pgstore import cluster, pg_url  # noqa: F401 (fixtures)

from rag.config import Settings
from rag.errors import IndexMissing
from rag.index import collections
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration  # a real PostgreSQL server


def pg_pipeline(url: str, tmp_path, collection: str = "", embedder=None) -> Pipeline:
    settings = Settings.load(index_dir=tmp_path / "index", vector_store="postgres", pg_url=url,
                             collection=collection, min_relevance=0.05)
    return Pipeline(settings, embedder=embedder or FakeEmbedder(), generator=FakeGenerator())


def public_documents(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT DISTINCT doc_id FROM public.rag_chunks")}


def test_collections_in_postgres_live_in_their_own_schemas_and_never_touch_the_default(pg_url, tmp_path):  # noqa: F811
    default = pg_pipeline(pg_url, tmp_path)
    default.index([CORPUS])
    before = public_documents(pg_url)
    # With the default's tables on the search_path, a collection with no schema yet has no index, not the default's.
    with pytest.raises(IndexMissing):
        pg_pipeline(pg_url, tmp_path, "alpha").search(ASK_ZORBLAX)
    embedder = FakeEmbedder()
    pg_pipeline(pg_url, tmp_path, "alpha", embedder).index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    pg_pipeline(pg_url, tmp_path, "beta", embedder).index([folder_with(tmp_path, "vantor.txt", VANTOR)])
    assert public_documents(pg_url) == before

    assert {h.chunk.doc_id for h in pg_pipeline(pg_url, tmp_path, "alpha").search(ASK_VANTOR, 10)} == {"zorblax.txt"}
    assert {h.chunk.doc_id for h in pg_pipeline(pg_url, tmp_path, "beta").search(ASK_ZORBLAX, 10)} == {"vantor.txt"}
    assert not {"zorblax.txt", "vantor.txt"} & {h.chunk.doc_id for h in default.search(ASK_ZORBLAX, 50)}

    settings = default.settings
    rows = {r.name: r for r in collections.list_collections(settings)}
    assert list(rows) == ["default", "alpha", "beta"]
    assert rows["alpha"].documents == rows["beta"].documents == 1 and rows["alpha"].size_bytes > 0
    assert rows["default"].documents == len(before) and rows["default"].size_bytes > rows["alpha"].size_bytes

    collections.remove_collection(settings, "alpha")
    assert [r.name for r in collections.list_collections(settings)] == ["default", "beta"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'rag_alpha'").fetchone()[0] == 0
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                            "WHERE extname = 'vector'").fetchone()[0] == "public"
    assert public_documents(pg_url) == before
    assert {h.chunk.doc_id for h in pg_pipeline(pg_url, tmp_path, "beta").search(ASK_VANTOR, 3)} == {"vantor.txt"}
    # Re-indexed from nothing, the collection is back in a schema of its own.
    pg_pipeline(pg_url, tmp_path, "alpha").index([tmp_path / "zorblax"])
    assert {h.chunk.doc_id for h in pg_pipeline(pg_url, tmp_path, "alpha").search(ASK_ZORBLAX, 5)} == {"zorblax.txt"}


def test_a_collection_made_before_the_default_leaves_the_default_empty(pg_url, tmp_path):  # noqa: F811
    pg_pipeline(pg_url, tmp_path, "alpha").index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    assert not pg_pipeline(pg_url, tmp_path).store.exists()
    rows = collections.list_collections(pg_pipeline(pg_url, tmp_path).settings)
    assert [(r.name, r.documents) for r in rows] == [("default", 0), ("alpha", 1)]
