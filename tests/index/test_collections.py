"""Named collections: each its own index; naming, listing and removal; the default keeps today's layout."""

from __future__ import annotations

import json

import pytest
from conftest import CORPUS, FakeEmbedder, FakeGenerator

from rag import cli
from rag.config import PROJECT_ROOT, Settings
from rag.errors import BadInput
from rag.index import collections
from rag.pipeline import Pipeline

ZORBLAX = ("The Zorblax festival was founded in 1874 by the baker Edna Pocklington. The festival is held every "
           "spring in the town of Quillmere to celebrate the first strawberry harvest of the valley.")
VANTOR = ("The Vantor lighthouse was built in 1902 by the engineer Tomas Halvard. It stands on the northern cliff "
          "of Brindle Island, and its lamp can be seen from forty kilometres away at sea.")
ASK_ZORBLAX = "Who founded the Zorblax festival?"
ASK_VANTOR = "Who built the Vantor lighthouse?"


def folder_with(tmp_path, name: str, text: str):
    folder = tmp_path / name.split(".")[0]
    folder.mkdir()
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def fake_pipeline_for(index_dir, collection: str = "", embedder=None, generator=None) -> Pipeline:
    settings = Settings.load(index_dir=index_dir, collection=collection, min_relevance=0.05, min_coverage=0.3)
    return Pipeline(settings, embedder=embedder or FakeEmbedder(), generator=generator or FakeGenerator())


@pytest.fixture
def two_collections(tmp_path):
    """A default collection over the corpus, and collections "alpha" (Zorblax) and "beta" (Vantor)."""
    index_dir = tmp_path / "index"
    embedder = FakeEmbedder()
    fake_pipeline_for(index_dir, embedder=embedder).index([CORPUS])
    fake_pipeline_for(index_dir, "alpha", embedder).index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    fake_pipeline_for(index_dir, "beta", embedder).index([folder_with(tmp_path, "vantor.txt", VANTOR)])
    return index_dir


@pytest.mark.parametrize("name", ["papers", "a", "team-2024_notes", "x" * 32])
def test_a_short_lowercase_slug_is_a_collection_name(name):
    assert collections.check_name(name) == name


@pytest.mark.parametrize("name", ["", "default", "Default", " default "])
def test_empty_and_default_both_name_the_default_collection(name):
    assert collections.check_name(name) == ""
    assert collections.display_name(name) == "default"


@pytest.mark.parametrize("name", ["../etc", "a/b", "Papers", "-x", "_x", ".hidden", "a b", "x" * 33, "ü", "a\nb"])
def test_a_name_that_is_no_safe_slug_is_refused_in_one_line(name):
    with pytest.raises(BadInput) as exc:
        collections.check_name(name)
    assert "\n" not in str(exc.value) and "collection name" in str(exc.value)


def test_the_default_collection_is_the_index_dir_and_a_named_one_lives_under_collections(tmp_path):
    s = Settings.load(index_dir=tmp_path / "index")
    assert collections.collection_dir(s) == tmp_path / "index"
    assert collections.collection_dir(s.replace(collection="alpha")) == tmp_path / "index" / "collections" / "alpha"
    assert collections.pg_schema("alpha") == "rag_alpha" and collections.pg_schema("") == ""


def test_each_collection_retrieves_only_its_own_documents(two_collections):
    alpha = fake_pipeline_for(two_collections, "alpha")
    beta = fake_pipeline_for(two_collections, "beta")
    default = fake_pipeline_for(two_collections)
    assert {h.chunk.doc_id for h in alpha.search(ASK_VANTOR, 10)} == {"zorblax.txt"}
    assert {h.chunk.doc_id for h in beta.search(ASK_ZORBLAX, 10)} == {"vantor.txt"}
    assert {h.chunk.doc_id for h in default.search(ASK_ZORBLAX, 50)} == {d["id"] for d in default.documents()}
    assert not {"zorblax.txt", "vantor.txt"} & {d["id"] for d in default.documents()}
    assert [d["id"] for d in alpha.documents()] == ["zorblax.txt"]


def test_collections_are_listed_with_documents_chunks_size_and_last_indexing(two_collections):
    rows = {r.name: r for r in collections.list_collections(Settings.load(index_dir=two_collections))}
    assert list(rows) == ["default", "alpha", "beta"]
    assert rows["alpha"].documents == rows["beta"].documents == 1
    assert rows["default"].documents == len(fake_pipeline_for(two_collections).documents()) >= 2
    assert rows["default"].chunks > 10
    assert rows["alpha"].chunks >= 1 and rows["alpha"].last_indexed.startswith("20")
    # The default's size counts its own files only, not the named collections under it.
    named = sum(f.stat().st_size for f in (two_collections / "collections").rglob("*") if f.is_file())
    default_own = sum(f.stat().st_size for f in two_collections.rglob("*") if f.is_file()) - named
    assert rows["default"].size_bytes == default_own
    assert rows["alpha"].size_bytes == sum(
        f.stat().st_size for f in (two_collections / "collections" / "alpha").rglob("*") if f.is_file())


def test_an_empty_index_dir_lists_only_the_default_collection_with_nothing_in_it(tmp_path):
    rows = collections.list_collections(Settings.load(index_dir=tmp_path / "nothing"))
    assert [(r.name, r.documents, r.chunks, r.last_indexed) for r in rows] == [("default", 0, 0, "")]


def test_removing_a_collection_deletes_its_folder_and_touches_no_other(two_collections):
    settings = Settings.load(index_dir=two_collections)
    before = fake_pipeline_for(two_collections, "beta").search(ASK_VANTOR, 3)
    collections.remove_collection(settings, "alpha")
    assert not (two_collections / "collections" / "alpha").exists()
    assert [r.name for r in collections.list_collections(settings)] == ["default", "beta"]
    assert list((two_collections / "collections").iterdir()) == [two_collections / "collections" / "beta"]
    assert fake_pipeline_for(two_collections, "beta").search(ASK_VANTOR, 3) == before
    assert fake_pipeline_for(two_collections).store.exists()


def test_removing_an_unknown_or_the_default_collection_is_refused(two_collections):
    settings = Settings.load(index_dir=two_collections)
    with pytest.raises(BadInput, match="no collection named 'gamma'"):
        collections.remove_collection(settings, "gamma")
    with pytest.raises(BadInput, match="default collection cannot be removed"):
        collections.remove_collection(settings, "default")
    with pytest.raises(BadInput, match="collection name"):
        collections.remove_collection(settings, "../beta")
    assert [r.name for r in collections.list_collections(settings)] == ["default", "alpha", "beta"]


def test_rebuilding_the_default_collection_keeps_the_named_ones_and_other_files(two_collections):
    (two_collections / "history.sqlite3").write_bytes(b"another tool's file")
    fake_pipeline_for(two_collections).index([CORPUS], rebuild=True)
    assert (two_collections / "history.sqlite3").read_bytes() == b"another tool's file"
    assert [h.chunk.doc_id for h in fake_pipeline_for(two_collections, "alpha").search(ASK_ZORBLAX, 1)] == [
        "zorblax.txt"]


def test_uploads_to_a_named_collection_go_to_its_own_folder(two_collections):
    alpha = fake_pipeline_for(two_collections, "alpha")
    alpha.add_documents([("notes.txt", b"The Zorblax parade has painted carts pulled by goats.")])
    assert (two_collections / "collections" / "alpha" / "uploads" / "notes.txt").is_file()
    assert not (two_collections / "uploads").exists()
    assert {d["id"] for d in alpha.documents()} == {"zorblax.txt", "notes.txt"}
    assert "notes.txt" not in {d["id"] for d in fake_pipeline_for(two_collections).documents()}


# --- the CLI ---------------------------------------------------------------------------------------------
def test_rag_collections_lists_them_as_a_table_and_as_json(two_collections, capsys):
    assert cli.main(["collections", "--index-dir", str(two_collections)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["collection", "documents", "chunks", "size", "last", "indexed"]
    assert [line.split()[0] for line in lines[1:]] == ["default", "alpha", "beta"]
    assert lines[2].split()[1] == "1"
    assert cli.main(["collections", "--index-dir", str(two_collections), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["collections"]
    assert [r["name"] for r in rows] == ["default", "alpha", "beta"]
    assert set(rows[0]) == {"name", "documents", "chunks", "size_bytes", "last_indexed", "watched", "last_sync",
                           "watching"}


def test_rag_collections_remove_refuses_an_unknown_name_with_exit_2_and_removes_a_known_one(two_collections, capsys):
    assert cli.main(["collections", "--index-dir", str(two_collections), "remove", "gamma"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no collection named 'gamma'" in err
    assert cli.main(["collections", "--index-dir", str(two_collections), "remove", "beta"]) == 0
    assert capsys.readouterr().out == "removed collection 'beta'\n"
    assert not (two_collections / "collections" / "beta").exists()
    assert cli.main(["collections", "remove", "beta", "--index-dir", str(two_collections)]) == 2
    assert "no collection named 'beta'" in capsys.readouterr().err
    assert (two_collections / "collections" / "alpha" / "CURRENT").is_file()


@pytest.mark.parametrize("command", [["search", "anything"], ["ask", "anything"], ["index"], ["chat"]])
def test_a_bad_collection_name_on_any_command_is_one_line_and_exit_2(command, tmp_path, capsys):
    assert cli.main([*command, "--collection", "../x", "--index-dir", str(tmp_path / "index")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "collection name '../x'" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "index").exists()


def test_rag_search_with_a_collection_reads_that_collection(two_collections, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_pipeline", lambda args: fake_pipeline_for(two_collections, args.collection))
    assert cli.main(["search", ASK_ZORBLAX, "--collection", "beta", "--json"]) == 0
    assert {h["doc"] for h in json.loads(capsys.readouterr().out)["hits"]} == {"vantor.txt"}


# --- with the real models --------------------------------------------------------------------------------
@pytest.mark.integration
def test_two_collections_answer_only_from_their_own_documents(tmp_path, real_embedder, real_generator):
    """A question only collection A's document answers: A cites it, B never does (and the other way round)."""
    index_dir = tmp_path / "index"
    pipelines = {}
    for name, file, text in (("alpha", "zorblax.txt", ZORBLAX), ("beta", "vantor.txt", VANTOR)):
        settings = Settings.load(index_dir=index_dir, collection=name)
        pipelines[name] = Pipeline(settings, embedder=real_embedder, generator=real_generator)
        pipelines[name].index([folder_with(tmp_path, file, text)])
    for own, other, question, doc, answer in (("alpha", "beta", ASK_ZORBLAX, "zorblax.txt", "Edna Pocklington"),
                                              ("beta", "alpha", ASK_VANTOR, "vantor.txt", "Tomas Halvard")):
        right = pipelines[own].ask(question)
        assert not right.abstained and answer in right.text, right.to_dict()
        assert {c.doc for c in right.citations} == {doc}
        wrong = pipelines[other].ask(question)
        assert doc not in {c.doc for c in wrong.citations} | {p.doc for p in wrong.passages}
        assert answer not in wrong.text
        assert {h.chunk.doc_id for h in pipelines[other].search(question, 10)} == {
            "vantor.txt" if doc == "zorblax.txt" else "zorblax.txt"}


def test_a_collection_started_by_an_upload_holds_that_upload_alone(tmp_path):
    papers = fake_pipeline_for(tmp_path / "index", "papers")
    report = papers.add_documents([("zorblax.txt", b"The Zorblax festival was founded by Edna Pocklington.")])
    assert [d["id"] for d in papers.documents()] == ["zorblax.txt"]  # the corpus's documents came along before
    assert report.added == ("zorblax.txt",)
    assert fake_pipeline_for(tmp_path / "index").indexed_roots() == [PROJECT_ROOT / "corpus"]
