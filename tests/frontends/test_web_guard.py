"""A web page must not be able to reach the app: the real server, started by `app.main`, over the fakes."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from conftest import free_port

import app
from rag.pipeline import Pipeline
from rag.webguard import allowed_hosts

# Generous: on a busy machine a first request can take seconds.
TIMEOUT_S = 60
get, post, options = (partial(f, timeout=TIMEOUT_S) for f in (httpx.get, httpx.post, httpx.options))
LOGIN = ("alice", "correct horse battery")
TOKEN = "a-token-chosen-by-the-user-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def serving(monkeypatch, capsys, pipeline: Pipeline, *argv: str):
    """`app.main` serving `pipeline` on a free loopback port, in a thread; yields (base URL, what it printed)."""
    port = free_port()
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", ""))  # main points it at the index
    monkeypatch.setattr(Pipeline, "from_settings", staticmethod(lambda *args, **kwargs: pipeline))
    servers, real_serve = [], app.serve
    monkeypatch.setattr(app, "serve", lambda *args, **kwargs: servers.append(real_serve(*args, **kwargs,
                                                                                         block=False)))
    assert app.main(["--port", str(port), *argv]) == 0
    try:
        yield f"http://127.0.0.1:{port}/", capsys.readouterr().out
    finally:
        for server in servers:
            server.should_exit = True


def printed_token(out: str) -> str:
    return re.search(r"Open http://127\.0\.0\.1:\d+/\?token=(\S+)", out)[1]


@pytest.fixture
def no_login(monkeypatch):
    monkeypatch.delenv("RAG_UI_USER", raising=False)
    monkeypatch.delenv("RAG_UI_PASSWORD", raising=False)
    monkeypatch.delenv("RAG_UI_TOKEN", raising=False)


@pytest.fixture
def known_token(monkeypatch, no_login):
    """No login, and the token set by RAG_UI_TOKEN: tests of other checks send it as BEARER."""
    monkeypatch.setenv("RAG_UI_TOKEN", TOKEN)


def test_a_request_naming_another_host_is_refused(monkeypatch, capsys, fake_pipeline, known_token):
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        port = url.rsplit(":", 1)[1].strip("/")
        assert get(url + "config", headers=BEARER).status_code == 200
        assert get(url + "config", headers={**BEARER, "Host": f"localhost:{port}"}).status_code == 200
        # A rebinding domain, a name that browsers send to loopback, an address the server is not bound to.
        for host in (f"attacker.example:{port}", f"foo.localhost:{port}", f"127.0.0.1.nip.io:{port}",
                     f"192.168.1.20:{port}"):
            for path in ("", "config", "gradio_api/info"):
                response = get(url + path, headers={**BEARER, "Host": host})
                assert 400 <= response.status_code < 500, (host, path)
                assert "access-control-allow-origin" not in response.headers


def test_another_sites_page_is_refused_and_its_origin_never_echoed(monkeypatch, capsys, fake_pipeline,
                                                                   known_token):
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        port = url.rsplit(":", 1)[1].strip("/")
        own = get(url + "config", headers={**BEARER, "Origin": url.rstrip("/")})
        assert own.status_code == 200
        for host, origin in ((f"127.0.0.1:{port}", "http://attacker.example"),
                             (f"foo.localhost:{port}", "http://attacker.example"),
                             (f"127.0.0.1:{port}", "http://localhost:3000"),
                             (f"127.0.0.1:{port}", "null")):
            headers = {**BEARER, "Host": host, "Origin": origin}
            preflight = options(url + "gradio_api/call/ask", headers={
                **headers, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
            request = post(url + "gradio_api/call/ask", headers=headers, json={"data": ["What is the GDP?"]})
            for response in (preflight, request):
                assert 400 <= response.status_code < 500, (host, origin)
                assert response.headers.get("access-control-allow-origin") in (None, url.rstrip("/"))


def test_a_login_set_on_loopback_is_required(monkeypatch, capsys, fake_pipeline, no_login):
    monkeypatch.setenv("RAG_UI_USER", LOGIN[0])
    monkeypatch.setenv("RAG_UI_PASSWORD", LOGIN[1])
    with serving(monkeypatch, capsys, fake_pipeline) as (url, out):
        assert get(url + "config").status_code == 401
        assert post(url + "gradio_api/call/ask", json={"data": ["What is the GDP?"]}).status_code == 401
        assert "token=" not in out and "log in as 'alice'" in out
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as browser:
            assert browser.post("login", data={"username": "alice", "password": "wrong"}).status_code == 400
            assert browser.get("config").status_code == 401
            assert browser.post("login", data={"username": LOGIN[0], "password": LOGIN[1]}).status_code == 200
            assert browser.get("config").status_code == 200


def test_without_a_login_the_printed_token_is_required_and_a_cookie_keeps_it(monkeypatch, capsys, fake_pipeline,
                                                                           no_login):
    with serving(monkeypatch, capsys, fake_pipeline) as (url, out):
        token = printed_token(out)
        assert len(token) >= 32
        for path in ("", "config", "gradio_api/info", f"?token={token[:-1]}"):
            assert get(url + path).status_code == 403, path
        assert get(url + "config", headers={"Authorization": "Bearer wrong"}).status_code == 403
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as browser:
            opened = browser.get(f"?token={token}&view=api")
            assert opened.status_code == 303 and opened.headers["location"] == "/?view=api"
            cookie = opened.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert browser.get("").status_code == 200 and browser.get("config").status_code == 200


def test_the_ask_api_answers_a_program_that_sends_the_token(monkeypatch, capsys, fake_pipeline, known_token):
    from gradio_client import Client

    with serving(monkeypatch, capsys, fake_pipeline) as (url, out):
        assert f"?token={TOKEN}" in out
        assert get(url + "config").status_code == 403
        client = Client(url, verbose=False, headers=BEARER)
        result = client.predict("What is the GDP of Brazil?", api_name="/ask")
    assert result["abstained"] is True and result["question"] == "What is the GDP of Brazil?"


def test_an_oversized_upload_is_refused_before_it_is_stored(monkeypatch, capsys, fake_pipeline, known_token,
                                                            tmp_path):
    pipeline = Pipeline(fake_pipeline.settings.replace(max_upload_mb=1), fake_pipeline.embedder,
                        fake_pipeline.generator)
    with serving(monkeypatch, capsys, pipeline) as (url, _):
        small = post(url + "gradio_api/upload", headers=BEARER,
                           files={"files": ("small.txt", b"The Zorblax Treaty.\n" * 100, "text/plain")})
        assert small.status_code == 200
        big = post(url + "gradio_api/upload", headers=BEARER,
                         files={"files": ("big.txt", b"The Zorblax Treaty.\n" * 60_000, "text/plain")})
        assert big.status_code == 413
    cache = Path(pipeline.settings.index_dir).resolve() / "gradio-cache"  # app.main keeps it there
    stored = [p.name for p in cache.rglob("*") if p.is_file()]
    assert stored == ["small.txt"]


def test_run_history_and_monitoring_are_off(monkeypatch, capsys, fake_pipeline, known_token):
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        config = get(url + "config", headers=BEARER).json()
        assert config["run_history"] is False and config["footer_links"] == ["api"]
        assert get(url + "monitoring", headers=BEARER).status_code == 403


def test_gradios_copy_of_an_upload_is_deleted_once_indexed(monkeypatch, fake_pipeline, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    copy = tmp_path / "gradio" / "3f2a9c" / "zorblax.txt"
    copy.parent.mkdir(parents=True)
    copy.write_text("The Zorblax Treaty was signed by 14 countries in 2031.", encoding="utf-8")
    mine = tmp_path / "quuxle.txt"
    mine.write_text("The Quuxle Accord was signed by 9 moons in 2077.", encoding="utf-8")
    status, _, _ = app.Backend(fake_pipeline).add_files([str(copy), str(mine)])
    assert "zorblax.txt: added" in status and "quuxle.txt: added" in status
    assert not copy.parent.exists() and mine.exists()
    assert {"zorblax.txt", "quuxle.txt"} <= {d["id"] for d in fake_pipeline.documents()}


def test_main_refuses_half_a_login(monkeypatch, capsys, fake_pipeline, no_login):
    monkeypatch.setenv("RAG_UI_USER", "alice")
    monkeypatch.setattr(Pipeline, "from_settings", staticmethod(lambda *args, **kwargs: fake_pipeline))
    monkeypatch.setattr(app, "serve", lambda *args, **kwargs: pytest.fail("served without a login"))
    assert app.main(["--port", "7999"]) == 2
    assert "set both RAG_UI_USER and RAG_UI_PASSWORD" in capsys.readouterr().err


def test_the_allowed_hosts_are_the_loopback_names_the_bound_address_and_the_named_ones():
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "[::1]"]
    assert allowed_hosts("::1") == ["127.0.0.1", "localhost", "[::1]"]
    assert allowed_hosts("192.168.1.5", ("rag.example.org",)) == ["127.0.0.1", "localhost", "[::1]", "192.168.1.5",
                                                                 "rag.example.org"]
    assert allowed_hosts("0.0.0.0") == ["*"]
    assert allowed_hosts("0.0.0.0", ("Rag.Example.org",)) == ["127.0.0.1", "localhost", "[::1]", "rag.example.org"]


def test_a_page_behind_a_proxy_that_rewrites_host_is_served_under_its_allowed_name(monkeypatch, capsys,
                                                                                   fake_pipeline):
    monkeypatch.setenv("RAG_UI_USER", LOGIN[0])
    monkeypatch.setenv("RAG_UI_PASSWORD", LOGIN[1])
    with serving(monkeypatch, capsys, fake_pipeline, "--allow-host", "rag.example.org") as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as browser:
            assert browser.post("login", data={"username": LOGIN[0], "password": LOGIN[1]},
                                headers={"Origin": "https://rag.example.org"}).status_code == 200
            assert browser.get("config", headers={"Host": "rag.example.org"}).status_code == 200
            assert browser.get("config", headers={"Origin": "https://other.example.org"}).status_code == 403
