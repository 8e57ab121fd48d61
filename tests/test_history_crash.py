"""Saved conversations survive SIGKILL: killed mid-answer, `rag chat` loses at most that answer; killed
mid-write, a writer leaves a readable store holding every turn it had committed, each one whole."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT

from rag.history import FILE_NAME, History

SEED = 20261130
TRIALS = 12
# Each turn carries this many characters of passage, so a write takes long enough to be interrupted.
PASSAGE_CHARS = 400_000

CHAT_WORKER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from conftest import FakeEmbedder, FakeGenerator
    from rag import cli
    from rag.config import Settings
    from rag.pipeline import Pipeline

    class StallsOnTheThirdAnswer(FakeGenerator):
        def stream(self, messages, *args, **kwargs):
            if len(self.prompts) == 2:
                yield "The Bletchley "
                print("streaming", file=sys.stderr, flush=True)
                time.sleep(600)
            yield from super().stream(messages, *args, **kwargs)

    settings = Settings.load(index_dir=sys.argv[1], min_relevance=0.05, min_coverage=0.3)
    reply = "The Bletchley Declaration was signed by 28 nations [1]."
    pipeline = Pipeline(settings, embedder=FakeEmbedder(), generator=StallsOnTheThirdAnswer(reply, reply, reply))
    cli._pipeline = lambda args: pipeline
    sys.exit(cli.main(["chat"]))
""")

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from rag.history import History
    from rag.records import Answer, Citation, Sentence

    store = History(sys.argv[1])
    latest = store.latest()
    conversation, n = (latest.id, latest.turns) if latest else (None, 0)
    print("ready", n, flush=True)
    while True:
        passage = f"turn {{n}} " + "x" * {size}
        answer = Answer(question=f"question {{n}}", text=f"answer {{n}} [1]", abstained=False,
                        sentences=(Sentence(f"answer {{n}} [1]", (1,), True),),
                        citations=(Citation(1, "d.txt", None, 0, len(passage), passage),), raw="",
                        confidence=0.5, verdict="uncertain: check the source")
        print("writing", n, flush=True)
        conversation = store.save_turn(conversation, answer, "m", "default")
        print("saved", n, flush=True)
        n += 1
""")


def integrity(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_rag_chat_killed_mid_answer_loses_only_that_answer(fake_pipeline, tmp_path):
    index_dir = fake_pipeline.settings.index_dir
    script = tmp_path / "chat_worker.py"
    script.write_text(CHAT_WORKER.format(root=str(ROOT), tests=str(ROOT / "tests")), encoding="utf-8")
    questions = ["How many nations signed the Bletchley Declaration?", "Which nations signed the declaration?",
                 "When was the Bletchley Declaration signed?"]
    proc = subprocess.Popen([sys.executable, str(script), str(index_dir)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write("".join(q + "\n" for q in questions))
    proc.stdin.flush()
    line = proc.stderr.readline()
    assert line == "streaming\n", line + proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    path = index_dir / FILE_NAME
    assert integrity(path) == "ok"
    saved = History(path)
    [conversation] = saved.conversations()
    turns = saved.turns(conversation.id)
    assert [t.question for t in turns] == questions[:2]
    assert all("28 nations [1]" in t.answer.text and t.answer.citations for t in turns)


@pytest.mark.slow
def test_a_writer_killed_at_random_moments_leaves_every_committed_turn_whole(tmp_path):
    path = tmp_path / "index" / FILE_NAME
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), size=PASSAGE_CHARS), encoding="utf-8")
    rng = random.Random(SEED)
    committed = mid_write = 0
    for _ in range(TRIALS):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        ready = proc.stdout.readline().split()
        assert ready == ["ready", str(committed)], ready + [proc.stderr.read()]
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines = out.splitlines()
        reported = committed + sum(1 for line in lines if line.startswith("saved "))
        mid_write += bool(lines) and lines[-1].startswith("writing ")

        assert integrity(path) == "ok"
        saved = History(path)
        conversations = saved.conversations()
        assert len(conversations) <= 1
        turns = saved.turns(conversations[0].id) if conversations else []
        # Every turn the writer saw committed is there; at most the one in flight besides.
        assert reported <= len(turns) <= reported + 1
        for n, turn in enumerate(turns):
            [citation] = turn.answer.citations
            assert turn.question == f"question {n}" and turn.answer.text == f"answer {n} [1]"
            assert citation.text == f"turn {n} " + "x" * PASSAGE_CHARS
        committed = len(turns)
    # The kills landed inside save_turn (after "writing", before "saved") in most trials.
    assert mid_write >= TRIALS // 2, f"only {mid_write} of {TRIALS} kills landed mid-write"
    assert committed >= TRIALS // 2, "the writer was killed before it saved anything in most trials"
    assert os.stat(path).st_mode & 0o777 == 0o600
