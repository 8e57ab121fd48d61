"""Local generation with llama-cpp-python, from a GGUF file: a model tier (see models.py) or a path."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np

from ..errors import BadInput, GenerationFailed, ModelMissing
from . import prompt
from .models import resolve_model


class Generator(Protocol):
    name: str

    def stream(self, messages: list[dict], max_tokens: int = 128) -> Iterator[str]:
        """Yield the reply to a chat, piece by piece."""

    def count_tokens(self, text: str) -> int:
        """How many tokens the model's own tokenizer makes of `text`."""


class LlamaGenerator:
    """One llama.cpp context. Calls are serialized: a context is not thread-safe."""

    def __init__(self, model: str = "", n_ctx: int = 2048, n_threads: int = 2,
                 temperature: float = 0.0, seed: int = 7):
        path = resolve_model(model)
        from llama_cpp import Llama

        self.name = path.name
        self.path = path
        self.temperature = temperature
        self.seed = seed
        self.lock = threading.Lock()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                             n_threads_batch=n_threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelMissing(f"cannot load GGUF model {path}: {exc}") from None
        self.n_ctx = self.llm.n_ctx()
        self.control = prompt.control_token_pattern(control_tokens(self.llm))
        # Of the last call's prompt: tokens llama.cpp processed, and tokens it took from the KV cache.
        self.last_evaluated: int | None = None
        self.last_cached: int | None = None
        self.last_scores: dict | None = None
        self.last_check_evaluated: int | None = None

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(self.as_data(text).encode("utf-8"), add_bos=False, special=True))

    def as_data(self, text: str) -> str:
        """Message text with this model's control tokens broken up: the chat template's own stay the
        only turn markers in the prompt."""
        return prompt.break_control_tokens(text, self.control)

    def chat_overhead(self, messages: list[dict]) -> int:
        """Tokens the chat template adds around the messages' contents."""
        return 8 * len(messages) + 8

    def stream(self, messages: list[dict], max_tokens: int = 128, stop_at_newline: bool = False,
               abstain_word: str = "") -> Iterator[str]:
        """Yield the reply to a chat piece by piece, decoding one token at a time from the logits.

        After the stream ends, `last_scores` holds the reply's log-probabilities: the mean and lowest
        log-probability of its tokens and, when `abstain_word` is given, the probability that the
        reply's first token begins that word (the model's own "I can't answer").
        """
        with self.lock:
            self.last_evaluated = self.last_cached = self.last_check_evaluated = None
            self.last_scores = None
            tokens = self.encode(messages)
            cached = self.feed(tokens)
            self.last_cached, self.last_evaluated = cached, len(tokens) - cached
            logprobs: list[float] = []
            first = None
            made: list[int] = []
            shown = ""
            rng = np.random.default_rng(self.seed)
            for _ in range(max_tokens):
                logp = log_softmax(self.last_logits())
                if first is None:
                    first = logp
                token = self.pick(logp, rng)
                if self.ends(token):
                    break
                made.append(token)
                logprobs.append(float(logp[token]))
                text = self.llm.detokenize(made).decode("utf-8", errors="ignore")
                if stop_at_newline and "\n" in text.lstrip():
                    text = text.lstrip().split("\n")[0]
                    if len(text) > len(shown):
                        yield text[len(shown):]
                    break
                if len(text) > len(shown) and not text.endswith("\ufffd"):
                    yield text[len(shown):]
                    shown = text
                self.llm.eval([token])
            else:
                text = self.llm.detokenize(made).decode("utf-8", errors="ignore")
                if len(text) > len(shown):
                    yield text[len(shown):]
            self.last_scores = {
                "p_abstain": self.word_probability(first, abstain_word) if abstain_word and first is not None
                else None,
                "mean_logprob": sum(logprobs) / len(logprobs) if logprobs else 0.0,
                "min_logprob": min(logprobs, default=0.0),
                "tokens": len(logprobs)}

    def p_yes(self, messages: list[dict]) -> float:
        """P(the reply to this chat starts with "yes" rather than "no"), from one forward pass.

        The chat usually extends the last one (its passages and answer, then a check question), so
        only the new tokens are processed: the rest comes from the KV cache.
        """
        with self.lock:
            tokens = self.encode(messages)
            self.last_check_evaluated = len(tokens) - self.feed(tokens)
            logp = log_softmax(self.last_logits())
        yes, no = self.word_probability(logp, "yes"), self.word_probability(logp, "no")
        return yes / (yes + no) if yes + no > 0 else 0.5

    # --- the pieces of the decoding loop ----------------------------------------------------------
    def encode(self, messages: list[dict]) -> list[int]:
        """The chat rendered with the model's own chat template and tokenized, ready to continue; the
        model's control tokens inside a message are broken up, so the template's stay the only turn markers."""
        rendered = self.formatter(messages=[{**m, "content": self.as_data(m["content"])} for m in messages])
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                 special=True)

    @functools.cached_property
    def formatter(self):
        """The chat template from the GGUF's metadata (ChatML when it has none)."""
        from llama_cpp import llama_chat_format

        template = self.llm.metadata.get("tokenizer.chat_template") or CHATML
        piece = functools.partial(self.llm.detokenize, special=True)
        eos = piece([self.llm.token_eos()]).decode("utf-8", errors="ignore") if self.llm.token_eos() >= 0 else ""
        bos = piece([self.llm.token_bos()]).decode("utf-8", errors="ignore") if self.llm.token_bos() >= 0 else ""
        return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def feed(self, tokens: list[int]) -> int:
        """Evaluate `tokens`, reusing the KV cache of the prefix they share with what the context holds;
        returns how many tokens came from the cache. At least the last token is evaluated, for its logits."""
        held = self.llm.n_tokens
        same = 0
        limit = min(held, len(tokens) - 1)
        old = self.llm.input_ids
        while same < limit and old[same] == tokens[same]:
            same += 1
        self.llm.n_tokens = same
        self.llm.eval(tokens[same:])
        return same

    def last_logits(self) -> np.ndarray:
        """The logits of the last evaluated position.

        Without `logits_all` (which costs about 1 GB and a third more prompt time with a 152k vocabulary)
        llama-cpp-python keeps no logits of its own; llama.cpp's context still holds the last batch's
        last row, read here. This reaches into `Llama._ctx`, so it is kept in this one place and tested.
        """
        pointer = self.llm._ctx.get_logits()
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)

    @functools.cached_property
    def n_vocab(self) -> int:
        return self.llm.n_vocab()

    def pick(self, logp: np.ndarray, rng) -> int:
        """The next token: the most likely at temperature 0, else sampled from the tempered distribution."""
        if self.temperature <= 0:
            return int(np.argmax(logp))
        scaled = logp / self.temperature
        p = np.exp(scaled - scaled.max())
        return int(rng.choice(len(p), p=p / p.sum()))

    def ends(self, token: int) -> bool:
        """Whether `token` ends the reply: the model's end-of-sequence or an end-of-turn marker."""
        return token == self.llm.token_eos() or token in self.end_tokens

    @functools.cached_property
    def end_tokens(self) -> frozenset[int]:
        found = set()
        for marker in END_MARKERS:
            ids = self.llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(ids) == 1:
                found.add(ids[0])
        return frozenset(found)

    def word_probability(self, logp: np.ndarray, word: str) -> float:
        """P(the next token begins `word`), summed over the tokens that spell a prefix of it in any case."""
        return float(np.exp(logp[list(self.prefix_tokens(word))]).sum()) if self.prefix_tokens(word) else 0.0

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one generator per process; the cache is its own
    def prefix_tokens(self, word: str) -> frozenset[int]:
        found = set()
        for variant in {word, word.lower(), word.upper(), word.capitalize()}:
            for spaced in (variant, " " + variant):
                ids = self.llm.tokenize(spaced.encode("utf-8"), add_bos=False, special=False)
                if ids:
                    piece = self.llm.detokenize(ids[:1]).decode("utf-8", errors="ignore").strip().lower()
                    if piece and word.lower().startswith(piece):
                        found.add(ids[0])
        return frozenset(found)


# Turn ends of the common chat templates; a model's own end-of-sequence token is always one too.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>")
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


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
        from llama_cpp import Llama

        try:
            with stderr_silenced():
                return Llama(model_path=str(path), vocab_only=True, verbose=False)
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


def control_tokens(llm) -> tuple[str, ...]:
    """The texts llama.cpp reads as one special token in a prompt: the vocabulary's control tokens
    ("<|im_start|>", "<file_sep>"), and the user-defined tokens its chat template uses ("<tool_call>")."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    template = llm.metadata.get("tokenizer.chat_template", "")
    found = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED):
            text = llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")
            if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL or text in template:
                found.append(text)
    return tuple(found)


@contextlib.contextmanager
def stderr_silenced():
    """Send standard error, Python's and file descriptor 2, to /dev/null for the duration.

    llama.cpp warns about the context of a vocabulary-only model ("n_ctx_seq > n_ctx_train") even
    with verbose=False; without this, the CLI's one-line errors would come with that line.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
