"""Small parsing gaps and headers (issue 26, item 13): a strict Host, no open redirect after the token,
no framing or sniffing, upload names without control or bidi characters, no symlinked collection folder."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import httpx
import pytest
from conftest import FakeEmbedder, FakeGenerator
from fastapi.testclient import TestClient
from test_access import KEY
from test_web_guard import TIMEOUT_S, serving

from rag.config import Settings
from rag.errors import BadInput
from rag.pipeline import Pipeline, upload_name
from rag.serve import create_app
from rag.webcache import expire
from rag.webguard import SameOriginGuard, allowed_hosts


def through_guard(path: str, host: str = "127.0.0.1:7860", query: bytes = b"") -> dict:
    """The response start a SameOriginGuard with a token gives a GET of `path` (sent as raw ASGI)."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = SameOriginGuard(app, token=KEY, hosts=allowed_hosts("127.0.0.1"))
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": [(b"host", host.encode())], "client": ("127.0.0.1", 5000)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent[0]


def test_a_host_header_that_only_a_lenient_parser_reads_as_localhost_is_refused():
    for host in ("evil.example\\@localhost", "evil.example@localhost", "localhost#@evil", "local host",
                 "localhost:80:80", "[::1]x"):
        assert through_guard("/", host)["status"] == 400, host  # "evil.example\@localhost" was localhost
    for host in ("localhost", "localhost:7860", "127.0.0.1:7860", "[::1]:7860"):
        assert through_guard("/", host, b"token=" + KEY.encode())["status"] == 303, host


def test_the_redirect_after_the_token_stays_on_this_site():
    for path in ("//evil.example/", "///evil.example/x", "/\\evil.example/"):
        start = through_guard(path, query=b"token=" + KEY.encode() + b"&view=api")
        location = dict(start["headers"])[b"location"].decode()
        assert start["status"] == 303 and location.startswith("/") and not location.startswith(("//", "/\\"))
        assert location.endswith("?view=api") and "evil.example" in location  # a path here, not a host


def test_every_api_response_forbids_framing_and_sniffing(fake_pipeline):
    api = TestClient(create_app(fake_pipeline), base_url="http://127.0.0.1")
    for response in (api.get("/v1/models"), api.get("/v1/models", headers={"Host": "evil.example"})):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_ui_page_forbids_framing_and_sniffing(monkeypatch, capsys, fake_pipeline):
    for name in ("RAG_UI_USER", "RAG_UI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_UI_TOKEN", KEY)
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        page = httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=TIMEOUT_S)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_an_upload_name_loses_its_control_and_bidi_characters():
    assert upload_name("invoice\u202efdp.txt") == "invoicefdp.txt"  # shown as "invoicetxt.pdf" before
    assert upload_name("a\x00b\x1b[31m\u2066.md") == "a b [31m.md"
    assert upload_name("../../etc/pass\nwd.txt") == "pass wd.txt"
    assert upload_name("zero\u200bwidth.txt") == "zerowidth.txt"


def test_a_collection_whose_folder_is_a_symbolic_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "index" / "collections").mkdir(parents=True)
    (tmp_path / "index" / "collections" / "evil").symlink_to(elsewhere)
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index", collection="evil"), FakeEmbedder(),
                        FakeGenerator())
    with pytest.raises(BadInput, match=r"^collection 'evil': .* is a symbolic link"):
        pipeline.add_documents([("a.txt", b"The Zorblax festival.")])
    assert list(elsewhere.iterdir()) == []  # the upload and an index were written there before


def test_the_ui_keeps_its_upload_cache_in_the_index_folder_for_its_owner_alone(monkeypatch, capsys, fake_pipeline):
    for name in ("RAG_UI_USER", "RAG_UI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_UI_TOKEN", KEY)
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        cache = Path(fake_pipeline.settings.index_dir).resolve() / "gradio-cache"
        posted = httpx.post(url + "gradio_api/upload", headers={"Authorization": f"Bearer {KEY}"},
                            files={"files": ("notes.txt", b"The Zorblax festival.")}, timeout=TIMEOUT_S)
        assert posted.status_code == 200, posted.text
        [stored] = posted.json()
    assert Path(stored).is_relative_to(cache)  # the shared temp folder before
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_the_cache_sweep_deletes_old_files_and_their_folders_and_keeps_new_ones(tmp_path):
    old, new = tmp_path / "abc123" / "old.txt", tmp_path / "def456" / "new.txt"
    for path in (old, new):
        path.parent.mkdir()
        path.write_text("x")
    hour_ago = time.time() - 3700
    for path in (old, old.parent):
        os.utime(path, (hour_ago, hour_ago))
    assert expire(tmp_path, age=3600) == 1
    assert not old.parent.exists() and new.exists()
