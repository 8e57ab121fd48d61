"""`rag bench` times the UI's `/ask` over plain HTTP (rag/bench/frontends.py: call_over_http): the call
returns the endpoint's own result, and an endpoint that fails is an error, never a figure."""

import json

import gradio as gr
import httpx
import pytest
from conftest import free_port

from rag.bench.frontends import call_over_http
from rag.errors import RagError


def shout(text: str, suffix: str | None = None) -> dict:
    if text == "fail":
        raise gr.Error("asked to fail")
    return {"text": text.upper() + (suffix or "")}


@pytest.fixture(scope="module")
def base():
    port = free_port()
    with gr.Blocks(analytics_enabled=False) as demo:
        gr.api(shout, api_name="shout")
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_a_call_over_http_returns_the_endpoints_result(base):
    with httpx.Client(timeout=30) as http:
        assert json.loads(call_over_http(http, base, "shout", "hi", None)) == [{"text": "HI"}]
        assert json.loads(call_over_http(http, base, "shout", "hi", "!")) == [{"text": "HI!"}]


def test_an_endpoint_that_fails_is_an_error_not_a_time(base):
    with httpx.Client(timeout=30) as http, pytest.raises(RagError, match="/shout failed over HTTP"):
        call_over_http(http, base, "shout", "fail", None)
