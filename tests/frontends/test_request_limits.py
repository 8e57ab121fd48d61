"""What one request may cost (issue 26, items 6 and 7): earlier turns have the question's limit, an
abandoned stream stops its generation, and one client cannot fill the queue. (Uploads' own lane:
tests/answer/test_remote_generator.py::test_the_ui_answers_several_questions_at_once_only_with_a_generation_server.)"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn
from conftest import FakeGenerator, free_port
from fastapi.testclient import TestClient
from test_serve import ask_body, assert_error

from rag.pipeline import MAX_QUESTION_CHARS
from rag.serve import Turns, create_app

HUGE_TURN = "What did China regulate in August 2023? " * 10_000  # 400 KB


def test_an_earlier_turn_past_the_question_limit_is_a_400_naming_it(fake_pipeline):
    api = TestClient(create_app(fake_pipeline), base_url="http://127.0.0.1")
    body = ask_body("When was it enacted?")
    body["messages"] = [{"role": "user", "content": HUGE_TURN}, {"role": "assistant", "content": "2023 [1]"},
                        *body["messages"]]
    error = assert_error(api.post("/v1/chat/completions", json=body), 400, param="messages.0")
    assert error["message"] == "messages[0]: this message is 399,999 characters long; the limit is 2,000"
    body["messages"][0]["content"] = "What did China \x1b[31mregulate\x1b[0m in August 2023?"
    assert api.post("/v1/chat/completions", json=body).status_code == 200


def test_the_standalone_question_has_the_question_limit_whatever_the_history(fake_pipeline):
    answer = fake_pipeline.ask("When was it enacted?", [{"role": "user", "content": HUGE_TURN},
                                                        {"role": "assistant", "content": "x" * 400_000}])
    assert answer.standalone_question.startswith("When was it enacted? (What did China regulate")
    assert len(answer.standalone_question) <= MAX_QUESTION_CHARS  # 400,023 characters before


def test_one_client_cannot_take_every_place_in_the_queue():
    turns = Turns(slots=1, limit=10, per_client=2)
    turns.enter("10.0.0.1")
    turns.enter("10.0.0.1")
    with pytest.raises(Exception, match="this client already has 2 requests waiting") as refused:
        turns.enter("10.0.0.1")
    assert (refused.value.status, refused.value.code) == (429, "client_queue_full")
    turns.enter("10.0.0.2")
    turns.leave("10.0.0.1")
    turns.enter("10.0.0.1")
    assert turns.in_flight == 3


class SlowGenerator(FakeGenerator):
    """Streams a long reply, a token every 20 ms, and counts the tokens it has made."""

    def __init__(self):
        super().__init__()
        self.made = 0

    def stream(self, messages, max_tokens=128, stop_at_newline=False, abstain_word=""):
        self.prompts.append(messages)
        for _ in range(500):
            time.sleep(0.02)
            self.made += 1
            yield "word "


@pytest.fixture
def slow_server(fake_pipeline):
    """The API over a slow generator, with one place in its queue, served by uvicorn on a free port."""
    fake_pipeline._generator = generator = SlowGenerator()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(fake_pipeline, queue_limit=1), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port, generator
    server.should_exit = True
    thread.join(10)


def send(port: int, body: dict) -> socket.socket:
    """A chat completion request sent on a new connection, its answer not yet read."""
    data = json.dumps(body).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%b" % (len(data), data))
    return conn


@pytest.mark.timeout(60)
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "whole"])
def test_a_client_that_goes_away_stops_its_generation_and_frees_its_place(slow_server, streaming):
    port, generator = slow_server
    conn = send(port, ask_body(stream=streaming))
    if streaming:
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")  # the first event: the generation is under way
    while generator.made < 5:
        time.sleep(0.02)
    conn.close()  # the client goes away
    time.sleep(1.5)
    made = generator.made
    time.sleep(0.5)
    assert generator.made == made < 200  # it went on to all 500 tokens (10 s) before
    with send(port, ask_body(stream=True)) as again:
        assert again.recv(4096).startswith(b"HTTP/1.1 200")  # not 429: the abandoned request left the queue

