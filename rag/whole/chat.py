"""A summary asked for in a chat (`rag serve`): recognizing the request, and answering it as an Answer.

Only a message that is nothing but a request for a summary of one named document is routed: "Summarize
report.pdf", "Give me a short summary of the report.pdf, please", or "Summarize this document" when the
request's chosen documents are exactly one. Anything else (a question that mentions a summary, a request
about a part of a document, a name that is not indexed) is answered from retrieved passages as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..records import Answer, Sentence
from .summarize import Summary, SummaryJob, with_marker

VERDICT = "summary: every sentence checked against the document"
NOTHING_VERIFIED = "No sentence of the summary passed the verifier."

_POLITE = r"(?:please\s+|kindly\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?|i(?:'d|\s+would)\s+like\s+"
_POLITE += r"|(?:can|could|may)\s+i\s+(?:have|get)\s+|i\s+(?:want|need)\s+)?"
_SIZE = r"(?:(?P<size>short|brief|quick|long|detailed|full|complete)\s+)?"
_VERB = (r"(?:summari[sz]e|sum\s+up|(?:(?:give|write|make|provide|show|get)\s+(?:me\s+|us\s+)?)?"
         rf"(?:(?:a|an|the)\s+)?{_SIZE}summary\s+of)")
# Words after the document's name that keep the message a plain request ("…, please", "… in detail").
_TAIL = re.compile(r"[\s,;:]+(briefly|in\s+short|in\s+detail|in\s+full|for\s+me|please)$", re.IGNORECASE)
_REQUEST = re.compile(rf"^{_POLITE}{_VERB}\s+(?P<object>.+)$", re.IGNORECASE)
# The chosen document, named without its name (only when exactly one document is chosen).
_THIS = re.compile(r"^(?:it|this|that|(?:this|that|the|my)\s+(?:document|file|text|paper|report|article|pdf))$",
                   re.IGNORECASE)
_LONG = {"long", "detailed", "full", "complete", "in detail", "in full"}


@dataclass(frozen=True)
class SummaryRequest:
    """A chat message that asks for the summary of one indexed document, at a length."""

    doc: str
    length: str = "short"


def summary_request(message: str, names: Iterable[str], chosen: frozenset[str] | None = None
                    ) -> SummaryRequest | None:
    """The summary `message` asks for, of one of the indexed document ids `names`; None for anything else.

    >>> summary_request("Summarize the report.pdf, please.", ["a/report.pdf", "b.txt"])
    SummaryRequest(doc='a/report.pdf', length='short')
    >>> summary_request("What does the summary of report.pdf say about costs?", ["a/report.pdf"]) is None
    True
    """
    text = " ".join(message.split()).rstrip(" .!?")
    tails = set()
    while tail := _TAIL.search(text):
        tails.add(" ".join(tail[1].lower().split()))
        text = text[:tail.start()]
    found = _REQUEST.match(text)
    if not found:
        return None
    names = [n for n in names if chosen is None or n in chosen]
    doc = named_document(found["object"], names)
    if doc is None and chosen is not None and len(names) == 1 and _THIS.match(found["object"]):
        doc = names[0]
    if doc is None:
        return None
    return SummaryRequest(doc, "long" if {(found["size"] or "").lower(), *tails} & _LONG else "short")


def asked_summary(pipeline, message: str, chosen: frozenset[str] | None) -> SummaryRequest | None:
    """The summary a chat message asks of `pipeline`'s collection (its documents read only when it might)."""
    if not re.search(r"summ", message, re.IGNORECASE):
        return None
    return summary_request(message, [d["id"] for d in pipeline.documents()], chosen)


def answer_items(pipeline, question: str, history: list[dict], documents: list[str] | None,
                 summary: SummaryRequest | None) -> Iterator[str | Answer]:
    """The items a chat turn streams: the summary asked for, else `pipeline.stream`'s answer."""
    if summary is None:
        return pipeline.stream(question, history, documents=documents)
    return summary_answer(pipeline.summarize(summary.doc, summary.length), question)


def named_document(phrase: str, names: list[str]) -> str | None:
    """The one document id `phrase` names: the id or its file name, quoted or after "the document"…."""
    phrase = re.sub(r"^(?:the\s+|this\s+|my\s+)?(?:(?:document|file|pdf|paper|report|article)\s+)?", "",
                    phrase.strip(), flags=re.IGNORECASE).strip().strip("\"'`“”‘’").strip()
    if not phrase:
        return None
    wanted = phrase.lower()
    exact = [n for n in names if n.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    by_file = [n for n in names if Path(n).name.lower() == wanted]
    return by_file[0] if len(by_file) == 1 else None


def summary_answer(job: SummaryJob, question: str) -> Iterator[str | Answer]:
    """Run the summary job: each part's chosen sentences as it is done (the draft), then the summary as an
    Answer whose sentences are the verified ones and whose citations are the backing passages."""
    raw: list[str] = []
    summary = None
    for event in job.run():
        if isinstance(event, str):
            raw.append(event)
            yield event
        elif isinstance(event, Summary):
            summary = event
    yield as_answer(summary or job.summary(), question, "".join(raw))


def as_answer(summary: Summary, question: str, raw: str = "") -> Answer:
    """A verified summary in the shape of an answer: mode "summary", its stats in `signals`."""
    sentences = tuple(Sentence(with_marker(p.text, summary.marker(p)), (summary.marker(p),), True)
                      for p in summary.points)
    return Answer(question=question, text=summary.text if summary.points else NOTHING_VERIFIED,
                  abstained=not summary.points, sentences=sentences, citations=summary.citations, raw=raw,
                  mode="summary", standalone_question=question, confidence=1.0 if summary.points else 0.0,
                  receipt={"prompt_tokens": summary.stats.get("prompt_tokens", 0)},
                  signals={"document": summary.doc, "length": summary.length, "complete": summary.complete,
                           **summary.stats},
                  verdict=VERDICT if summary.points else "not found in the documents")
