"""Asking about chosen documents: `--doc` on the CLI, `rag.documents` in `rag serve`'s request, and the
Pipeline under both; a name that picks nothing is bad input in one line."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag import cli
from rag.errors import BadInput
from rag.serve import create_app

XI = "xi-global-ai-collaboration.txt"
OTHER = "global-backing-for-china-ai-governance.txt"
QUESTION = "How many nations signed the Bletchley Declaration?"


@pytest.fixture
def fake_cli(monkeypatch, fake_pipeline):
    monkeypatch.setattr(cli, "_pipeline", lambda args: fake_pipeline)
    return fake_pipeline


def test_documents_are_picked_by_name_or_glob_and_an_unknown_one_is_bad_input(fake_pipeline):
    assert fake_pipeline.select_documents(None) is None
    assert fake_pipeline.select_documents([XI]) == {XI}
    assert fake_pipeline.select_documents(["global-*", "xi-*.txt"]) == {XI, OTHER}
    with pytest.raises(BadInput, match="no indexed document matches 'nope.pdf'"):
        fake_pipeline.select_documents([XI, "nope.pdf"])


def test_an_answer_about_one_document_cites_only_it(fake_pipeline):
    fake_pipeline.generator.replies.append("NONE")
    answer = fake_pipeline.ask(QUESTION, documents=[OTHER])
    assert {p.doc for p in answer.passages} == {OTHER}


def test_rag_search_and_ask_take_doc_options(fake_cli, capsys):
    assert cli.main(["search", "Bletchley Declaration nations", "--doc", OTHER, "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 4 and {h["doc"] for h in hits} == {OTHER}
    fake_cli.generator.replies.append("28")
    assert cli.main(["ask", QUESTION, "--doc", "xi-*", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] == "28 [1]" and {c["doc"] for c in answer["citations"]} == {XI}


def test_a_doc_option_that_picks_nothing_is_one_line_and_exit_2(fake_cli, capsys):
    assert cli.main(["ask", QUESTION, "--doc", "missing.md"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: error: no indexed document matches 'missing.md'") and err.count("\n") == 1


def test_the_api_request_takes_rag_documents(fake_pipeline):
    api = TestClient(create_app(fake_pipeline), base_url="http://127.0.0.1", raise_server_exceptions=False)
    body = {"model": "rag:default", "messages": [{"role": "user", "content": QUESTION}]}
    fake_pipeline.generator.replies.append("NONE")
    r = api.post("/v1/chat/completions", json={**body, "rag": {"documents": [OTHER]}})
    assert r.status_code == 200, r.text
    assert {p["doc"] for p in r.json()["rag"]["closest_passages"]} == {OTHER}
    bad = api.post("/v1/chat/completions", json={**body, "rag": {"documents": ["missing.md"]}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rag.documents"
    assert "missing.md" in bad.json()["error"]["message"]
    wrong = api.post("/v1/chat/completions", json={**body, "rag": {"documents": "xi.txt"}})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"].startswith("rag.documents")
