"""The bundled all-MiniLM-L6-v2, int8, through ONNX Runtime: the default embedder of a new index.

The int8 model is made here, from the bundled weights, once per machine: torch.onnx exports the
BERT encoder with mean pooling and normalization, and ONNX Runtime's dynamic quantization turns its
matrix products into int8 ones. The file is cached (see `rag.config.cache_dir`), keyed by the weights it came
from, so later processes only load it: importing onnxruntime and opening the 23 MB model takes a
fraction of a second, and queries and documents go through the same session, so a query's vector
is computed exactly as a document's is. Texts are embedded one at a time (no padding), because the
int8 activations are scaled over the whole input: in a padded batch a text's vector would depend on
its neighbours. `rag bench` (the embedder table) measures speed, cosine to fp32 and recall.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..config import cache_dir, usable_cores
from ..errors import ModelMissing
from .embed import bundled_embedder_path, read_json, sentence_tokenizer

BUNDLED_INT8 = "all-MiniLM-L6-v2 int8 (bundled)"
EXPORT_VERSION = 3  # bump when the export or the quantization changes what the file computes
INPUTS = ("input_ids", "attention_mask")


class Int8Embedder:
    """all-MiniLM-L6-v2 with int8 weights and activations in ONNX Runtime, on the cores this process may use."""

    def __init__(self, folder: str = "", threads: int = 0, batch_size: int = 1):
        self.name = BUNDLED_INT8
        self.batch_size = batch_size
        self.folder = Path(folder or bundled_embedder_path())
        # As many threads as cores this process may use (`taskset`, cpusets): ONNX Runtime's threads spin
        # while they wait, and two on one core embedded 19.5 texts/s against one thread's 40.7.
        self.threads = threads or usable_cores()
        self.dim = read_json(self.folder / "config.json")["hidden_size"]
        self._session = None
        self._tokenizer = None

    @property
    def model_path(self) -> Path:
        """The cached int8 ONNX file for these weights (it may not exist yet)."""
        weights = (self.folder / "model.safetensors").stat()
        key = hashlib.sha256(f"{EXPORT_VERSION} {weight_type()} {weights.st_size} {weights.st_mtime_ns} "
                             f"{self.folder}".encode())
        return cache_dir() / f"all-MiniLM-L6-v2-int8-{key.hexdigest()[:16]}.onnx"

    @property
    def session(self):
        if self._session is None:
            import onnxruntime

            path = self.model_path
            if not path.is_file():
                export_int8(self.folder, path)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own untyped errors for a damaged file
                raise ModelMissing(f"cannot load the int8 embedder {path}: {exc}; delete it to export "
                                   f"it again") from None
        return self._session

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = sentence_tokenizer(self.folder)
        return self._tokenizer

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit vectors of the texts, in their order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session = self.session
        ids = [e.ids for e in self.tokenizer.encode_batch([t.strip() for t in texts])]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # little padding in a batch
        batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        for rows in _progress(batches, len(texts), progress):
            width = len(ids[rows[-1]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                batch[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            out[rows] = session.run(None, {"input_ids": batch, "attention_mask": mask})[0]
        return out


def weight_type(machine: str | None = None, cpuinfo: str | None = None) -> str:
    """The int8 weights this CPU multiplies exactly: "QInt8" with VNNI or AMX (or off x86), else "QUInt8".

    ONNX Runtime multiplies uint8 activations by int8 weights. With VNNI (or AMX) the products are
    summed in 32 bits. An x86 CPU without it (AVX2 only) sums them in pairs into 16 bits, which full
    8-bit weights can overflow; ONNX Runtime's advice is 7-bit weights or uint8 ones. On the eval
    corpora 7-bit weights cost up to 0.019 of recall@5 against fp32, uint8 weights at most 0.008
    (docs/performance.md), so a CPU without VNNI gets uint8 weights: slower there, but exact.
    """
    import platform

    if (machine or platform.machine()).lower() not in {"x86_64", "amd64", "i686", "x86"}:
        return "QInt8"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "QUInt8"
    flags = set(cpuinfo.split())
    return "QInt8" if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} else "QUInt8"


def export_int8(folder: Path, dest: Path) -> None:
    """Export the model in `folder` to ONNX with torch and quantize it to int8 into `dest` (atomic)."""
    print(f"rag: making the int8 embedder from {folder} (once; about half a minute)", file=sys.stderr)
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelMissing(f"cannot make the int8 embedder: {exc}; pip install onnxruntime onnx") from None
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    dest.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(folder)).eval()
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        example = (torch.ones((2, 8), dtype=torch.int64), torch.ones((2, 8), dtype=torch.int64))
        axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Pooled(bert), example, str(fp32), input_names=list(INPUTS),
                              output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        int8 = Path(tmp) / "int8.onnx"
        # Per-channel weight scales: with one scale per matrix, chunks kept a mean cosine of 0.94 to fp32;
        # with one per output column, 0.993 (docs/performance.md).
        logging.disable(logging.WARNING)  # its advice to pre-process does not apply to a transformer
        try:
            quantize_dynamic(str(fp32), str(int8), weight_type=getattr(QuantType, weight_type()), per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        os.replace(int8, dest)


class _Pooled:
    """Built lazily by `export_int8` (it subclasses torch.nn.Module, and torch is imported there)."""

    def __new__(cls, bert):
        import torch

        class Pooled(torch.nn.Module):
            """BERT → mean over real tokens → L2 normalization: sentence-transformers' pipeline."""

            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):
                hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

        return Pooled()


def _progress(batches: list, texts: int, shown: bool):
    """The batches, with a progress bar of texts on a terminal when `shown`."""
    if not (shown and sys.stderr.isatty()):
        return batches
    from tqdm import tqdm

    def counted():
        with tqdm(total=texts, desc="embedding", unit="chunk") as bar:
            for rows in batches:
                yield rows
                bar.update(len(rows))

    return counted()
