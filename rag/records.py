"""Small frozen records passed between pipeline stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Document:
    """One source file as text. `pages` holds the char offset where each page starts.

    `sections` holds (char offset, label) where each labelled part of an Office file or e-book
    starts: "slide 4", "Sheet1!A1:D12", a heading. Empty for text, Markdown, HTML and PDF.
    """

    id: str
    path: str
    sha256: str
    text: str
    pages: tuple[int, ...] = (0,)
    sections: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A span of a document: `text == document.text[start:end]`. `page` is 1-based, or None.

    `location` names where it is in an Office file or e-book ("slide 4", "Sheet1!A1:D12", a heading).
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    page: int | None = None
    location: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score, the two scores fused, and its 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    dense: float | None
    lexical: float | None


@dataclass(frozen=True)
class Citation:
    """A passage shown to the model as `[id]`, located in its document."""

    id: int
    doc: str
    page: int | None
    start: int
    end: int
    text: str
    highlight: tuple[int, int] | None = None
    location: str | None = None

    def where(self) -> str:
        """Where the passage is, for people: "slide 4", "Sheet1!A1:D12", "page 3", or ""."""
        return self.location or (f"page {self.page}" if self.page else "")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["highlight"] = list(self.highlight) if self.highlight else None
        return out


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer with the passages it cites and whether they support it."""

    text: str
    citations: tuple[int, ...]
    supported: bool

    def to_dict(self) -> dict:
        return {"text": self.text, "citations": list(self.citations), "supported": self.supported}


@dataclass(frozen=True)
class Answer:
    """The verified answer, the evidence behind it, and what the model said before checking."""

    question: str
    text: str
    abstained: bool
    sentences: tuple[Sentence, ...]
    citations: tuple[Citation, ...]
    raw: str
    timings_ms: dict = field(default_factory=dict)
    mode: str = "generated"
    standalone_question: str = ""
    left_out: tuple[str, ...] = ()
    passages: tuple[Citation, ...] = ()
    confidence: float = 0.0
    signals: dict = field(default_factory=dict)
    receipt: dict = field(default_factory=dict)
    candidate: str = ""
    # The badge in words, from the calibrated confidence: "likely answer", "uncertain: check the source"
    # or "not found in the documents".
    verdict: str = ""

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "sentences": [s.to_dict() for s in self.sentences],
            "citations": [c.to_dict() for c in self.citations],
            "raw": self.raw,
            "timings_ms": dict(self.timings_ms),
            "mode": self.mode,
            "standalone_question": self.standalone_question,
            "left_out": list(self.left_out),
            "confidence": self.confidence,
            "signals": dict(self.signals),
            "context": dict(self.receipt),
            "candidate": self.candidate,
            "verdict": self.verdict,
        }


def render_answer(sentences: list[Sentence] | tuple[Sentence, ...]) -> str:
    """Sentences joined, each with its markers before the final full stop: "... 28 nations [2].".

    A short answer without a full stop keeps none: "28 nations [2]".
    """
    out = []
    for s in sentences:
        text = s.text.rstrip()
        marks = "".join(f"[{i}]" for i in s.citations)
        if text[-1] in ".!?":
            out.append(f"{text[:-1]} {marks}{text[-1]}")
        else:
            out.append(f"{text} {marks}")
    return " ".join(out)
