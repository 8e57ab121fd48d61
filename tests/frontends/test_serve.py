"""`rag serve`: the OpenAI-compatible API. Fast tests over the fake pipeline in-process; then a real
`rag serve` subprocess answering the official `openai` client, and 8 clients at once."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, free_port, wait_until_listening
from fastapi.testclient import TestClient
from test_summarize import TRUE as SUPPORTED
from test_summarize import TRUE_NUMBER

from rag.config import Settings
from rag.pipeline import Pipeline
from rag.serve import Turns, create_app

KEY = "test-key-0123456789-abcdefghijklmnopqrstuv"
BLETCHLEY = "How many nations signed the Bletchley Declaration?"
# Streaming clients at once against one `rag serve`: two per question, so a mix-up between them shows.
CLIENTS = 8


# --- the error mapping and the shapes, over the fake pipeline --------------------------------------
@pytest.fixture
def api(fake_pipeline):
    return TestClient(create_app(fake_pipeline, max_body=10_000), base_url="http://127.0.0.1",
                      raise_server_exceptions=False)


def ask_body(question: str = BLETCHLEY, **extra) -> dict:
    return {"model": "rag:default", "messages": [{"role": "user", "content": question}], **extra}


def assert_error(response, status: int, code=None, param=None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["param"] == param
    assert "Traceback" not in response.text and "\n" not in body["error"]["message"]
    return body["error"]


def test_a_completion_carries_the_marked_answer_and_the_citations_as_data(api, fake_pipeline):
    fake_pipeline.generator.replies.append("28")
    r = api.post("/v1/chat/completions", json=ask_body())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "rag:default"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "28 [1]"}
    assert body["choices"][0]["finish_reason"] == "stop"
    rag = body["rag"]
    assert rag["collection"] == "default" and rag["abstained"] is False and rag["verdict"]
    cited = rag["citations"][0]
    assert cited["id"] == 1 and cited["doc"] == "xi-global-ai-collaboration.txt"
    a, b = cited["span"]
    assert "28 nations" in cited["quote"] and cited["quote"] == " ".join(
        cited["passage"][a - cited["start"]:b - cited["start"]].split())
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["total_tokens"] > body["usage"]["prompt_tokens"]


def test_a_stream_sends_chunks_the_answer_then_the_citations_then_done(api, fake_pipeline):
    fake_pipeline.generator.replies.append("28")
    with api.stream("POST", "/v1/chat/completions", json=ask_body(stream=True)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "28 [1]"
    assert "".join(c.get("rag", {}).get("draft", "") for c in chunks).strip() == "28"
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["rag"]["citations"][0]["doc"] == "xi-global-ai-collaboration.txt"


def test_an_abstention_says_so_and_lists_the_closest_passages(api, fake_pipeline):
    fake_pipeline.generator.replies.append("NONE")
    rag = api.post("/v1/chat/completions", json=ask_body()).json()["rag"]
    assert rag["abstained"] is True and rag["citations"] == [] and rag["closest_passages"]


SUMMARIZED = "global-backing-for-china-ai-governance.txt"


def test_a_request_for_a_named_documents_summary_streams_the_verified_summary_with_its_citations(api, fake_pipeline):
    fake_pipeline.generator.replies += [str(TRUE_NUMBER), "none"]
    body = ask_body(f"Please give me a summary of the {SUMMARIZED}", stream=True)
    with api.stream("POST", "/v1/chat/completions", json=body) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == SUPPORTED  # the draft (each part's sentences as it is done) is not content
    assert "substantial international support" in "".join(c.get("rag", {}).get("draft", "") for c in chunks)
    rag = chunks[-1]["rag"]
    assert rag["verdict"].startswith("summary") and rag["abstained"] is False
    assert rag["summary"]["document"] == SUMMARIZED and rag["summary"]["sentences_chosen"] == 1
    assert [c["doc"] for c in rag["citations"]] == [SUMMARIZED] and rag["citations"][0]["start"] == 0
    assert len(fake_pipeline.generator.prompts) == 2  # the document's two parts, not a retrieved answer


def test_summarize_this_document_with_one_chosen_document_summarizes_it(api, fake_pipeline):
    fake_pipeline.generator.replies += [str(TRUE_NUMBER), ""]
    body = ask_body("Summarize this document.", rag={"documents": ["global-backing-*"]})
    reply = api.post("/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == SUPPORTED
    assert reply["rag"]["summary"]["document"] == SUMMARIZED


def test_a_question_about_a_summary_is_answered_from_passages_as_before(api, fake_pipeline):
    fake_pipeline.generator.replies.append("28")
    body = ask_body(f"In the summary of {SUMMARIZED}, how many nations signed the Bletchley Declaration?")
    rag = api.post("/v1/chat/completions", json=body).json()["rag"]
    assert "summary" not in rag and rag["verdict"] in ("likely answer", "uncertain: check the source")
    assert len(fake_pipeline.generator.prompts) == 1


def test_a_summary_of_a_document_changed_since_indexing_is_a_400_error_object(api, fake_pipeline):
    path = next(Path(d["path"]) for d in fake_pipeline.documents() if d["id"] == SUMMARIZED)
    path.write_text("changed", encoding="utf-8")
    error = assert_error(api.post("/v1/chat/completions", json=ask_body(f"Summarize {SUMMARIZED}")), 400,
                         param="messages")
    assert "changed since it was indexed" in error["message"]


def test_the_history_in_messages_rewrites_a_follow_up(api, fake_pipeline):
    fake_pipeline.generator.replies.append("NONE")
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What did China regulate in August 2023?"},
                {"role": "assistant", "content": "generative artificial intelligence [1]"},
                {"role": "user", "content": [{"type": "text", "text": "When was it enacted?"}]}]
    rag = api.post("/v1/chat/completions", json={"model": "rag:default", "messages": messages}).json()["rag"]
    assert rag["standalone_question"] == "When was it enacted? (What did China regulate in August 2023?)"


def test_models_lists_one_model_per_indexed_collection(api, fake_pipeline):
    Pipeline(fake_pipeline.settings.replace(collection="extra"), embedder=fake_pipeline.embedder,
             generator=fake_pipeline.generator).index([CORPUS / "xi-global-ai-collaboration.txt"])
    body = api.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["rag:default", "rag:extra"]
    assert body["data"][1]["rag"]["documents"] == 1


def test_malformed_json_is_400(api):
    error = assert_error(api.post("/v1/chat/completions", content=b'{"model": "rag:default", "messages": [',
                                  headers={"content-type": "application/json"}), 400)
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]
    assert_error(api.post("/v1/chat/completions", content=b"\xff\xfe", headers={"content-type": "application/json"}),
                 400)
    assert_error(api.post("/v1/chat/completions", json=[1, 2]), 400)


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "rag:default"}, "messages"),
    ({"model": "rag:default", "messages": []}, "messages"),
    ({"model": "rag:default", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"model": "rag:default", "messages": [{"role": "user", "content": 7}]}, "messages.0.content.str"),
    ({"model": "rag:default", "stream": "perhaps", "messages": [{"role": "user", "content": "hi"}]}, "stream"),
])
def test_an_invalid_field_is_400_naming_it_where_fastapi_would_say_422(api, body, param):
    error = assert_error(api.post("/v1/chat/completions", json=body), 400, param=param)
    assert error["message"].startswith(param)


@pytest.mark.parametrize("messages, param, words", [
    ([{"role": "user", "content": ""}], "messages.0", "empty"),
    ([{"role": "user", "content": "x" * 3000}], "messages.0", "limit"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "messages.1", "last message"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages.0", "only text"),
])
def test_a_question_that_cannot_be_asked_is_400(api, messages, param, words):
    error = assert_error(api.post("/v1/chat/completions", json={"model": "rag:default", "messages": messages}),
                         400, param=param)
    assert words in error["message"]


@pytest.mark.parametrize("model", ["rag:nope", "gpt-4o", "rag:../index", ""])
def test_an_unknown_model_is_404(api, model):
    error = assert_error(api.post("/v1/chat/completions", json={**ask_body(), "model": model}), 404,
                         code="model_not_found", param="model")
    assert "does not exist" in error["message"]


def test_a_body_over_the_limit_is_413_even_without_a_content_length(api):
    assert_error(api.post("/v1/chat/completions", json=ask_body("word " * 3000)), 413, code="request_too_large")

    def chunked():
        yield b'{"model": "rag:default", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"}]}'

    assert_error(api.post("/v1/chat/completions", content=chunked()), 413, code="request_too_large")


def test_an_unknown_path_and_a_wrong_method_are_openai_errors(api):
    assert_error(api.get("/v1/nothing"), 404)
    assert_error(api.get("/v1/chat/completions"), 405)


def test_with_a_key_every_request_must_carry_it(fake_pipeline):
    api = TestClient(create_app(fake_pipeline, api_key=KEY), base_url="http://127.0.0.1")
    # The right key first: six wrong ones make a client wait (tests/frontends/test_access.py).
    assert api.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": f"Bearer {KEY}x"}):
        assert_error(api.get("/v1/models", headers=headers), 401, code="invalid_api_key")
        assert_error(api.post("/v1/chat/completions", json=ask_body(), headers=headers), 401, code="invalid_api_key")


def test_a_request_from_another_sites_page_or_under_another_host_name_gets_an_error_object(api):
    assert_error(api.get("/v1/models", headers={"Origin": "https://evil.example"}), 403, code="cross_origin")
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io", "foo.localhost", "[::1", ""):
        assert_error(api.get("/v1/models", headers={"Host": host}), 400, code="invalid_host")
        assert_error(api.post("/v1/chat/completions", json=ask_body(), headers={"Host": host}), 400,
                     code="invalid_host")
    for host in ("127.0.0.1:8000", "LOCALHOST:8000", "[::1]:8000", "localhost"):
        assert api.get("/v1/models", headers={"Host": host}).status_code == 200, host


def test_a_full_queue_answers_429_at_once(fake_pipeline):
    api = TestClient(create_app(fake_pipeline, queue_limit=0), base_url="http://127.0.0.1")
    error = assert_error(api.post("/v1/chat/completions", json=ask_body()), 429, code="queue_full")
    assert error["type"] == "rate_limit_exceeded"


def test_turns_admit_up_to_the_limit_and_free_a_place_when_one_leaves():
    turns = Turns(slots=1, limit=2)
    turns.enter()
    turns.enter()
    with pytest.raises(Exception, match="already waiting") as exc:
        turns.enter()
    assert exc.value.status == 429
    turns.leave()
    turns.enter()
    assert turns.in_flight == 2


def test_a_pipeline_failure_is_503_with_its_class_message_and_the_details_only_in_the_log(
        api, fake_pipeline, monkeypatch, caplog):
    from rag.errors import GenerationFailed

    def broken(*args, **kwargs):
        raise GenerationFailed("the generation server at http://10.1.2.3:9 cannot be reached")
        yield

    monkeypatch.setattr(fake_pipeline.generator, "stream", broken)
    error = assert_error(api.post("/v1/chat/completions", json=ask_body()), 503, code="unavailable")
    assert error["message"] == "the generation server failed to answer; see the server's log"
    assert "10.1.2.3" in caplog.text  # the server's log keeps what the client is not told


def test_a_collection_without_an_index_is_404_without_the_servers_path(api, fake_pipeline, monkeypatch):
    from rag.errors import IndexMissing

    def missing(*args, **kwargs):
        raise IndexMissing("no index in /home/alice/private/idx/: build one with `rag index [PATH]`")
        yield

    monkeypatch.setattr(fake_pipeline.generator, "stream", missing)
    error = assert_error(api.post("/v1/chat/completions", json=ask_body()), 404, code="model_not_found",
                         param="model")
    assert error["message"] == "this collection has no index yet: build one with `rag index`"  # the path before
    with api.stream("POST", "/v1/chat/completions", json=ask_body(stream=True)) as r:
        text = "".join(r.iter_text())
    assert "model_not_found" in text and "/home/alice" not in text


def test_an_unexpected_failure_is_500_without_a_traceback(api, fake_pipeline, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("secret internals")
        yield

    monkeypatch.setattr(fake_pipeline.generator, "stream", broken)
    error = assert_error(api.post("/v1/chat/completions", json=ask_body()), 500)
    assert "secret" not in error["message"] and error["type"] == "server_error"
    with api.stream("POST", "/v1/chat/completions", json=ask_body(stream=True)) as r:
        text = "".join(r.iter_text())
    assert '"server_error"' in text and "secret" not in text and "[DONE]" not in text


# --- a real `rag serve` --------------------------------------------------------------------------------
@contextmanager
def rag_serve(index_dir: Path, *args: str, key: str = KEY, host: str = "127.0.0.1"):
    """`rag serve` in a subprocess on a free loopback port; yields its base URL once it says it is serving."""
    port = free_port()
    env = {**os.environ, "RAG_API_KEY": key, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(index_dir),
                             "--host", host, "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving "), line + proc.stderr.read()
        wait_until_listening(proc, port)
        yield f"http://127.0.0.1:{port}/v1", port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served_index(tmp_path_factory, real_embedder):
    """The bundled corpus indexed with the real embedder in the default collection."""
    root = tmp_path_factory.mktemp("serve")
    shutil.copytree(CORPUS, root / "corpus")
    Pipeline(Settings.load(index_dir=root / "index"), embedder=real_embedder).index([root / "corpus"])
    return root / "index"


@pytest.fixture(scope="module")
def server(served_index):
    """`rag serve` with the default tier, behind an API key."""
    with rag_serve(served_index) as url:
        yield url


@pytest.mark.integration
def test_the_openai_client_streams_an_answer_and_reads_its_citations(server):
    from openai import OpenAI

    url, _ = server
    client = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
    stream = client.chat.completions.create(model="rag:default", stream=True,
                                            messages=[{"role": "user", "content": BLETCHLEY}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("28") and "[1]" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    rag = chunks[-1].model_extra["rag"]
    assert rag["abstained"] is False and rag["verdict"] in ("likely answer", "uncertain: check the source")
    assert rag["citations"][0]["doc"] == "xi-global-ai-collaboration.txt"
    assert "28 nations" in rag["citations"][0]["quote"]
    assert 0 < rag["confidence"] <= 1


@pytest.mark.integration
def test_the_openai_client_gets_a_whole_completion_and_the_model_list(server):
    from openai import OpenAI

    url, _ = server
    client = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
    assert [m.id for m in client.models.list()] == ["rag:default"]
    reply = client.chat.completions.create(model="rag:default", messages=[
        {"role": "user", "content": "Which countries refused to sign the Bletchley Declaration?"}])
    assert reply.choices[0].message.content == "I can't find that in the documents."
    assert reply.model_extra["rag"]["abstained"] is True and reply.model_extra["rag"]["closest_passages"]


@pytest.mark.integration
def test_the_real_server_refuses_a_wrong_key_a_big_body_and_bad_json_with_openai_errors(server):
    import openai

    url, port = server
    with pytest.raises(openai.AuthenticationError) as exc:
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=url, api_key=KEY, max_retries=0).chat.completions.create(
            model="rag:nope", messages=[{"role": "user", "content": "hi"}])
    for body, status in ((b"{" + b" " * 2_000_000 + b"}", 413), (b'{"model": ', 400)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == status
        assert set(json.loads(response.read())["error"]) == {"message", "type", "param", "code"}
        conn.close()


def test_off_loopback_without_a_key_it_refuses_to_start_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    env.pop("RAG_API_KEY", None)
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        done = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(tmp_path), "--host", host,
                               "--port", str(free_port())], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "RAG_API_KEY" in done.stderr, done.stderr


def test_a_port_in_use_is_a_one_line_error_before_any_model_loads(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--index-dir", str(tmp_path),
                               "--port", str(busy.getsockname()[1])], capture_output=True, text=True, env=env,
                              timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cannot listen on 127.0.0.1:" in done.stderr, done.stderr


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_three_clients_of_the_default_tier_at_once_each_get_a_whole_checked_answer(server):
    """The default tier, which answers: each client's stream ends in a grounded answer, its marker cited."""
    from openai import OpenAI

    url, _ = server
    questions = [BLETCHLEY, "When was China's generative AI regulation enacted?", BLETCHLEY]
    results: dict[int, tuple[str, dict]] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            api = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
            chunks = list(api.chat.completions.create(model="rag:default", stream=True, messages=[
                {"role": "user", "content": questions[i]}]))
            assert chunks[-1].choices[0].finish_reason == "stop"
            results[i] = ("".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1].model_extra["rag"])
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(results) == [0, 1, 2]
    for i, (text, rag) in results.items():
        marks = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
        assert not rag["abstained"] and rag["verdict"] != "not found in the documents", (questions[i], text)
        assert marks and marks <= {c["id"] for c in rag["citations"]}, (text, rag)
        assert rag["standalone_question"] == questions[i]
    assert results[0][0] == results[2][0] and results[0][0].startswith("28")


@pytest.mark.integration
@pytest.mark.slow
def test_eight_clients_at_once_all_get_complete_answers(served_index):
    """8 streaming clients in threads (two per question) against the fastest tier: every one ends with its
    citations and [DONE]."""
    from openai import OpenAI

    questions = [BLETCHLEY, "When did China's generative AI regulation take effect?",
                 "Who is Gina Raimondo?", "What is the GDP of Brazil?"]
    results: dict[int, tuple[str, dict]] = {}
    errors: list[BaseException] = []

    with rag_serve(served_index, "--model", "smollm2-135m") as (url, _):
        def client(i: int) -> None:
            try:
                api = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
                chunks = list(api.chat.completions.create(model="rag:default", stream=True, messages=[
                    {"role": "user", "content": questions[i % len(questions)]}]))
                text = "".join(c.choices[0].delta.content or "" for c in chunks)
                assert chunks[-1].choices[0].finish_reason == "stop"
                results[i] = (text, chunks[-1].model_extra["rag"])
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sorted(results) == list(range(CLIENTS))
    for i, (text, rag) in results.items():
        assert rag["standalone_question"] == questions[i % len(questions)]
        if rag["abstained"]:
            assert text == "I can't find that in the documents."
        else:
            # Every marker in the text names a citation that came back with it, and there is one.
            marks = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
            assert marks and rag["citations"] and marks <= {c["id"] for c in rag["citations"]}, (text, rag)
    # The same question gets the same answer from every client: nothing was mixed up between them.
    for q in range(len(questions)):
        assert len({results[i][0] for i in results if i % len(questions) == q}) == 1
