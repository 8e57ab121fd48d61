"""The int8 embedder: close to fp32, one path for queries and documents, and old fp32 indexes keep fp32."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_embed_fast import eval_chunks

from rag.config import Settings
from rag.errors import IndexMismatch
from rag.index.embed import BUNDLED_EMBEDDER, SentenceTransformerEmbedder
from rag.index.embedders import DEFAULT_EMBEDDER, open_embedder
from rag.index.quantized import BUNDLED_INT8, Int8Embedder
from rag.index.store import REBUILD_HINT
from rag.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
# Measured on the eval chunks (docs/performance.md): mean cosine 0.99+, the worst chunk above 0.97.
MEAN_COSINE_FLOOR = 0.99
MIN_COSINE_FLOOR = 0.97


@pytest.fixture(scope="module")
def int8():
    return Int8Embedder()


def test_without_a_setting_a_new_index_gets_the_default_and_an_old_one_its_own_embedder():
    assert DEFAULT_EMBEDDER == BUNDLED_INT8
    assert open_embedder().name == BUNDLED_INT8
    assert open_embedder("", recorded=None).name == BUNDLED_INT8
    assert open_embedder("", recorded=BUNDLED_EMBEDDER).name == BUNDLED_EMBEDDER
    assert open_embedder("", recorded=BUNDLED_INT8).name == BUNDLED_INT8
    # An index made with a model the user named: the setting must name it again, nothing is guessed.
    assert open_embedder("", recorded="/models/other").name == BUNDLED_INT8
    assert open_embedder("minilm-fp32", recorded=BUNDLED_INT8).name == BUNDLED_EMBEDDER
    assert open_embedder("/models/other").name == "/models/other"


def test_the_embedder_takes_the_cores_this_process_may_use_or_the_setting(monkeypatch, tmp_path):
    """ONNX Runtime's threads spin while they wait: more of them than allowed cores halve its speed."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3}, raising=False)  # as under `taskset -c 3`
    assert Int8Embedder().threads == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert Int8Embedder().threads == 4
    assert open_embedder(threads=2).threads == 2
    monkeypatch.setenv("RAG_EMBED_THREADS", "3")
    pipeline = Pipeline(Settings.load(index_dir=tmp_path / "index"))
    assert pipeline.embedder.threads == 3


@pytest.mark.integration
def test_int8_vectors_stay_close_to_the_fp32_vectors_on_the_eval_chunks(int8):
    texts = eval_chunks()
    reference = SentenceTransformerEmbedder().numpy_model.encode(texts)  # fp32, as tests/index/test_embed_fast.py

    vectors = int8.embed(texts)

    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.mean() >= MEAN_COSINE_FLOOR
    assert cosines.min() >= MIN_COSINE_FLOOR, texts[int(cosines.argmin())]
    assert cosines.max() < 0.99999  # it really is another computation, not fp32 under another name


@pytest.mark.integration
def test_a_query_embedded_alone_gets_the_vector_it_gets_among_documents(int8):
    texts = eval_chunks()[:40]
    question = "What does the heapq module provide?"

    together = int8.embed([*texts, question])
    alone = [int8.embed([t])[0] for t in (texts[7], texts[31], question)]

    # One text per run: no padding, no neighbours, so the query path is the document path exactly.
    assert int8.batch_size == 1
    np.testing.assert_allclose(np.stack(alone), together[[7, 31, -1]], atol=1e-6)


def _small_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    return corpus


@pytest.mark.integration
def test_an_index_built_with_fp32_keeps_fp32_without_a_reindex_until_it_is_rebuilt(tmp_path):
    corpus = _small_corpus(tmp_path)
    settings = Settings.load(index_dir=tmp_path / "index")
    Pipeline(settings, embedder=SentenceTransformerEmbedder()).index([corpus])  # as before int8 was the default

    reopened = Pipeline(settings)
    assert reopened.embedder.name == BUNDLED_EMBEDDER
    hits = reopened.search("Who signed the Bletchley Declaration?")
    assert hits and reopened.store.read_manifest()[1]["embedder"] == BUNDLED_EMBEDDER
    (corpus / "extra.txt").write_text("The lighthouse keeper logs the tide every morning.\n", encoding="utf-8")
    report = reopened.index([corpus])
    assert report.embedded >= 1 and report.unchanged >= 1
    assert Pipeline(settings).store.read_manifest()[1]["embedder"] == BUNDLED_EMBEDDER

    rebuilt = Pipeline(settings)
    rebuilt.index([corpus], rebuild=True)
    assert rebuilt.store.read_manifest()[1]["embedder"] == BUNDLED_INT8
    assert Pipeline(settings).embedder.name == BUNDLED_INT8


@pytest.mark.integration
def test_an_index_is_refused_with_the_rebuild_hint_by_an_embedder_it_was_not_built_with(tmp_path):
    corpus = _small_corpus(tmp_path)
    Pipeline(Settings.load(index_dir=tmp_path / "index")).index([corpus])

    other = Pipeline(Settings.load(index_dir=tmp_path / "index", embed_model="minilm-fp32"))
    with pytest.raises(IndexMismatch, match=re.escape(REBUILD_HINT)) as caught:
        other.search("Who signed the Bletchley Declaration?")
    assert BUNDLED_INT8 in str(caught.value) and BUNDLED_EMBEDDER in str(caught.value)
    with pytest.raises(IndexMismatch):
        other.index([corpus])


def test_a_cpu_without_vnni_gets_uint8_weights_that_its_16_bit_sums_cannot_overflow():
    from rag.index.quantized import weight_type

    avx2 = "flags\t\t: fpu sse4_2 avx avx2 fma bmi2\n"
    assert weight_type("x86_64", avx2) == "QUInt8"
    assert weight_type("x86_64", avx2.replace("avx2", "avx2 avx512f avx512_vnni")) == "QInt8"
    assert weight_type("x86_64", avx2.replace("avx2", "avx2 avx_vnni")) == "QInt8"
    assert weight_type("aarch64", "") == "QInt8"
