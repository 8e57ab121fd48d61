"""Who may ask (issue 26, items 4 and 5): `rag serve` asks for a key on loopback too, keys and tokens
are at least 32 characters, and a client that keeps guessing keys, tokens or passwords is slowed down."""

from __future__ import annotations

import os
import re
import stat
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from test_serve import ask_body, assert_error, free_port
from test_web_guard import LOGIN, TIMEOUT_S, serving

import app
from rag import serve
from rag.access import MIN_SECRET_CHARS, FailureThrottle, check_secret, server_key
from rag.cli import main
from rag.errors import BadInput
from rag.pipeline import Pipeline

KEY = "k" * MIN_SECRET_CHARS


# --- keys and tokens ----------------------------------------------------------------------------------
def test_a_key_or_token_shorter_than_32_characters_is_refused_with_its_name():
    assert check_secret(KEY, "RAG_API_KEY") == KEY
    for short in ("", "x", "k" * (MIN_SECRET_CHARS - 1)):
        with pytest.raises(BadInput, match=rf"^RAG_UI_TOKEN is {len(short)} characters long; a key or token "
                                           r"needs at least 32 "):
            check_secret(short, "RAG_UI_TOKEN")


def test_a_server_on_loopback_gets_a_key_for_the_run_in_a_file_only_its_owner_reads(tmp_path):
    first = server_key("127.0.0.1", tmp_path / "index" / "api-key", environ={})
    second = server_key("127.0.0.1", tmp_path / "index" / "api-key", environ={})
    assert len(first.key) >= MIN_SECRET_CHARS and first.key != second.key
    path = tmp_path / "index" / "api-key"
    assert path.read_text() == second.key + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["api-key"]


def test_rag_api_key_is_used_as_it_is_and_no_auth_is_for_loopback_only(tmp_path):
    given = server_key("::1", tmp_path / "api-key", environ={"RAG_API_KEY": KEY})
    assert (given.key, given.source) == (KEY, "$RAG_API_KEY") and not (tmp_path / "api-key").exists()
    assert server_key("localhost", tmp_path / "api-key", no_auth=True, environ={"RAG_API_KEY": KEY}).key == ""
    with pytest.raises(BadInput, match=r"^--no-auth is for loopback only: --host 0\.0\.0\.0 "):
        server_key("0.0.0.0", tmp_path / "api-key", no_auth=True, environ={"RAG_API_KEY": KEY})
    with pytest.raises(BadInput, match="set RAG_API_KEY"):
        server_key("192.0.2.7", tmp_path / "api-key", environ={})


def test_rag_serve_refuses_a_short_key_at_start_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_API_KEY", "short")
    assert main(["serve", "--index-dir", str(tmp_path), "--port", str(free_port())]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("rag: ") and "RAG_API_KEY is 5 characters" in err


def served_app(monkeypatch, pipeline: Pipeline, **kwargs):
    """What `run_server` would serve, and what it printed: the app is caught before uvicorn runs it."""
    caught = []
    monkeypatch.setattr("uvicorn.run", lambda application, **kw: caught.append(application))
    assert serve.run_server(pipeline, "127.0.0.1", free_port(), **kwargs) == 0
    return TestClient(caught[0], base_url="http://127.0.0.1")


def test_rag_serve_on_loopback_answers_only_with_the_key_it_printed(monkeypatch, capsys, fake_pipeline):
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    api = served_app(monkeypatch, fake_pipeline)
    printed = capsys.readouterr().out
    key = re.search(r"API key required: (\S+) \(also in (\S+), readable by you alone\)", printed)
    assert key and (fake_pipeline.settings.index_dir / "api-key").read_text().strip() == key[1]
    assert_error(api.get("/v1/models"), 401, code="invalid_api_key")  # served open before
    assert_error(api.post("/v1/chat/completions", json=ask_body()), 401, code="invalid_api_key")
    assert api.get("/v1/models", headers={"Authorization": f"Bearer {key[1]}"}).status_code == 200


def test_rag_serve_with_no_auth_asks_for_no_key_and_says_so(monkeypatch, capsys, fake_pipeline):
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    api = served_app(monkeypatch, fake_pipeline, no_auth=True)
    assert "no API key required (--no-auth)" in capsys.readouterr().out
    assert api.get("/v1/models").status_code == 200


# --- a brake on guessing --------------------------------------------------------------------------------
def test_the_throttle_lets_five_failures_pass_then_doubles_the_wait_and_forgets_a_success():
    now = [0.0]
    throttle = FailureThrottle(free=5, window=60, max_wait=30, clock=lambda: now[0])
    for _ in range(5):
        throttle.failed("a")
    assert throttle.wait("a") == 0
    waits = []
    for _ in range(7):
        throttle.failed("a")
        waits.append(throttle.wait("a"))
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert throttle.wait("b") == 0  # per client
    now[0] += 30
    assert throttle.wait("a") == 0
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0
    now[0] += 61  # failures older than the window are forgotten
    for _ in range(5):
        throttle.failed("a")
    assert throttle.wait("a") == 0


def test_the_throttle_remembers_a_bounded_number_of_clients():
    throttle = FailureThrottle(max_clients=3)
    for client in "abcd":
        throttle.failed(client)
    assert len(throttle._clients) == 3 and "a" not in throttle._clients


def test_after_repeated_wrong_keys_even_the_right_one_waits(fake_pipeline):
    api = TestClient(serve.create_app(fake_pipeline, api_key=KEY), base_url="http://127.0.0.1")
    wrong = {"Authorization": "Bearer " + "w" * 40}
    for _ in range(6):
        assert_error(api.get("/v1/models", headers=wrong), 401, code="invalid_api_key")
    for headers in (wrong, {"Authorization": f"Bearer {KEY}"}):
        refused = api.get("/v1/models", headers=headers)
        assert_error(refused, 429, code="too_many_attempts")
        assert refused.headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert api.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_ui_refuses_a_short_token_at_start(monkeypatch, capsys, fake_pipeline):
    for name in ("RAG_UI_USER", "RAG_UI_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_UI_TOKEN", "t" * 31)
    monkeypatch.setattr(Pipeline, "from_settings", staticmethod(lambda *args, **kwargs: fake_pipeline))
    monkeypatch.setattr(app, "serve", lambda *args, **kwargs: pytest.fail("served with a weak token"))
    assert app.main(["--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RAG_UI_TOKEN is 31 characters long" in err


def test_the_ui_slows_down_password_guessing(monkeypatch, capsys, fake_pipeline):
    monkeypatch.delenv("RAG_UI_TOKEN", raising=False)
    monkeypatch.setenv("RAG_UI_USER", LOGIN[0])
    monkeypatch.setenv("RAG_UI_PASSWORD", LOGIN[1])
    with serving(monkeypatch, capsys, fake_pipeline) as (url, _):
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as browser:
            statuses = [browser.post("login", data={"username": "alice", "password": f"guess-{i}"}).status_code
                        for i in range(20)]
            assert statuses[:5] == [400] * 5 and set(statuses[6:]) == {429}  # 20 × 400 before
            right = browser.post("login", data={"username": LOGIN[0], "password": LOGIN[1]})
            assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1


def test_the_ui_slows_down_token_guessing_but_not_a_visit_without_one(monkeypatch, capsys, fake_pipeline):
    for name in ("RAG_UI_USER", "RAG_UI_PASSWORD", "RAG_UI_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with serving(monkeypatch, capsys, fake_pipeline) as (url, out):
        token = re.search(r"\?token=(\S+)", out)[1]
        # A first visit without any token is not a guess, and costs nothing.
        assert {httpx.get(url + "config", timeout=TIMEOUT_S).status_code for _ in range(8)} == {403}
        statuses = [httpx.get(url + "config", headers={"Authorization": f"Bearer wrong-{i}"}, timeout=TIMEOUT_S
                              ).status_code for i in range(8)]
        assert statuses[:5] == [403] * 5 and statuses[-1] == 429
        assert httpx.get(url + "config", headers={"Authorization": f"Bearer {token}"},
                         timeout=TIMEOUT_S).status_code == 429
