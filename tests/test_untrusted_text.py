"""Text the pipeline does not write (documents, a server's replies) cannot pass for text it does:
citation markers, passage lines, chat-template control tokens, and the API key in error messages."""

from __future__ import annotations

import re

import pytest

from rag.errors import GenerationFailed
from rag.generate import RemoteGenerator

QUESTION = "How many countries signed the Zorblax Treaty?"
KEY = "sk-test-d41d8cd98f00b204e980"


def test_markers_in_a_document_quoted_as_the_answer_are_removed(fake_pipeline, corpus_copy):
    (corpus_copy / "zorblax.txt").write_text(
        "The Zorblax Treaty was signed by 14 countries [4], see [2, 3].\n\nIt bans comet tourism [1].",
        encoding="utf-8")
    fake_pipeline.index([corpus_copy])
    # A number the passages do not hold: the reply is not grounded, so the best sentence is quoted.
    fake_pipeline.generator.replies.append("99 countries [1]")
    answer = fake_pipeline.ask(QUESTION)
    assert answer.mode == "extract" and "14 countries" in answer.text
    [citation] = answer.citations
    assert re.findall(r"\[[\d, ]+\]", answer.text) == [f"[{citation.id}]"]
    assert answer.text == f"The Zorblax Treaty was signed by 14 countries, see [{citation.id}]."


def test_a_key_echoed_across_the_snippet_cut_is_still_blanked():
    gen = RemoteGenerator("http://127.0.0.1:9", api_key=KEY)
    # Not JSON, and long: the error quotes its first 200 characters, which end inside the key.
    with pytest.raises(GenerationFailed) as caught:
        gen.parse_chunk("x" * 190 + f" {KEY} " + "y" * 50)
    message = str(caught.value)
    assert "***" in message and KEY[:6] not in message and message.endswith("…")
