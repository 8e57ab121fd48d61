"""The numpy forward pass gives sentence-transformers' vectors, so indexes built either way agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.documents.chunk import chunk_document
from rag.documents.ingest import read_document
from rag.index.embed import BULK_TEXTS, NUMPY, SENTENCE_TRANSFORMERS, NumpyBert, SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parents[2]
# Every pydocs chunk would take minutes on one core; two chunks of each file (its first and its middle
# one) reach every file, its headings and its code samples, in 137 texts.
PER_FILE = 2


def eval_chunks() -> list[str]:
    """Every chunk of corpus/*.txt and two of each file of eval/pydocs/corpus/, as the project chunks them."""
    settings = Settings()

    def chunks(path):
        return [c.text for c in chunk_document(read_document(path, path.name), settings.chunk_size,
                                               settings.chunk_overlap)]

    texts = [t for path in sorted(ROOT.glob("corpus/*.txt")) for t in chunks(path)]
    for path in sorted(ROOT.glob("eval/pydocs/corpus/*.txt")):
        found = chunks(path)
        texts += [found[0], found[len(found) // 2]][:min(PER_FILE, len(found))]
    return texts


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder()


@pytest.mark.integration
def test_numpy_vectors_match_sentence_transformers_on_the_eval_corpora(embedder):
    texts = eval_chunks()
    assert len(texts) >= 130

    fast = embedder.numpy_model.encode(texts)
    reference = embedder.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    assert fast.dtype == np.float32 and fast.shape == reference.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosines = (fast * reference).sum(axis=1)
    assert cosines.min() >= 0.9999, texts[int(cosines.argmin())]


@pytest.mark.integration
def test_long_text_is_cut_at_256_word_pieces_as_sentence_transformers_cuts_it(embedder):
    head = "The Bletchley Declaration was signed by twenty-eight nations. " * 60  # ~600 word pieces
    model = embedder.numpy_model
    assert model.max_length == embedder.model.max_seq_length == 256
    assert len(model.tokenizer.encode(head).ids) == 256

    fast = model.encode([head, head + "Something else entirely about the weather in Lisbon."])
    reference = embedder.model.encode([head], normalize_embeddings=True)[0]

    assert float(fast[0] @ reference) >= 0.9999
    np.testing.assert_allclose(fast[0], fast[1], atol=1e-6)  # words past the limit change nothing


@pytest.mark.integration
def test_a_batch_of_mixed_lengths_gives_each_text_its_own_unpadded_vector(embedder):
    texts = ["short", "a much longer sentence about treaties, nations and the safety of frontier AI models",
             "", "medium length question here?"]

    batch = embedder.numpy_model.encode(texts)
    alone = np.vstack([embedder.numpy_model.encode([t]) for t in texts])

    np.testing.assert_allclose(batch, alone, atol=1e-5)


@pytest.mark.integration
def test_small_batches_use_numpy_and_bulk_uses_sentence_transformers():
    embedder = SentenceTransformerEmbedder()

    assert embedder.path_for(1) == embedder.path_for(BULK_TEXTS) == NUMPY
    assert embedder.path_for(BULK_TEXTS + 1) == SENTENCE_TRANSFORMERS
    assert embedder.dim == 384 and embedder._model is None  # the dimension needs no torch
    embedder.embed(["x"] * (BULK_TEXTS + 1))
    assert embedder.path_for(1) == SENTENCE_TRANSFORMERS  # once loaded, torch is the faster one


def test_a_model_with_another_pooling_is_left_to_sentence_transformers(tmp_path):
    bundled = Path(SentenceTransformerEmbedder().folder)
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    for name in ("modules.json", "config.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        shutil.copy(bundled / name, folder / name)
    for name in ("model.safetensors", "tokenizer.json"):
        (folder / name).symlink_to(bundled / name)
    assert NumpyBert.reproduces(folder)

    pooling = json.loads((folder / "1_Pooling/config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (folder / "1_Pooling/config.json").write_text(json.dumps(pooling))

    assert not NumpyBert.reproduces(folder)
    assert SentenceTransformerEmbedder(str(folder)).path_for(1) == SENTENCE_TRANSFORMERS


LOADED_MODULES = """
import sys
from rag.cli import main
status = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "llama_cpp")
               if m in sys.modules)
print("HEAVY", " ".join(heavy), "STATUS", status)
"""


@pytest.mark.integration
def test_rag_search_in_a_new_process_imports_neither_torch_nor_transformers(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "treaty.txt").write_text("The Bletchley Declaration was signed by twenty-eight nations in 2023.\n\n"
                                     "Lisbon has mild winters and warm summers.\n", encoding="utf-8")
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index")}

    def rag(*args):
        return subprocess.run([sys.executable, "-c", LOADED_MODULES, *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)

    indexed = rag("index", str(docs))
    assert indexed.returncode == 0, indexed.stderr
    searched = rag("search", "Which declaration did the nations sign?", "-k", "1")

    assert searched.returncode == 0, searched.stderr
    lines = searched.stdout.splitlines()
    assert lines[0].startswith("1. treaty.txt") and "Bletchley" in lines[1]
    assert lines[-1] == "HEAVY  STATUS 0", lines[-1]
    assert indexed.stdout.splitlines()[-1] == "HEAVY  STATUS 0"  # two chunks: numpy indexes them too
