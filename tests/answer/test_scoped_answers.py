"""A question restricted to one document of the pydocs eval corpus is answered from that document only,
with the real models (the `documents` filter of Pipeline, `rag ask --doc`, `rag.documents` and MCP)."""

from __future__ import annotations

import shutil

import pytest

from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration

PYDOCS = ["library_secrets.txt", "library_random.txt", "library_uuid.txt", "library_glob.txt"]
# eval/pydocs item p046: the secrets page says 32 bytes; the random page also speaks of randomness.
QUESTION = "How many bytes of randomness are considered enough for a secrets token?"


@pytest.fixture(scope="module")
def pydocs_pipeline(tmp_path_factory, real_embedder, real_generator):
    from conftest import ROOT

    root = tmp_path_factory.mktemp("pydocs-scope")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in PYDOCS:
        shutil.copy(ROOT / "eval" / "pydocs" / "corpus" / name, corpus / name)
    pipeline = Pipeline(Settings.load(index_dir=root / "index"), embedder=real_embedder, generator=real_generator)
    pipeline.index([corpus])
    return pipeline


def test_a_question_scoped_to_its_document_is_answered_and_cited_from_it_alone(pydocs_pipeline):
    answer = pydocs_pipeline.ask(QUESTION, documents=["library_secrets.txt"])
    assert not answer.abstained and "32" in answer.text
    assert answer.passages and {p.doc for p in answer.passages} == {"library_secrets.txt"}
    assert {c.doc for c in answer.citations} == {"library_secrets.txt"}


def test_the_same_question_scoped_to_another_document_never_reads_the_first(pydocs_pipeline):
    answer = pydocs_pipeline.ask(QUESTION, documents=["library_random.txt"])
    assert {p.doc for p in answer.passages} <= {"library_random.txt"}
    assert {c.doc for c in answer.citations} <= {"library_random.txt"}
    assert "32" not in answer.text  # the figure is on the secrets page only


def test_which_of_two_documents_says_it_reads_both_and_cites_the_one_that_does(pydocs_pipeline):
    answer = pydocs_pipeline.ask("Which of these two documents says how many bytes of randomness are enough for a "
                                 "secrets token?", documents=["library_random.txt", "library_secrets.txt"])
    # Each chosen document gets its share of the passages read, the small one too.
    assert sorted(p.doc for p in answer.passages).count("library_random.txt") >= 1
    assert {p.doc for p in answer.passages} == {"library_random.txt", "library_secrets.txt"}
    assert not answer.abstained and "32" in answer.text
    assert {c.doc for c in answer.citations} == {"library_secrets.txt"}
