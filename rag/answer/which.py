"""Which of the chosen documents says something: "Which of these two documents says that X?".

The answer prompt shows passages, not which document each comes from, so the model cannot tell documents
apart. Instead each chosen document is asked on its own, scoped to it as `--doc` does: the yes/no
question ("Does the document say that X?"), or the question inside ("... says how many X" asks "How many
X?"). The answer names the documents whose reply is a checked "Yes" or a checked answer, each cited to
its own passage; the others are named as not saying it. When none says it, the answer is the abstention.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

from ..records import Answer, Sentence, render_answer
from .reader import verdict

WHICH = re.compile(
    r"^\s*(?:in\s+)?which\s+(?:one\s+)?(?:of\s+(?:these|those|the|both|my|our)\s+)?(?:two\s+|three\s+|four\s+|\d\s+)?"
    r"(?:documents?|docs?|files?|articles?|texts?|reports?|sources?|ones?)\s+"
    r"(?P<verb>says?|states?|claims?|reports?|mentions?|discuss(?:es)?|talks?\s+about|describes?|covers?)\s+"
    r"(?P<claim>.+?)[\s?.!]*$", re.IGNORECASE)
# Each document costs an answer of its own: past this many, the question is answered as any other.
MAX_DOCUMENTS = 4


WH = re.compile(r"^(?:how|what|when|who|whom|whose|where|why|which)\b", re.IGNORECASE)


def per_document_question(question: str) -> tuple[str, bool] | None:
    """The question each document is asked, and whether it is a yes/no one; None for a question that is
    not of this kind. "... says how many X" asks each document "How many X?".

    >>> per_document_question("Which of these two documents says that 28 nations signed the declaration?")
    ('Does the document say that 28 nations signed the declaration?', True)
    >>> per_document_question("Which article mentions Gina Raimondo?")
    ('Does the document mention Gina Raimondo?', True)
    >>> per_document_question("Which file says how many bytes a token needs?")
    ('How many bytes a token needs?', False)
    >>> per_document_question("Which nations signed the declaration?") is None
    True
    """
    found = WHICH.match(question)
    if not found:
        return None
    verb, claim = found["verb"].lower(), found["claim"].strip()
    if WH.match(claim) and not verb.startswith("mention"):
        return claim[0].upper() + claim[1:] + "?", False
    if verb.startswith("mention"):
        return f"Does the document mention {claim}?", True
    if verb.startswith(("discuss", "talk", "describe", "cover")):
        return f"Does the document discuss {claim}?", True
    claim = re.sub(r"^that\s+", "", claim, flags=re.IGNORECASE)
    return f"Does the document say that {claim}?", True


def answer_which(ask: Callable[..., Answer], question: str, chosen: frozenset[str], abstain_text: str) -> Answer | None:
    """The answer to a which-document question over the `chosen` documents, or None when the question is
    not one (or names too few or too many documents). `ask(question, documents=[doc])` answers one."""
    asked = per_document_question(question)
    if not asked or not 2 <= len(chosen) <= MAX_DOCUMENTS:
        return None
    asked, yes_no = asked
    began = time.perf_counter()
    replies = [(doc, ask(asked, documents=[doc])) for doc in sorted(chosen)]
    saying = [(doc, a) for doc, a in replies
              if not a.abstained and (not yes_no or a.text.lstrip().lower().startswith("yes"))]
    timings = {"total": round((time.perf_counter() - began) * 1000, 1)}
    read = tuple(p for _, reply in replies for p in reply.passages)
    if not saying:
        return Answer(question=question, text=abstain_text, abstained=True, sentences=(), citations=(), raw="",
                      timings_ms=timings, mode="abstained: no chosen document says it", standalone_question=asked,
                      passages=_numbered(read), verdict=verdict(0.0, True))
    citations, sentences = [], []
    for doc, reply in saying:
        ids = {}
        for c in reply.citations:
            ids[c.id] = len(citations) + 1
            citations.append(replace(c, id=ids[c.id]))
        marks = tuple(dict.fromkeys(ids[i] for s in reply.sentences for i in s.citations if i in ids))
        said = "says so" if yes_no else "says: " + " ".join(s.text.rstrip(" .") for s in reply.sentences)
        sentences.append(Sentence(text=f"{doc} {said}.", citations=marks or tuple(ids.values()), supported=True))
    text = render_answer(sentences)
    silent = [doc for doc, _ in replies if doc not in {d for d, _ in saying}]
    if silent:
        text += f" I can't find it in {', '.join(silent)}."
    # As sure as the least sure of the documents that say it.
    confidence = min(reply.confidence for _, reply in saying)
    shown = {(c.doc, c.start, c.end) for c in citations}
    others = [p for p in read if (p.doc, p.start, p.end) not in shown]
    return Answer(question=question, text=text, abstained=False, sentences=tuple(sentences),
                  citations=tuple(citations), raw=" | ".join(f"{doc}: {reply.raw}" for doc, reply in replies),
                  timings_ms=timings, mode="which documents", standalone_question=asked,
                  passages=tuple(citations) + _numbered(others, len(citations)), confidence=confidence,
                  verdict=verdict(confidence, False))


def _numbered(passages, after: int = 0) -> tuple:
    return tuple(replace(p, id=after + n) for n, p in enumerate(passages, 1))
