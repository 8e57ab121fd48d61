"""`rag mcp`: the tools through the SDK's own client. Fast tests over the fake pipeline in-process; then a
real `rag mcp` over stdio (as Claude Desktop starts it) and over Streamable HTTP, on the bundled corpus."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager

import pytest
from conftest import CORPUS, ROOT, wait_until_listening
from starlette.testclient import TestClient
from test_summarize import TRUE as SUPPORTED
from test_summarize import TRUE_NUMBER

from rag.config import Settings
from rag.errors import BadInput
from rag.mcp_server import KEY_FILE, build_server, document_text, http_app, http_key, parse_id
from rag.pipeline import Pipeline

KEY = "k" * 40
BLETCHLEY = "How many nations signed the Bletchley Declaration?"
REFUSED = "Which countries refused to sign the Bletchley Declaration?"
XI = "xi-global-ai-collaboration.txt"
BACKING = "global-backing-for-china-ai-governance.txt"
TOOLS = {"search", "fetch", "ask", "summarize", "compare", "list_collections"}


def call(server, *calls):
    """Run (tool, arguments) calls through the SDK client connected in-process; the results in order."""
    from mcp import Client

    async def go():
        async with Client(server) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(go())


def assert_tool_error(result, *words):
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text
    for w in words:
        assert w in text, text


@pytest.fixture
def server(fake_pipeline):
    return build_server(fake_pipeline)


def test_the_tools_are_listed_with_descriptions_for_a_model(server):
    from mcp import Client

    async def go():
        async with Client(server) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(go())}
    assert set(tools) == TOOLS
    assert "abstained" in tools["ask"].description and "documents" in tools["ask"].input_schema["properties"]
    assert tools["search"].input_schema["required"] == ["query"]
    assert all(t.annotations.read_only_hint for t in tools.values())
    assert tools["summarize"].input_schema["required"] == ["document"] and "checked" in tools["summarize"].description
    assert tools["compare"].input_schema["required"] == ["document_a", "document_b"]
    assert tools["summarize"].input_schema["properties"]["length"]["enum"] == ["short", "long"]


def test_search_returns_ids_that_fetch_reads_back_and_the_whole_document_too(server):
    (found,) = call(server, ("search", {"query": "Bletchley Declaration nations", "k": 3}))
    results = found.structured_content["results"]
    assert len(results) == 3 and results[0]["title"] == XI and results[0]["id"].startswith(f"default:{XI}#")
    passage, document = call(server, ("fetch", {"id": results[0]["id"]}), ("fetch", {"id": f"default:{XI}"}))
    text = (CORPUS / XI).read_text(encoding="utf-8")
    p = passage.structured_content
    assert p["text"] == text[p["start"]:p["end"]] and results[0]["snippet"] in p["text"]
    # Between chunks the chunker skips whitespace only: the offsets are the file's.
    assert document.structured_content["text"].split() == text.split()
    assert len(document.structured_content["text"]) == len(text.rstrip())
    assert document.structured_content["truncated"] is False


def test_documents_restrict_search_to_the_chosen_document(server):
    (found,) = call(server, ("search", {"query": "Bletchley Declaration nations", "k": 5,
                                        "documents": ["global-backing-*"]}))
    titles = {r["title"] for r in found.structured_content["results"]}
    assert titles == {"global-backing-for-china-ai-governance.txt"}


def test_ask_returns_the_checked_answer_with_citations_as_data(server, fake_pipeline):
    fake_pipeline.generator.replies.append("28")
    (result,) = call(server, ("ask", {"question": BLETCHLEY}))
    a = result.structured_content
    assert a["abstained"] is False and a["answer"] == "28 [1]" and a["verdict"]
    cite = a["citations"][0]
    assert cite["document"] == XI and "28 nations" in cite["quote"] and cite["id"].startswith("default:")


def test_an_abstention_is_visible_with_the_closest_passages(server, fake_pipeline):
    fake_pipeline.generator.replies.append("NONE")
    (result,) = call(server, ("ask", {"question": REFUSED}))
    a = result.structured_content
    assert not result.is_error and a["abstained"] is True and a["answer"] is None
    assert a["verdict"] == "not found in the documents" and a["citations"] == []
    assert "can't find" in a["message"] and a["closest_passages"]


def test_summarize_returns_only_verified_sentences_with_citations_that_fetch_reads(server, fake_pipeline):
    fake_pipeline.generator.replies += [str(TRUE_NUMBER), "none"]
    (result,) = call(server, ("summarize", {"document": BACKING}))
    s = result.structured_content
    assert not result.is_error and s["document"] == BACKING and s["complete"] is True
    assert s["summary"] == SUPPORTED
    assert s["sentences"] == [{"text": SUPPORTED.replace(" [1].", "."), "citations": [1]}]
    assert s["checked"] == {"sentences_chosen": 1, "verified": 1, "dropped": 0}
    (cite,) = s["citations"]
    # The quote is the document's sentence that backs the summary's.
    assert cite["document"] == BACKING and cite["quote"].startswith(SUPPORTED.removesuffix(" [1]."))
    (passage,) = call(server, ("fetch", {"id": cite["id"]}))
    assert cite["quote"] in " ".join(passage.structured_content["text"].split())


def test_compare_returns_findings_with_each_side_cited_to_its_own_document(server, fake_pipeline, monkeypatch):
    def choose(messages, max_tokens=128, **options):  # the numbered lines of these two sentences, wherever they are
        wanted = re.findall(r"^(\d+)\. (?:China’s proposal for a worldwide|The Bletchley Declaration, a pact)",
                            messages[-1]["content"], re.MULTILINE)
        yield ", ".join(wanted)

    monkeypatch.setattr(fake_pipeline.generator, "stream", choose)
    (result,) = call(server, ("compare", {"document_a": BACKING, "document_b": XI}))
    c = result.structured_content
    assert not result.is_error and (c["document_a"], c["document_b"], c["about"]) == (BACKING, XI, None)
    kinds = {f["kind"] for f in c["findings"]}
    assert kinds <= {"agree", "differ", "only"} and c["findings"]
    docs = {c["citations"][side["citation"] - 1]["document"] == side["document"]
            for f in c["findings"] for side in (f["a"], f["b"]) if side}
    assert docs == {True}
    texts = [side["text"] for f in c["findings"] for side in (f["a"], f["b"]) if side]
    assert SUPPORTED.replace(" [1].", ".") in texts and any("28 nations" in t for t in texts)


def test_list_collections_names_the_collections_and_their_documents(server):
    (result,) = call(server, ("list_collections", {}))
    c = result.structured_content
    assert c["default"] == "default" and c["collections"][0]["name"] == "default"
    assert XI in c["collections"][0]["document_names"] and c["collections"][0]["documents"] == 2


@pytest.mark.parametrize(("tool", "args", "words"), [
    ("ask", {"question": "x", "collection": "nope"}, ["no indexed collection 'nope'"]),
    ("ask", {"question": "   "}, ["the question is empty"]),
    ("ask", {"question": BLETCHLEY, "documents": ["missing.pdf"]}, ["no indexed document matches 'missing.pdf'"]),
    ("search", {"query": "x", "k": 0}, ["k must be between 1 and 20"]),
    ("search", {"query": 7}, ["query"]),
    ("search", {}, ["query"]),
    ("fetch", {"id": "no-colon"}, ["an id looks like"]),
    ("fetch", {"id": "default:missing.txt"}, ["no indexed document 'missing.txt'"]),
    ("fetch", {"id": f"default:{XI}#0-99999999"}, ["outside the document"]),
    ("nonexistent", {}, ["nonexistent"]),
    ("summarize", {"document": "missing.pdf"}, ["no indexed document 'missing.pdf'", XI]),
    ("summarize", {"document": XI, "length": "huge"}, ["length"]),
    ("summarize", {"document": XI, "collection": "nope"}, ["no indexed collection 'nope'"]),
    ("compare", {"document_a": XI, "document_b": XI}, ["two different documents"]),
    ("compare", {"document_a": XI}, ["document_b"]),
])
def test_bad_arguments_are_one_line_tool_errors(server, tool, args, words):
    (result,) = call(server, (tool, args))
    assert_tool_error(result, *words)


def test_ids_parse_into_collection_document_and_span():
    assert parse_id("papers:a#b.txt#10-20") == ("papers", "a#b.txt", (10, 20))
    assert parse_id("default:notes/x.md") == ("default", "notes/x.md", None)
    with pytest.raises(BadInput):
        parse_id("default:")


def test_a_document_is_put_together_from_overlapping_chunks():
    from rag.records import Chunk

    text = "abcdefghij"
    chunks = [Chunk("1", "d", text[0:6], 0, 6), Chunk("2", "d", text[4:10], 4, 10)]
    assert document_text(chunks) == text
    assert document_text([Chunk("1", "d", "ab", 0, 2), Chunk("2", "d", "ef", 4, 6)]) == "ab  ef"


# --- the HTTP key and guard ------------------------------------------------------------------------------
def test_the_http_key_comes_from_the_environment_or_a_private_file(tmp_path):
    assert http_key(tmp_path, environ={"RAG_API_KEY": KEY}) == (KEY, "env")
    with pytest.raises(BadInput, match="at least 32"):
        http_key(tmp_path, environ={"RAG_API_KEY": "short"})
    key, source = http_key(tmp_path / "index", environ={})
    path = tmp_path / "index" / KEY_FILE
    assert source == "file" and len(key) >= 32 and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert http_key(tmp_path / "index", environ={})[0] != key  # a new key each run
    assert http_key(tmp_path, no_auth=True, environ={"RAG_API_KEY": KEY}) == ("", "none")
    with pytest.raises(BadInput, match="loopback only"):
        http_key(tmp_path, no_auth=True, host="0.0.0.0", environ={})


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_http_wants_the_key_the_servers_name_and_no_other_sites_page(server):
    app = http_app(server, "127.0.0.1", KEY)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        auth = {**MCP_HEADERS, "Authorization": f"Bearer {KEY}"}
        assert client.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        assert client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer wrong"}
                           ).status_code == 401
        assert client.post("/mcp", json=INITIALIZE, headers={**auth, "Host": "evil.example:8765"}).status_code == 400
        assert client.post("/mcp", json=INITIALIZE, headers={**auth, "Origin": "http://evil.example"}
                           ).status_code == 403
        ok = client.post("/mcp", json=INITIALIZE, headers=auth)
        assert ok.status_code == 200 and '"serverInfo"' in ok.text


# --- a real `rag mcp`, through the SDK's client ----------------------------------------------------------
@pytest.fixture(scope="module")
def mcp_index(tmp_path_factory):
    """The bundled corpus indexed with the default (int8) embedder, which `rag mcp` loads without torch."""
    root = tmp_path_factory.mktemp("mcp")
    shutil.copytree(CORPUS, root / "corpus")
    Pipeline(Settings.load(index_dir=root / "index")).index([root / "corpus"])
    return root / "index"


def child_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]]), **extra}


@pytest.mark.integration
@pytest.mark.timeout(240)  # 8.6 s on the faster kind (ci4); a reply that never comes fails at 120 s, not 600
def test_the_sdk_client_starts_rag_mcp_over_stdio_and_gets_a_cited_answer_and_an_abstention(mcp_index):
    from mcp import Client, StdioServerParameters

    # What Claude Desktop's config block runs (docs/mcp.md): the command and its arguments.
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp", "--index-dir", str(mcp_index)],
                                   env=child_env())

    async def go():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            answers = [(await client.call_tool("ask", {"question": q})).structured_content
                       for q in (BLETCHLEY, REFUSED)]
            return tools, answers, await client.call_tool("summarize", {"document": "missing.pdf"})

    tools, (answer, refusal), unknown = asyncio.run(go())
    assert_tool_error(unknown, "no indexed document 'missing.pdf'")
    assert tools == TOOLS
    assert answer["abstained"] is False and answer["answer"].startswith("28")
    assert answer["citations"][0]["document"] == XI and "28 nations" in answer["citations"][0]["quote"]
    assert answer["verdict"] in ("likely answer", "uncertain: check the source")
    assert refusal["abstained"] is True and refusal["answer"] is None and refusal["citations"] == []
    assert refusal["verdict"] == "not found in the documents" and refusal["closest_passages"]


@contextmanager
def rag_mcp_http(index_dir, port: int):
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "mcp", "--http", "--index-dir", str(index_dir),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_API_KEY=KEY))
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving MCP at http://127.0.0.1:"), line + proc.stderr.read()
        wait_until_listening(proc, port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
def test_the_sdk_client_reaches_rag_mcp_over_http_with_the_key(mcp_index):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from test_serve import free_port

    with rag_mcp_http(mcp_index, free_port()) as url:
        async def go():
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    tools = {t.name for t in (await client.list_tools()).tools}
                    found = await client.call_tool("search", {"query": BLETCHLEY, "k": 2,
                                                              "documents": [XI]})
                    return tools, found.structured_content

        tools, found = asyncio.run(go())
    assert tools == TOOLS
    assert [r["title"] for r in found["results"]] == [XI, XI] and "28 nations" in found["results"][0]["snippet"]
    assert not (mcp_index / KEY_FILE).exists()  # the key came from the environment: no file


@pytest.mark.parametrize(("argv", "env", "words"), [
    (["--no-auth", "--host", "0.0.0.0"], {}, "--no-auth is for loopback only"),
    ([], {"RAG_API_KEY": "short"}, "RAG_API_KEY is 5 characters long"),
])
def test_bad_http_options_are_one_line_and_exit_2_before_any_model_loads(monkeypatch, capsys, tmp_path, argv, env,
                                                                          words):
    from rag import cli

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("rag.mcp_server.build_server", lambda *a, **k: pytest.fail("the server was built"))
    assert cli.main(["mcp", "--http", "--index-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: error: ") and words in err and err.count("\n") == 1
