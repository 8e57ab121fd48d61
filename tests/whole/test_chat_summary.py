"""A summary asked for in a chat: only a plain request naming one indexed document is routed to it."""

from __future__ import annotations

import pytest
from conftest import FakeGenerator
from test_summarize import TRUE, TRUE_NUMBER, source

from rag.whole.chat import VERDICT, as_answer, summary_request
from rag.whole.summarize import SummaryJob

NAMES = ["xi-global-ai-collaboration.txt", "reports/report.pdf", "notes/Q3 plan.md"]


@pytest.mark.parametrize(("message", "doc", "length"), [
    ("Summarize xi-global-ai-collaboration.txt", "xi-global-ai-collaboration.txt", "short"),
    ("give me a summary of the report.pdf", "reports/report.pdf", "short"),
    ("Summarise `reports/report.pdf`, please.", "reports/report.pdf", "short"),
    ("Could you please write a detailed summary of the document report.pdf?", "reports/report.pdf", "long"),
    ("Summary of XI-GLOBAL-AI-COLLABORATION.TXT", "xi-global-ai-collaboration.txt", "short"),
    ("I'd like a short summary of notes/Q3 plan.md", "notes/Q3 plan.md", "short"),
    ("Sum up report.pdf in detail", "reports/report.pdf", "long"),
])
def test_a_plain_request_naming_an_indexed_document_is_a_summary_request(message, doc, length):
    asked = summary_request(message, NAMES)
    assert asked is not None and (asked.doc, asked.length) == (doc, length)


@pytest.mark.parametrize("message", [
    "What does the summary of report.pdf say about costs?",
    "Is there a summary in report.pdf?",
    "Summarize the findings of report.pdf",
    "Summarize the Bletchley Declaration",
    "Summarize missing.pdf",
    "summarize it",
    "Who wrote the executive summary of xi-global-ai-collaboration.txt?",
    "How many nations signed the Bletchley Declaration? Summarize report.pdf",
    "Summarize report.pdf and tell me who wrote it",
])
def test_a_question_that_mentions_a_summary_or_names_no_indexed_document_is_not_routed(message):
    assert summary_request(message, NAMES) is None


def test_the_chosen_document_can_be_named_as_this_document_and_nothing_outside_the_choice_is_summarized():
    one = frozenset({"reports/report.pdf"})
    assert summary_request("Summarize this document", NAMES, one).doc == "reports/report.pdf"
    assert summary_request("Can you give me a summary of it?", NAMES, one).doc == "reports/report.pdf"
    assert summary_request("Summarize this document", NAMES, frozenset(NAMES[:2])) is None
    assert summary_request("Summarize xi-global-ai-collaboration.txt", NAMES, one) is None
    assert summary_request("Summarize this document", NAMES) is None


def test_a_summary_becomes_an_answer_with_only_its_verified_sentences_and_their_citations():
    summary = list(SummaryJob(source(), FakeGenerator(str(TRUE_NUMBER), n_ctx=4096), part_tokens=4096).run())[-1]
    answer = as_answer(summary, "Summarize news.txt", "raw")
    assert answer.text == summary.text == TRUE
    assert answer.mode == "summary" and answer.verdict == VERDICT and not answer.abstained
    assert [s.citations for s in answer.sentences] == [(1,)] and answer.citations == summary.citations
    assert answer.signals["document"] == "news.txt" and answer.signals["sentences_chosen"] == 1
    empty = as_answer(list(SummaryJob(source(), FakeGenerator("none", n_ctx=4096), part_tokens=4096).run())[-1],
                      "Summarize news.txt")
    assert empty.abstained and empty.citations == () and "passed the verifier" in empty.text
