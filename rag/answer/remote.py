"""Generation by a server speaking OpenAI's /v1/chat/completions (llama.cpp, vLLM, Ollama, a hosted API)."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import BadInput, GenerationFailed, ModelMissing
from . import prompt
from .generate import control_tokens, load_llama, stderr_silenced


class RemoteGenerator:
    """Streams from a server speaking OpenAI's /v1/chat/completions (llama.cpp, vLLM, Ollama, a hosted API).

    Calls may overlap: the server decides whether to batch them or queue them.
    """

    def __init__(self, url: str, model: str = "", api_key: str = "", n_ctx: int = 2048,
                 temperature: float = 0.0, seed: int = 7, connect_timeout: float = 5.0,
                 read_timeout: float = 120.0, tokenizer: str = "", llama_sampling: bool = True):
        import httpx

        try:
            parts = urlsplit(url.strip())
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            parts, port = None, ""
        if not parts or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise BadInput("llm_url must be an http(s) address with a host, like http://gen-host:8000")
        # Error messages show the address without any user:password part.
        self.where = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
        self.base = url.strip().rstrip("/").removesuffix("/v1")
        self.model = model
        self.name = f"{model or 'default model'} at {self.where}"
        self.n_ctx = n_ctx
        self.temperature = temperature
        self.seed = seed
        self.tokenizer = tokenizer
        self.llama_sampling = llama_sampling
        self._key = api_key
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                   trust_env=False)
        self._counter = None
        self._counter_lock = threading.Lock()
        self.last_scores = None
        # fit_passages counts the same prompt files and passages again and again.
        self.count_tokens = functools.lru_cache(maxsize=8192)(self._count_tokens)

    @classmethod
    def from_settings(cls, s) -> RemoteGenerator:
        """The generator `Settings` describe; the API key comes from the variable named `llm_api_key_env`."""
        key = os.environ.get(s.llm_api_key_env, "") if s.llm_api_key_env else ""
        return cls(s.llm_url, s.llm_model, key, s.llm_n_ctx, s.temperature, s.seed, s.llm_connect_timeout,
                   s.llm_read_timeout, s.llm_tokenizer, s.llm_llama_sampling)

    def chat_overhead(self, messages: list[dict]) -> int:
        """Tokens the chat template adds around the messages' contents (as for LlamaGenerator)."""
        return 8 * len(messages) + 8

    def request_body(self, messages: list[dict], max_tokens: int) -> dict:
        """The JSON sent to /v1/chat/completions."""
        messages = [{**m, "content": self.as_data(m["content"])} for m in messages]
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": self.temperature,
                "top_p": 0.95, "seed": self.seed, "stream": True}
        if self.model:
            body["model"] = self.model
        if self.llama_sampling:
            # llama-cpp-python's in-process defaults; its server defaults to repeat_penalty 1.1,
            # which changes answers even at temperature 0. Strict OpenAI hosts refuse these fields.
            body.update(top_k=40, min_p=0.05, repeat_penalty=1.0)
        return body

    def stream(self, messages: list[dict], max_tokens: int = 128, stop_at_newline: bool = False,
               abstain_word: str = "") -> Iterator[str]:
        """Yield the server's reply piece by piece; its log-probabilities are not read (`last_scores` None)."""
        text = ""
        for piece in self._stream(messages, max_tokens):
            if stop_at_newline and "\n" in (text + piece).lstrip():
                rest = (text + piece).lstrip().split("\n")[0][len(text.lstrip()):]
                if rest:
                    yield rest
                return
            text += piece
            yield piece

    def _stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        import httpx

        finished = chunks = 0
        try:
            with self.client.stream("POST", f"{self.base}/v1/chat/completions", headers=self.headers,
                                    json=self.request_body(messages, max_tokens)) as response:
                if response.status_code != 200:
                    response.read()
                    raise self.failure(f"answered HTTP {response.status_code}: {self.snippet(response.text)}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": ping" comments, "event:" lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    choice = self.parse_chunk(data)
                    if choice is None:
                        continue
                    chunks += 1
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
                    finished = finished or bool(choice.get("finish_reason"))
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
            raise self.failure(f"did not {kind} in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise self.failure(f"cannot be reached: {type(exc).__name__}: {exc}") from None
        if not chunks:
            raise self.failure("sent no completion chunks (expected `data:` lines of JSON)")
        if not finished:
            raise self.failure("stopped the answer before it was finished (llama_cpp.server does this "
                               "to a stream when another request arrives, unless started with "
                               "--interrupt_requests False)")

    def parse_chunk(self, data: str) -> dict | None:
        """The first choice of one streamed chunk; None for a choice-less usage report."""
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise self.failure(f"sent a line that is not JSON: {self.snippet(data)}") from None
        if not isinstance(chunk, dict):
            raise self.failure(f"sent a chunk that is not an object: {self.snippet(data)}")
        if chunk.get("error"):
            raise self.failure(f"reported an error: {self.snippet(json.dumps(chunk['error']))}")
        choices = chunk.get("choices")
        if not choices:
            if "usage" in chunk:
                return None
            raise self.failure(f"sent a chunk with no choices: {self.snippet(data)}")
        if not isinstance(choices[0], dict):
            raise self.failure(f"sent a malformed choice: {self.snippet(data)}")
        return choices[0]

    def failure(self, problem: str) -> GenerationFailed:
        """A one-line error naming the server, with the API key blanked out wherever it appears."""
        message = " ".join(f"the generation server at {self.where} {problem}".split())
        return GenerationFailed(self.redact(message))

    def redact(self, text: str) -> str:
        """`text` with the API key blanked out."""
        return text.replace(self._key, "***") if self._key else text

    def snippet(self, text: str) -> str:
        """The start of what the server sent, for an error message. The key is blanked before the
        cut, since a key cut in half would no longer match."""
        return _snippet(self.redact(text))

    def _count_tokens(self, text: str) -> int:
        with self._counter_lock:
            if self._counter is None:
                self._counter = self.pick_counter()
        return self._counter(text)

    def pick_counter(self):
        """How to count tokens: a local GGUF of the served model, else the server's tokenize
        endpoint, else an over-estimate.

        The local tokenizer comes first when given: llama_cpp.server answers /extras/tokenize only
        between generations, so under load every count would wait for a whole answer.
        """
        if self.tokenizer:
            return self.local_counter()
        for path, field, options in TOKENIZE_ENDPOINTS:
            # llama-cpp-python's server adds BOS when the model does; the empty string counts it.
            empty = self.tokens_from(path, {field: "", **options})
            if empty is not None:
                return functools.partial(self.count_remotely, path, field, options, len(empty))
        return estimate_tokens

    def count_remotely(self, path: str, field: str, options: dict, offset: int, text: str) -> int:
        """The server's token count for `text`, less the tokens it adds to any text."""
        tokens = self.tokens_from(path, {field: text, **options})
        if tokens is None:
            raise self.failure(f"stopped answering {path}")
        return len(tokens) - offset

    def local_counter(self):
        """Token counts from the vocabulary of the local GGUF file `llm_tokenizer`."""
        vocab = self.vocabulary
        return lambda text: len(vocab.tokenize(self.as_data(text).encode("utf-8"), add_bos=False, special=True))

    @functools.cached_property
    def vocabulary(self):
        """The served model's vocabulary, from the local GGUF file `llm_tokenizer` (the weights are not loaded)."""
        path = Path(self.tokenizer)
        if not path.is_file():
            raise ModelMissing(f"llm_tokenizer: no GGUF file at {path}")
        try:
            with stderr_silenced():
                return load_llama(model_path=str(path), vocab_only=True)
        except (ValueError, RuntimeError) as exc:
            raise ModelMissing(f"llm_tokenizer: cannot read the vocabulary of {path}: {exc}") from None

    @functools.cached_property
    def control(self) -> re.Pattern:
        """The control tokens to break up: the served model's own when `llm_tokenizer` names its GGUF,
        else the common chat templates'."""
        return prompt.control_token_pattern(control_tokens(self.vocabulary) if self.tokenizer else ())

    def as_data(self, text: str) -> str:
        """Message text with the served model's control tokens broken up (see LlamaGenerator.as_data)."""
        return prompt.break_control_tokens(text, self.control)

    def tokens_from(self, path: str, body: dict) -> list | None:
        """The token list a tokenize endpoint returns; None when the server has no such endpoint."""
        import httpx

        if self.model:
            body = {**body, "model": self.model}
        try:
            response = self.client.post(f"{self.base}{path}", json=body, headers=self.headers)
        except httpx.TimeoutException as exc:
            raise self.failure(f"did not tokenize in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise self.failure(f"cannot be reached: {type(exc).__name__}: {exc}") from None
        if response.status_code in {401, 403}:
            raise self.failure(f"refused the request (HTTP {response.status_code}): check the API key "
                               "variable named by llm_api_key_env")
        if response.status_code != 200:
            return None
        try:
            tokens = response.json().get("tokens")
        except (ValueError, AttributeError):
            return None
        return tokens if isinstance(tokens, list) else None


# Tokenize endpoints: llama-cpp-python's server, llama.cpp's own server, vLLM.
TOKENIZE_ENDPOINTS = (("/extras/tokenize", "input", {}),
                      ("/tokenize", "content", {"add_special": False}),
                      ("/tokenize", "prompt", {"add_special_tokens": False}))


def estimate_tokens(text: str) -> int:
    """An over-estimate of a text's tokens for servers that cannot count: one per 3 UTF-8 bytes."""
    return math.ceil(len(text.encode("utf-8")) / 3)


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
