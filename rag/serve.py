"""`rag serve`: the pipeline behind an OpenAI-compatible API, one model per collection.

`GET /v1/models` lists `rag:default` and `rag:NAME` for each indexed collection. `POST /v1/chat/completions`
answers the last user message of `messages` (the earlier turns are the history, so follow-ups are rewritten
as in `rag chat`; a request for the summary of a named document gets its verified summary, whole/chat.py),
as server-sent events with `"stream": true`, else as one JSON object. The answer text carries the `[n]`
markers; a top-level `"rag"` object, which standard clients ignore, carries the citations as data
(docs/api.md). Errors are OpenAI's error objects, never a traceback.

There is one model: requests take turns behind a semaphore (in a worker thread, so the event loop keeps
serving), and past `queue_limit` requests in flight a new one gets 429 at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from .access import KEY_FILE_NAME, BearerGuard, client_of, server_key
from .errors import BadInput, GenerationFailed, IndexBusy, IndexMismatch, IndexMissing, RagError
from .index.collections import DEFAULT, check_name, collection_dir, collection_names, list_collections
from .pipeline import Pipeline, clean_question
from .records import Answer
from .webguard import SameOriginGuard, SecurityHeaders, allowed_hosts, bracketed
from .whole.chat import answer_items, asked_summary

API_KEY_ENV = "RAG_API_KEY"
MODEL_PREFIX = "rag:"
MAX_BODY_BYTES = 1_000_000
QUEUE_LIMIT = 64
# Requests in flight from one address: one client cannot take every place in the queue.
CLIENT_LIMIT = 32
_END = object()


class ApiError(Exception):
    """A request that gets an OpenAI-style error object with `status`."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.status in (429, 503) else None
        return JSONResponse(error_body(self.message, self.kind, self.param, self.code), self.status, headers)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# What a client is told of a server-side error: a fixed message per class. The details (paths,
# database and generation server names) go to the server's log only.
_SERVER_SIDE = (
    (IndexMissing, 404, "this collection has no index yet: build one with `rag index`", "model_not_found"),
    (IndexMismatch, 503, "this collection's index does not match the server's settings; see the server's log",
     "unavailable"),
    (IndexBusy, 503, "this collection is being indexed; try again soon", "unavailable"),
    (GenerationFailed, 503, "the generation server failed to answer; see the server's log", "unavailable"),
    (RagError, 503, "the server cannot answer now; see the server's log", "unavailable"),
)
log = logging.getLogger("rag.serve")


def rag_error(exc: RagError) -> ApiError:
    """A pipeline error as an ApiError: bad input 400 (its own words), a collection without an index 404,
    else 503; a server-side error gets its class's fixed message and is logged with its details."""
    if isinstance(exc, BadInput):
        return ApiError(400, str(exc), param="messages")
    for kind, status, message, code in _SERVER_SIDE:
        if isinstance(exc, kind):
            log.warning("%s: %s", type(exc).__name__, exc)
            return ApiError(status, message, "invalid_request_error" if status == 404 else "server_error",
                            param="model" if status == 404 else None, code=code)
    raise AssertionError("unreachable: RagError is the last class")


# --- the request -------------------------------------------------------------------------------------
class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict] | None = None


class RagOptions(BaseModel):
    """The request's own `"rag"` object: `documents` restricts the answer to those documents (names or globs)."""

    model_config = ConfigDict(extra="forbid")

    documents: list[str] | None = None


class ChatRequest(BaseModel):
    """The fields of a chat completion request that matter here; the others (temperature, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    rag: RagOptions | None = None


def message_text(message: Message, index: int) -> str:
    """A message's text: its string content, or its text parts joined; 400 for any other part."""
    if isinstance(message.content, str) or message.content is None:
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, f"messages[{index}]: only text content is understood", param=f"messages.{index}")
        texts.append(part["text"])
    return "\n".join(texts)


def question_and_history(request: ChatRequest) -> tuple[str, list[dict]]:
    """The last message (a user's) as the question; the user and assistant turns before it as the history."""
    last = len(request.messages) - 1
    if request.messages[-1].role != "user":
        raise ApiError(400, "the last message must be the user's question", param=f"messages.{last}")
    try:
        question = clean_question(message_text(request.messages[-1], last))
    except BadInput as exc:
        raise ApiError(400, str(exc), param=f"messages.{last}") from None
    history = []
    for i, m in enumerate(request.messages[:-1]):
        if m.role not in ("user", "assistant"):
            continue
        text = message_text(m, i)
        try:  # an earlier turn becomes part of the standalone question: it has the question's limit
            history.append({"role": m.role, "content": clean_question(text) if text.strip() else ""})
        except BadInput as exc:
            raise ApiError(400, f"messages[{i}]: {str(exc).replace('the question', 'this message', 1)}",
                           param=f"messages.{i}") from None
    return question, history


async def read_json(request, limit: int) -> dict:
    """The request body as a JSON object: 413 past `limit` bytes (read no further), 400 when it is not JSON."""
    too_big = ApiError(413, f"the request body is larger than the limit of {limit:,} bytes", code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def parse_request(data: dict) -> ChatRequest:
    """The request's fields, checked; a bad one is 400 naming it (where FastAPI would answer 422)."""
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise ApiError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param) from None


# --- the answer as OpenAI's objects, and the "rag" object beside them -------------------------------
def rag_fields(answer: Answer, collection: str) -> dict:
    """The citations as data: doc, page, span and quoted evidence of each; the confidence and verdict."""
    citations = []
    for c in answer.citations:
        a, b = c.highlight or (c.start, c.end)
        citations.append({"id": c.id, "doc": c.doc, "page": c.page, "start": c.start, "end": c.end,
                          "span": [a, b] if c.highlight else None,
                          "quote": " ".join(c.text[a - c.start:b - c.start].split()), "passage": c.text})
    out = {"collection": collection, "abstained": answer.abstained, "confidence": answer.confidence,
           "verdict": answer.verdict, "standalone_question": answer.standalone_question, "citations": citations}
    out.update({"summary": answer.signals} if answer.mode == "summary" else {})
    if answer.abstained:
        out["closest_passages"] = [{"doc": p.doc, "page": p.page, "start": p.start, "end": p.end, "text": p.text}
                                   for p in answer.passages[:2]]
    return out


def completion(cid: str, model: str, answer: Answer, collection: str, completion_tokens: int) -> dict:
    """A `chat.completion` object for the verified answer."""
    prompt_tokens = int(answer.receipt.get("prompt_tokens", 0))
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "rag": rag_fields(answer, collection)}


def chunk(cid: str, model: str, delta: dict, finish: str | None = None, rag: dict | None = None) -> str:
    """One `chat.completion.chunk` as the text of a server-sent event."""
    out = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if rag is not None:
        out["rag"] = rag
    return json.dumps(out, ensure_ascii=False)


# --- collections and turns -----------------------------------------------------------------------------
class Collections:
    """One pipeline per collection, all sharing the first pipeline's embedder and generator.

    A collection re-indexed while the server runs is reloaded at its next request.
    """

    def __init__(self, base: Pipeline):
        self.base = base
        self._pipelines: dict[str, tuple[str, Pipeline]] = {}
        self._lock = threading.Lock()

    def models(self) -> list[dict]:
        """The `model` objects of /v1/models: one per collection that has an index."""
        return [{"id": f"{MODEL_PREFIX}{c.name}", "object": "model", "created": 0, "owned_by": "rag",
                 "rag": c.to_dict()} for c in list_collections(self.base.settings) if c.last_indexed]

    def pipeline_for(self, model: str) -> tuple[str, Pipeline]:
        """The collection name and pipeline a `model` ("rag:NAME") names; 404 for any other."""
        name = model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else model
        unknown = ApiError(404, f"The model `{model}` does not exist; GET /v1/models lists them", param="model",
                           code="model_not_found")
        if not name:
            raise unknown  # naming no model is not naming the default collection
        try:
            name = check_name(name)
        except BadInput:
            raise unknown from None
        shown = name or DEFAULT
        if shown not in collection_names(self.base.settings):
            raise unknown
        settings = self.base.settings.replace(collection=name)
        stamp = _stamp(settings)
        with self._lock:
            cached = self._pipelines.get(name)
            if cached is None or cached[0] != stamp:
                pipeline = Pipeline(settings, embedder=self.base.embedder, generator=self.base.generator)
                self._pipelines[name] = cached = (stamp, pipeline)
        return shown, cached[1]


def _stamp(settings) -> str:
    """What changes when a FAISS collection is re-indexed: its CURRENT pointer ("" for PostgreSQL)."""
    if settings.vector_store != "faiss":
        return ""
    try:
        return (collection_dir(settings) / "CURRENT").read_text(encoding="utf-8")
    except OSError:
        return ""


class Turns:
    """The model's turns: `slots` requests generate at once; past `limit` in flight (or `per_client`
    from one address), a new one is refused."""

    def __init__(self, slots: int = 1, limit: int = QUEUE_LIMIT, per_client: int = CLIENT_LIMIT):
        self.slots = threading.BoundedSemaphore(max(1, slots))
        self.limit = limit
        self.per_client = per_client
        self.in_flight = 0
        self.clients: dict[str, int] = {}
        self._count = threading.Lock()

    def enter(self, client: str = "") -> None:
        with self._count:
            if self.in_flight >= self.limit:
                raise ApiError(429, f"{self.in_flight} requests are already waiting for the model; try again soon",
                               "rate_limit_exceeded", code="queue_full")
            if self.clients.get(client, 0) >= self.per_client:
                raise ApiError(429, f"this client already has {self.per_client} requests waiting for the model; "
                               "try again when one is answered", "rate_limit_exceeded", code="client_queue_full")
            self.in_flight += 1
            self.clients[client] = self.clients.get(client, 0) + 1

    def leave(self, client: str = "") -> None:
        with self._count:
            self.in_flight -= 1
            self.clients[client] -= 1
            if not self.clients[client]:
                del self.clients[client]

    def start(self, pipeline: Pipeline, question: str, history: list[dict],
              documents: list[str] | None = None, client: str = "",
              summary=None) -> tuple[asyncio.Queue, threading.Event]:
        """Run `pipeline.stream`, or the summary asked for, in a thread at its turn; items come on the queue.

        Call after `enter(client)`; the thread leaves when done. Setting the returned event (the client
        went away) stops it: before it takes a slot, or between two tokens.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                pass  # the server stopped, and its loop with it

        def work() -> None:
            try:
                with self.slots:
                    if cancelled.is_set():
                        return
                    answering = answer_items(pipeline, question, history, documents, summary)
                    try:
                        for item in answering:
                            if cancelled.is_set():
                                return
                            put(item)
                    finally:
                        answering.close()  # stops the generation at the token it is on
            except Exception as exc:  # handed to the request, which turns it into an error object
                put(exc)
            finally:
                self.leave(client)
                put(_END)

        threading.Thread(target=work, daemon=True, name="rag-answer").start()
        return queue, cancelled


async def items(queue: asyncio.Queue) -> AsyncIterator:
    """The pipeline's items from a worker's queue; its exception is raised here."""
    while True:
        item = await queue.get()
        if item is _END:
            return
        if isinstance(item, Exception):
            raise item
        yield item


# --- the app ----------------------------------------------------------------------------------------
def refusal(status: int, message: str, code: str) -> JSONResponse:
    """A refused request (Host, Origin, key) as an OpenAI error object."""
    return ApiError(status, message, code=code).response()


def create_app(pipeline: Pipeline, api_key: str = "", host: str = "127.0.0.1", max_body: int = MAX_BODY_BYTES,
               queue_limit: int = QUEUE_LIMIT, per_client: int = CLIENT_LIMIT):
    """The FastAPI app over `pipeline`'s collections, not yet served; with `api_key`, it is required."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from sse_starlette import EventSourceResponse
    from starlette.exceptions import HTTPException

    collections = Collections(pipeline)
    s = pipeline.settings
    turns = Turns(s.llm_concurrency if s.llm_url else 1, queue_limit, per_client)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        return ApiError(400, f"{param}: {first.get('msg', 'invalid request')}", param=param).response()

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return ApiError(exc.status_code, str(exc.detail), code=None).response()

    @app.exception_handler(Exception)
    async def crashed(request, exc: Exception):
        return ApiError(500, "the server failed to answer; its log has the details", "server_error").response()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": collections.models()}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        chat = parse_request(await read_json(request, max_body))
        question, history = question_and_history(chat)
        collection, answering = collections.pipeline_for(chat.model)
        documents = chat.rag.documents if chat.rag else None
        try:
            summary = asked_summary(answering, question, answering.select_documents(documents))  # bad names: 400
        except BadInput as exc:
            raise ApiError(400, str(exc), param="rag.documents") from None
        except RagError as exc:
            raise rag_error(exc) from None
        client = client_of(request.scope)
        turns.enter(client)
        queue, cancelled = turns.start(answering, question, history, documents, client, summary)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        if not chat.stream:
            return JSONResponse(await complete(request, queue, cancelled, cid, chat.model, collection, answering))
        return EventSourceResponse(stream(queue, cancelled, cid, chat.model, collection), ping=10)

    async def complete(request, queue, cancelled, cid, model, collection, answering) -> dict:
        watch = asyncio.create_task(_cancel_on_disconnect(request, cancelled))
        try:
            async for item in items(queue):
                if isinstance(item, Answer):
                    tokens = answering.generator.count_tokens(item.raw) if item.raw else 0
                    return completion(cid, model, item, collection, tokens)
        except RagError as exc:
            raise rag_error(exc) from None
        finally:
            watch.cancel()
            cancelled.set()
        raise ApiError(500, "the pipeline ended without an answer", "server_error")

    async def stream(queue, cancelled, cid, model, collection):
        try:
            async for event in events(queue, cid, model, collection):
                yield event
        finally:  # the last event sent, or the client gone (the response cancels this generator)
            cancelled.set()

    async def events(queue, cid, model, collection):
        yield {"data": chunk(cid, model, {"role": "assistant", "content": ""})}
        try:
            async for item in items(queue):
                if isinstance(item, Answer):
                    yield {"data": chunk(cid, model, {"content": item.text})}
                    yield {"data": chunk(cid, model, {}, "stop", rag_fields(item, collection))}
                else:
                    # The unchecked draft: not content, which a client could not take back.
                    yield {"data": chunk(cid, model, {}, rag={"draft": item})}
        except RagError as exc:
            error = rag_error(exc)
            yield {"data": json.dumps(error_body(error.message, error.kind, error.param, error.code))}
            return
        except Exception:
            yield {"data": json.dumps(error_body("the server failed to answer; its log has the details",
                                                 "server_error"))}
            return
        yield {"data": "[DONE]"}

    # The last added runs first: the Host and Origin checks, then the key.
    app.add_middleware(BearerGuard, key=api_key, refuse=refusal)
    app.add_middleware(SameOriginGuard, hosts=allowed_hosts(host), refuse=refusal)
    app.add_middleware(SecurityHeaders)
    return app


async def _cancel_on_disconnect(request: Request, cancelled: threading.Event) -> None:
    """Set `cancelled` when the client of a (non-streaming) request goes away."""
    while not cancelled.is_set():
        if await request.is_disconnected():
            cancelled.set()
            return
        await asyncio.sleep(0.5)


def run_server(pipeline: Pipeline, host: str = "127.0.0.1", port: int = 8000, no_auth: bool = False) -> int:
    """Serve the API until interrupted, behind a key (rag.access.server_key) unless `no_auth` on loopback."""
    import uvicorn

    access = server_key(host, Path(pipeline.settings.index_dir) / KEY_FILE_NAME, no_auth, API_KEY_ENV)
    _check_port_free(host, port)
    app = create_app(pipeline, access.key, host)
    names = [m["id"] for m in Collections(pipeline).models()]
    pipeline.embedder, pipeline.generator  # noqa: B018 (loaded before the first request, not during it)
    print(f"Serving {', '.join(names) or 'no indexed collection yet'} at http://{bracketed(host)}:{port}/v1; "
          f"{access.describe()}", flush=True)
    from .startup import start_warm

    start_warm(pipeline, sys.stdout)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """BadInput now, before the models load, when the address can't be listened on (in use, not ours)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise BadInput(f"cannot listen on {bracketed(host)}:{port}: {exc.strerror or exc}") from None
