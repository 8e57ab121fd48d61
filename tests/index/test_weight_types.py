"""Both int8 weight types of the default embedder find what fp32 finds: recall@5 on an eval corpus.

A CPU with VNNI or AMX gets int8 weights, one without (AVX2 only) uint8 weights
(rag/index/quantized.py `weight_type`); each is what users on that kind of CPU get, so each is checked
against the fp32 embedder it was quantized from, on the news set's tune and report items (the smallest
corpus with the most questions: a few seconds each; the licenses set took three minutes here).
"""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.evaluation.evaluate import EVAL_SETS, load_jsonl, retrieval_rows, select_items
from rag.index import quantized
from rag.index.embed import SentenceTransformerEmbedder
from rag.index.quantized import Int8Embedder
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration

# docs/performance.md: uint8 weights cost at most 0.008 of recall@5 against fp32 on the eval corpora, int8
# weights with VNNI about as little. The floor leaves room for one more quote of the ~240 missed.
MAX_RECALL_LOSS = 0.02


def recall_at_5(embedder, tmp_path) -> float:
    corpus, dataset = EVAL_SETS["news"]
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"), embedder=embedder)
    pipeline.index([corpus])
    rows = retrieval_rows(pipeline, select_items(load_jsonl(dataset), "all", None), corpus)
    assert len(rows) > 80  # the set's answerable items with gold quotes
    return sum(r["recall"] for r in rows) / len(rows)


@pytest.fixture(scope="module")
def fp32_recall(tmp_path_factory):
    return recall_at_5(SentenceTransformerEmbedder(), tmp_path_factory.mktemp("fp32"))


@pytest.mark.parametrize("weights", ["QInt8", "QUInt8"])
def test_each_weight_type_keeps_the_fp32_recall_at_5(weights, fp32_recall, tmp_path, monkeypatch):
    if weights == "QInt8" and quantized.weight_type() != "QInt8":
        pytest.skip("this CPU has no VNNI: its 16-bit sums can overflow int8 weights, so it is given uint8")
    # The ONNX file's name holds the weight type, so each type is exported (once) and cached apart.
    monkeypatch.setattr(quantized, "weight_type", lambda *a, **k: weights)
    recall = recall_at_5(Int8Embedder(), tmp_path)
    assert recall >= fp32_recall - MAX_RECALL_LOSS, (weights, recall, fp32_recall)
