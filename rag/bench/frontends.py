"""`rag bench`: the web UI's time against the CLI's for the same questions on the same pipeline, and
where the UI's extra time goes (queueing, history rewriting, the statement check, rendering, saving).

Both sides run their own real code in this process, interleaved: the CLI's `print_streamed` (its
output swallowed), and the UI's chat action `SavedConversations.respond` with each update put through
Gradio's own postprocessing of the chat and sources components, as the server does before sending it.
The queue is the Gradio server itself: the `/ask` endpoint over loopback HTTP against `Pipeline.ask`.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time

from ..config import PROJECT_ROOT

UI_RATIO = 1.1


class Timed:
    """Wraps a callable or an iterator factory, adding the seconds spent in it to `seconds`."""

    def __init__(self, call, iterate: bool = False):
        self.call, self.iterate, self.seconds = call, iterate, 0.0

    def __call__(self, *args, **kwargs):
        if not self.iterate:
            t0 = time.perf_counter()
            try:
                return self.call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return self._items(*args, **kwargs)

    def _items(self, *args, **kwargs):
        items = self.call(*args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.seconds += time.perf_counter() - t0
                return
            self.seconds += time.perf_counter() - t0
            yield item


def import_app():
    """The web UI's module (app.py at the project's root)."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    import app

    return app


def cli_answer(pipeline, question: str, history: list[dict]) -> tuple[float, object]:
    """Seconds the CLI takes to print an answer (`rag chat`'s own code), and the answer."""
    from ..console import print_streamed

    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        answer = print_streamed(pipeline, question, history)
    return time.perf_counter() - began, answer


def ui_answer(app, pipeline, components, question: str, turns: list[dict]) -> dict:
    """Seconds the UI's chat action takes, split: the pipeline (rewrite, check), rendering, saving."""
    saved = app.SavedConversations(app.Backend(pipeline))
    stream = Timed(pipeline.stream, iterate=True)
    save = Timed(saved.store.save_turn)
    rewrite = Timed(pipeline.rewrite_follow_up)
    pipeline.stream, saved.store.save_turn, pipeline.rewrite_follow_up = stream, save, rewrite
    chatbot, sources = components
    postprocess, updates, answer = 0.0, 0, None
    began = time.perf_counter()
    try:
        # The choices as the Settings tab shows them for this pipeline, so the UI keeps it.
        choices = (pipeline.settings.top_k, pipeline.settings.model or app.DEFAULT_MODEL, pipeline.settings.temperature)
        for chat, answered, html, *_ in saved.respond(None, True, question, turns, *choices):
            t0 = time.perf_counter()
            if isinstance(chat, list):
                chatbot.postprocess(chat)
                updates += 1
            if isinstance(html, str):
                sources.postprocess(html)
            postprocess += time.perf_counter() - t0
            if isinstance(answered, list) and answered and "record" in answered[-1]:
                answer = answered[-1]["record"]
    finally:
        del pipeline.stream, pipeline.rewrite_follow_up
    total = time.perf_counter() - began
    check = (answer.timings_ms.get("check", 0.0) / 1000) if answer else 0.0
    return {"total_s": total, "pipeline_s": stream.seconds, "rewrite_s": rewrite.seconds, "check_s": check,
            "render_s": total - stream.seconds - save.seconds, "gradio_postprocess_s": postprocess,
            "save_s": save.seconds, "updates": updates, "answer": answer}


def call_over_http(http, base: str, api: str, *data) -> str:
    """One call of a Gradio endpoint as a browser-less client makes it: POST the inputs, then read the
    event stream until the result. Plain HTTP, so the figure is the server's queue and transport, not a
    Python client's polling threads (`gradio_client` adds about 70 ms to an echo on this VM)."""
    from ..errors import RagError

    event = http.post(f"{base}gradio_api/call/{api}", json={"data": list(data)})
    event.raise_for_status()
    with http.stream("GET", f"{base}gradio_api/call/{api}/{event.json()['event_id']}") as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                if kind == "error":
                    raise RagError(f"/{api} failed over HTTP: {line[5:].strip()}")
                return line[5:].strip()
    raise RagError(f"/{api}: the event stream ended without a result")


def queue_overhead(app, pipeline, question: str, runs: int) -> dict:
    """The Gradio server's own cost: `/ask` over loopback HTTP against `Pipeline.ask` in this process."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = app.serve(app.build_app(pipeline), "127.0.0.1", port, block=False)
    base = f"http://127.0.0.1:{port}/"
    try:
        with httpx.Client(timeout=600) as http:
            call_over_http(http, base, "ask", question, None)
            http_s, local = [], []
            for _ in range(runs):
                forget_last_prompt(pipeline)
                t0 = time.perf_counter()
                pipeline.ask(question)
                local.append(time.perf_counter() - t0)
                forget_last_prompt(pipeline)
                t0 = time.perf_counter()
                call_over_http(http, base, "ask", question, None)
                http_s.append(time.perf_counter() - t0)
    finally:
        server.should_exit = True
    return {"http_s": statistics.median(http_s), "in_process_s": statistics.median(local),
            "queue_s": statistics.median(http_s) - statistics.median(local), "runs": runs}


def bench_ui_against_cli(pipeline, questions: tuple[str, ...], runs: int = 1, http: bool = True) -> dict:
    """The UI's seconds per answer against the CLI's, per question and split, interleaved which goes first.

    Each question is asked alone and then as a follow-up after the previous one (so history rewriting
    counts), on both sides with the same history.
    """
    app = import_app()
    blocks = app.build_app(pipeline)
    by_id = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
    components = (by_id["chat"], by_id["sources"])
    pipeline.ask(questions[0])
    rows = []
    for n in range(runs):
        for i, question in enumerate(questions):
            earlier = questions[i - 1] if i else ""
            history = [{"role": "user", "content": earlier}, {"role": "assistant", "content": "…"}] if earlier else []
            turns = [{"question": earlier, "answer": "…", "html": "…"}] if earlier else []
            sides = {}
            for side in (("cli", "ui") if (n + i) % 2 == 0 else ("ui", "cli")):
                forget_last_prompt(pipeline)
                if side == "cli":
                    sides["cli_s"] = cli_answer(pipeline, question, history)[0]
                else:
                    sides["ui"] = ui_answer(app, pipeline, components, question, turns)
            ui = sides.pop("ui")
            answer = ui.pop("answer")
            rows.append({"question": question, "follow_up": bool(earlier), "cli_s": round(sides["cli_s"], 3),
                         **{k: round(v, 4) if isinstance(v, float) else v for k, v in ui.items()},
                         "mode": answer.mode if answer else None})
    out = {"rows": rows, "cli_p50_s": _median(r["cli_s"] for r in rows),
           "ui_p50_s": _median(r["total_s"] for r in rows),
           "ui_over_cli": _median(r["total_s"] / r["cli_s"] for r in rows),
           "split_p50_s": {k: _median(r[k] for r in rows)
                           for k in ("pipeline_s", "rewrite_s", "check_s", "render_s", "gradio_postprocess_s",
                                     "save_s")}}
    queue = 0.0
    if http:
        out["queue"] = queue_overhead(app, pipeline, questions[0], max(1, runs))
        queue = max(0.0, out["queue"]["queue_s"])
    # What a person waits for in the browser: the chat action, Gradio's postprocessing and its queue.
    out["ui_over_cli_with_queue"] = _median((r["total_s"] + r["gradio_postprocess_s"] + queue) / r["cli_s"]
                                            for r in rows)
    out["met"] = out["ui_over_cli_with_queue"] <= UI_RATIO
    return out


def forget_last_prompt(pipeline) -> None:
    """Leave the model's context as a running app's is before a new question: the kept fixed prefixes,
    not this very question's prompt, which the other side just evaluated."""
    llm = getattr(pipeline.generator, "llm", None)
    if llm is not None:
        llm.reset()


def ui_lines(figures: dict) -> list[str]:
    """The UI-against-CLI section of bench.md."""
    split = figures["split_p50_s"]
    queue = figures.get("queue", {})
    return ["", "## The web UI against the CLI (same pipeline, same questions, interleaved)", "",
            f"CLI p50 {figures['cli_p50_s']} s; UI chat action p50 {figures['ui_p50_s']} s "
            f"(ratio p50 {figures['ui_over_cli']}); with Gradio's postprocessing and its queue "
            f"(/ask over loopback {queue.get('http_s', 0):.3f} s against {queue.get('in_process_s', 0):.3f} s "
            f"in process): **{figures['ui_over_cli_with_queue']}×** (target ≤ {UI_RATIO}).", "",
            "| part of the UI's answer, p50 | seconds |", "|---|---|",
            *(f"| {k.removesuffix('_s').replace('_', ' ')} | {v} |" for k, v in split.items()),
            f"| Gradio queue and HTTP (/ask) | {queue.get('queue_s', 0):.3f} |"]


def _median(values) -> float:
    return round(statistics.median(list(values)), 4)
