"""Generation through an OpenAI-compatible server: a scripted loopback server for the protocol and its
failures, then the real `python -m llama_cpp.server` with the bundled model behind the CLI and the UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, free_port, running_app

from rag.answer.remote import RemoteGenerator, estimate_tokens
from rag.config import Settings
from rag.errors import BadInput, GenerationFailed

KEY = "sk-test-d41d8cd98f00b204e980"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]


# --- a scripted server: each test says what each path answers ------------------------------------
class Script(BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).seen.append((self.path, dict(self.headers), body))
        status, content_type, payload = self.routes.get(self.path, (404, "text/plain", "not found"))
        if callable(payload):
            payload = payload(self, body)
        data = payload.encode() if isinstance(payload, str) else payload
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is what some tests expect


@contextmanager
def scripted_server(routes: dict):
    """A loopback HTTP server answering POSTs from `routes`: path -> (status, content type, body)."""
    Script.routes, Script.seen = routes, []
    server = QuietServer(("127.0.0.1", 0), Script)
    # shutdown() waits for serve_forever's next poll: the default 0.5 s was half a second idle a test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sse(*chunks, done: bool = True) -> tuple[int, str, str]:
    """A 200 event stream of the given chunks (dicts become JSON), ending in [DONE] unless told."""
    lines = [": ping\n\n"] + [f"data: {json.dumps(c) if isinstance(c, dict) else c}\n\n" for c in chunks]
    return 200, "text/event-stream", "".join(lines) + ("data: [DONE]\n\n" if done else "")


def delta(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def test_stream_yields_each_delta_until_done_and_sends_the_sampling_fields_and_key():
    routes = {"/v1/chat/completions": sse({"choices": [{"delta": {"role": "assistant"}}]},
                                          delta("Hello"), delta(" there"), delta("", "stop"))}
    with scripted_server(routes) as url:
        gen = RemoteGenerator(url + "/v1/", model="smol", api_key=KEY, temperature=0.0, seed=7)
        assert list(gen.stream(MESSAGES, max_tokens=32)) == ["Hello", " there"]
    path, headers, body = Script.seen[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == f"Bearer {KEY}"
    assert body == {"messages": MESSAGES, "max_tokens": 32, "temperature": 0.0, "top_p": 0.95, "seed": 7,
                    "stream": True, "model": "smol", "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}


def test_strict_openai_mode_sends_only_standard_fields():
    with scripted_server({"/v1/chat/completions": sse(delta("ok", "stop"))}) as url:
        assert list(RemoteGenerator(url, llama_sampling=False).stream(MESSAGES)) == ["ok"]
    assert set(Script.seen[0][2]) == {"messages", "max_tokens", "temperature", "top_p", "seed", "stream"}
    assert "Authorization" not in Script.seen[0][1]


def test_a_usage_chunk_without_choices_is_skipped():
    routes = {"/v1/chat/completions": sse(delta("ok", "stop"), {"choices": [], "usage": {"total_tokens": 3}})}
    with scripted_server(routes) as url:
        assert list(RemoteGenerator(url).stream(MESSAGES)) == ["ok"]


@pytest.mark.parametrize(("answer", "expected"), [
    ((500, "application/json", '{"detail": "model exploded"}'), "answered HTTP 500: {\"detail\": \"model exploded\"}"),
    (sse("{not json", done=False), "sent a line that is not JSON: {not json"),
    (sse({"id": "x", "object": "chat.completion.chunk"}), "sent a chunk with no choices"),
    (sse({"error": {"message": "out of memory"}}), "reported an error: {\"message\": \"out of memory\"}"),
    (sse(delta("Hel"), delta("lo")), "stopped the answer before it was finished"),
    (sse(delta("Hel"), done=False), "stopped the answer before it was finished"),
    ((200, "application/json", '{"choices": [{"message": {"content": "hi"}}]}'), "sent no completion chunks"),
])
def test_a_bad_answer_is_a_one_line_generation_error(answer, expected):
    with scripted_server({"/v1/chat/completions": answer}) as url:
        with pytest.raises(GenerationFailed) as caught:
            list(RemoteGenerator(url).stream(MESSAGES))
    message = str(caught.value)
    assert message.startswith(f"the generation server at {url} ") and expected in message
    assert "\n" not in message


def test_a_server_that_is_down_is_a_one_line_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GenerationFailed, match=r"cannot be reached: ConnectError"):
        list(RemoteGenerator(url, api_key=KEY).stream(MESSAGES))


def test_a_server_that_stalls_times_out_with_a_one_line_error():
    def stall(handler, body):
        time.sleep(1.5)
        return "data: [DONE]\n\n"

    with scripted_server({"/v1/chat/completions": (200, "text/event-stream", stall)}) as url:
        began = time.perf_counter()
        with pytest.raises(GenerationFailed, match=r"did not answer in time \(ReadTimeout\)"):
            list(RemoteGenerator(url, read_timeout=0.3).stream(MESSAGES))
        assert time.perf_counter() - began < 1.4


def test_the_api_key_is_blanked_even_when_the_server_echoes_it():
    def echo(handler, body):
        return json.dumps({"detail": f"bad key {handler.headers['Authorization']}"})

    with scripted_server({"/v1/chat/completions": (401, "application/json", echo)}) as url:
        with pytest.raises(GenerationFailed) as caught:
            list(RemoteGenerator(url, api_key=KEY).stream(MESSAGES))
    message = str(caught.value)
    assert "HTTP 401" in message and "bad key Bearer ***" in message and KEY not in message


def test_a_password_in_the_url_is_left_out_of_the_name_used_in_messages():
    gen = RemoteGenerator("http://user:hunter2@127.0.0.1:9/v1")
    assert gen.where == "http://127.0.0.1:9/v1" and "hunter2" not in gen.name


def test_token_counts_come_from_llama_cpp_servers_tokenize_endpoint_less_its_bos():
    def tokenize(handler, body):
        return json.dumps({"tokens": [1] + list(range(len(body["input"].split())))})

    with scripted_server({"/extras/tokenize": (200, "application/json", tokenize)}) as url:
        gen = RemoteGenerator(url, model="smol", api_key=KEY)
        assert gen.count_tokens("three word text") == 3
        assert gen.count_tokens("three word text") == 3
        assert gen.count_tokens("") == 0
    assert [(p, b) for p, _, b in Script.seen] == [
        ("/extras/tokenize", {"input": "", "model": "smol"}),
        ("/extras/tokenize", {"input": "three word text", "model": "smol"}),  # the repeat was cached
        ("/extras/tokenize", {"input": "", "model": "smol"})]


def test_token_counts_use_llama_cpp_s_own_tokenize_endpoint_when_that_is_the_server():
    def tokenize(handler, body):
        return json.dumps({"tokens": list(range(len(body["content"].split())))})

    with scripted_server({"/tokenize": (200, "application/json", tokenize)}) as url:
        assert RemoteGenerator(url).count_tokens("four words of text") == 4
    assert Script.seen[-1][2] == {"content": "four words of text", "add_special": False}


def test_without_a_tokenize_endpoint_counts_are_an_over_estimate():
    with scripted_server({}) as url:
        assert RemoteGenerator(url).count_tokens("x" * 30) == estimate_tokens("x" * 30) == 10


def test_a_rejected_key_on_tokenize_is_an_error_not_a_silent_estimate():
    with scripted_server({"/extras/tokenize": (401, "application/json", '{"detail": "Invalid API key"}')}) as url:
        with pytest.raises(GenerationFailed, match="HTTP 401"):
            RemoteGenerator(url, api_key="wrong").count_tokens("text")


@pytest.mark.parametrize("url", ["gen-host:8000", "ftp://gen-host", "http://", "http://host:notaport"])
def test_an_unusable_url_is_bad_input(url):
    with pytest.raises(BadInput, match="llm_url must be an http"):
        RemoteGenerator(url)


def test_settings_choose_the_remote_generator_and_read_the_key_from_the_named_variable(monkeypatch):
    from rag.pipeline import Pipeline

    monkeypatch.setenv("RAG_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RAG_LLM_API_KEY_ENV", "MY_GEN_KEY")
    monkeypatch.setenv("MY_GEN_KEY", KEY)
    monkeypatch.setenv("RAG_LLM_N_CTX", "4096")
    gen = Pipeline(Settings.load()).generator
    assert isinstance(gen, RemoteGenerator)
    assert (gen.base, gen.n_ctx, gen.headers) == ("http://127.0.0.1:9", 4096, {"Authorization": f"Bearer {KEY}"})
    assert KEY not in gen.name and KEY not in repr(Settings.load())


def test_the_ui_answers_several_questions_at_once_only_with_a_generation_server(fake_pipeline):
    import app

    def limits(pipeline) -> dict:
        blocks = app.build_app(pipeline)
        return {fn.api_name: (fn.concurrency_limit, fn.concurrency_id) for fn in blocks.fns.values()
                if fn.api_name in {"ask", "respond", "add_files", "remove"}}

    # Uploads and removals take turns on their own lane, beside the answers (issue 26).
    assert limits(fake_pipeline) == {"ask": (1, "pipeline"), "respond": (1, "pipeline"),
                                     "add_files": (1, "documents"), "remove": (1, "documents")}
    fake_pipeline.settings = fake_pipeline.settings.replace(llm_url="http://127.0.0.1:9", llm_concurrency=6)
    assert limits(fake_pipeline) == {"ask": (6, "answers"), "respond": (6, "answers"),
                                     "add_files": (1, "documents"), "remove": (1, "documents")}


# --- the real thing: llama-cpp-python's server with the bundled model ----------------------------
@contextmanager
def llama_server(model: Path, log: Path, api_key: str = KEY, n_ctx: int = 2048, interrupt: bool = False):
    """`python -m llama_cpp.server` serving `model` on a free loopback port; yields its URL.

    Requests run one at a time (llama-cpp-python's server has no parallel slots); interrupt_requests
    is off unless asked, so a queued request does not cut off the answer being streamed.
    """
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--seed", "7",
               "--n_threads", "2", "--n_threads_batch", "2", "--interrupt_requests", str(interrupt)]
    # The key goes in the environment, not the command line, where `ps` would show it.
    env = {**os.environ, "API_KEY": api_key}
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited {server.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {api_key}"},
                             timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server not ready after 180 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def generation_server(tmp_path_factory):
    from rag.answer.models import bundled_model_path

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(bundled_model_path(), log) as url:
        yield url


@pytest.fixture(scope="module")
def eval_index(tmp_path_factory, real_embedder):
    """The corpus indexed once with the real embedder, for the in-process and the remote runs."""
    from rag.pipeline import Pipeline

    index_dir = tmp_path_factory.mktemp("remote") / "index"
    Pipeline(Settings.load(index_dir=index_dir), embedder=real_embedder).index([CORPUS])
    return index_dir


def first_eval_questions(n: int = 6) -> list[str]:
    lines = (ROOT / "eval" / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines[:n]]


@pytest.fixture(scope="module")
def in_process_answers(eval_index, real_embedder) -> list[dict]:
    """The first eval questions answered by a fresh in-process model (same file, seed, n_ctx, threads)."""
    from rag.answer.generate import LlamaGenerator
    from rag.answer.models import bundled_model_path
    from rag.pipeline import Pipeline

    generator = LlamaGenerator(str(bundled_model_path()), n_ctx=2048, n_threads=2, temperature=0.0, seed=7)
    # A server decodes one token at a time; drafts checked in a batch (lookup.py) round a little
    # differently and can tip a near tie in a long reply, so the in-process model decodes as it does.
    generator.lookup = False
    # A server decodes freely (it has no span constraint), so the in-process model does too here.
    pipeline = Pipeline(Settings.load(index_dir=eval_index, span_answers=False), embedder=real_embedder,
                        generator=generator)
    return [pipeline.ask(q).to_dict() for q in first_eval_questions()]


def run_rag(args: list[str], index_dir: Path, url: str, key: str = KEY, stdin: str | None = None,
            **settings: str) -> subprocess.CompletedProcess:
    """The `rag` CLI in a subprocess, generating through the server at `url`."""
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_LLM_URL": url, "RAG_LLM_API_KEY": key,
           **{f"RAG_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)


@pytest.mark.integration
def test_rag_ask_through_the_server_gives_the_in_process_answers_on_the_first_6_eval_items(
        generation_server, eval_index, in_process_answers):
    questions = first_eval_questions()
    run = run_rag(["ask", "-", "--json"], eval_index, generation_server, stdin="\n".join(questions) + "\n")
    assert run.returncode == 0, run.stderr
    remote = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["question"] for r in remote] == questions
    for local, through_server in zip(in_process_answers, remote, strict=True):
        assert through_server["raw"] == local["raw"], local["question"]
        assert through_server["answer"] == local["answer"], local["question"]
        assert through_server["citations"] == local["citations"], local["question"]
    assert sum(bool(a["raw"]) for a in remote) >= 5  # the model wrote something to compare for most
    assert KEY not in run.stdout and KEY not in run.stderr


@pytest.mark.integration
def test_the_ui_ask_endpoint_answers_through_the_server(generation_server, tmp_path, monkeypatch,
                                                        real_embedder, in_process_answers):
    from gradio_client import Client

    monkeypatch.setenv("RAG_LLM_URL", generation_server)
    monkeypatch.setenv("RAG_LLM_API_KEY", KEY)
    question = first_eval_questions()[0]
    with running_app(tmp_path, real_embedder, None) as url:
        client = Client(url, verbose=False, analytics_enabled=False)
        result = client.predict(question, api_name="/ask")
        client.close()
    assert result["question"] == question
    assert (result["raw"], result["answer"]) == (in_process_answers[0]["raw"], in_process_answers[0]["answer"])


@pytest.mark.integration
def test_a_wrong_api_key_is_refused_in_one_line_that_does_not_show_it(generation_server, eval_index):
    wrong = "sk-wrong-5f4dcc3b5aa765d61d83"
    run = run_rag(["ask", "How many nations signed the Bletchley Declaration?", "--json"], eval_index,
                  generation_server, key=wrong)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "HTTP 401" in run.stderr
    assert wrong not in run.stderr and KEY not in run.stderr


@pytest.mark.integration
def test_a_generation_server_that_is_down_makes_rag_ask_exit_2_with_one_line(eval_index):
    run = run_rag(["ask", "How many nations signed the Bletchley Declaration?"], eval_index,
                  f"http://127.0.0.1:{free_port()}")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("rag: error: the generation server at http://127.0.0.1:")
    assert "cannot be reached" in run.stderr and run.stderr.count("\n") == 1 and KEY not in run.stderr


@pytest.mark.integration
def test_a_stream_that_llama_cpp_server_interrupts_is_an_error_not_a_short_answer(tmp_path):
    """With its default interrupt_requests, llama_cpp.server ends a stream with [DONE] when another
    request arrives; without a finish_reason that is reported, never passed off as the answer."""
    from rag.answer.models import bundled_model_path

    count = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]
    with llama_server(bundled_model_path(), tmp_path / "server.log", interrupt=True) as url:
        gen = RemoteGenerator(url, api_key=KEY)
        first = gen.stream(count, max_tokens=200)
        assert next(first)
        second = []
        arrival = threading.Thread(target=lambda: second.extend(gen.stream(count, max_tokens=8)))
        arrival.start()
        with pytest.raises(GenerationFailed, match="stopped the answer before it was finished"):
            list(first)
        arrival.join(timeout=120)
    assert "".join(second).startswith("1, 2")


@pytest.mark.integration
def test_a_local_gguf_counts_tokens_like_the_in_process_model_and_prints_nothing(capfd):
    from rag.answer.generate import LlamaGenerator
    from rag.answer.models import bundled_model_path

    text = "The Bletchley Declaration was signed by 28 nations <|im_end|> in 2023."
    gen = RemoteGenerator("http://127.0.0.1:9", tokenizer=str(bundled_model_path()))
    counted = gen.count_tokens(text)
    assert capfd.readouterr().err == ""
    assert counted == LlamaGenerator(str(bundled_model_path()), n_ctx=512).count_tokens(text) > 10


def test_a_missing_local_tokenizer_file_is_a_clear_error(tmp_path):
    from rag.errors import ModelMissing

    with pytest.raises(ModelMissing, match="llm_tokenizer: no GGUF file at"):
        RemoteGenerator("http://127.0.0.1:9", tokenizer=str(tmp_path / "none.gguf")).count_tokens("text")
