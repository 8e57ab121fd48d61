"""Load: the real app on loopback answers many concurrent /ask calls, correctly and in bounded memory."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from conftest import running_app

from rag.pipeline import ABSTAIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 24
REQUEST_TIMEOUT_S = 600
MAX_RSS_GROWTH_MB = 300
BLETCHLEY = "How many nations signed the Bletchley Declaration?"
GDP = "What is the GDP of Brazil?"


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_embedder, real_generator):
    """The app served on a free loopback port over a copy of the corpus, like `python app.py`."""
    with running_app(tmp_path_factory.mktemp("load"), real_embedder, real_generator) as url:
        yield url


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False)


def check(question: str, result: dict) -> None:
    """The answer a correct pipeline gives: 28 nations, cited; or the abstention for Brazil's GDP."""
    assert result["question"] == question
    if question == BLETCHLEY:
        assert not result["abstained"] and "28" in result["answer"] and result["citations"]
    else:
        assert result["abstained"] and result["answer"] == ABSTAIN and result["citations"] == []


def test_24_concurrent_asks_all_get_correct_answers_in_bounded_memory(server):
    process = psutil.Process()
    check(BLETCHLEY, client(server).predict(BLETCHLEY, api_name="/ask"))  # loads and warms the models
    started = time.perf_counter()
    check(BLETCHLEY, client(server).predict(BLETCHLEY, api_name="/ask"))
    single = time.perf_counter() - started
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample_memory():
        while not done.wait(0.2):
            peak[0] = max(peak[0], process.memory_info().rss)

    questions = [BLETCHLEY if i % 2 == 0 else GDP for i in range(CLIENTS)]
    clients = [client(server) for _ in questions]
    go = threading.Barrier(CLIENTS + 1)

    def ask(c, question: str) -> tuple[float, dict]:
        go.wait(timeout=60)
        began = time.perf_counter()
        result = c.submit(question, api_name="/ask").result(timeout=REQUEST_TIMEOUT_S)
        return time.perf_counter() - began, result

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(ask, c, q) for c, q in zip(clients, questions, strict=True)]
        go.wait(timeout=60)
        began = time.perf_counter()
        outcomes = [f.result(timeout=REQUEST_TIMEOUT_S + 60) for f in futures]
        wall = time.perf_counter() - began
    done.set()
    sampler.join()
    for c in clients:
        c.close()

    for question, (_, result) in zip(questions, outcomes, strict=True):
        check(question, result)
    latencies = sorted(seconds for seconds, _ in outcomes)
    p50, p95 = latencies[len(latencies) // 2], latencies[math.ceil(0.95 * len(latencies)) - 1]
    growth_mb = (peak[0] - baseline) / 2**20
    print(f"\nload: {CLIENTS} concurrent /ask ({CLIENTS // 2} Bletchley, {CLIENTS // 2} GDP of Brazil), "
          f"{len(outcomes)}/{CLIENTS} correct in {wall:.1f} s = {CLIENTS / wall * 60:.1f} answers/min; "
          f"latency p50 {p50:.1f} s, p95 {p95:.1f} s, max {latencies[-1]:.1f} s "
          f"(one warm answer alone: {single:.1f} s); RSS {baseline / 2**20:.0f} MB, "
          f"peak growth {growth_mb:.0f} MB")
    assert growth_mb < MAX_RSS_GROWTH_MB
    # The server is still healthy afterwards.
    check(GDP, client(server).predict(GDP, api_name="/ask"))
