"""Two documents side by side: where they agree, where they differ, what only one of them says.

Built on the summaries: each document's verified summary points (on `--about TOPIC`, of the passages
of each document that speak to it) are looked for in the other document by document-scoped retrieval
over its sentences (embedding cosine and shared words). A point the other document's best sentence backs
(the answer verifier) is a point of agreement; a point whose best sentence is related but does not back
it is a difference, shown with that sentence; a point with nothing related is the one document's only.
Each side is cited to its own document: a verified summary sentence or the document's own sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..answer.cite import support_score, verify_sentence
from ..documents.chunk import split_sentences
from ..records import Citation
from .source import Source, readable
from .summarize import Point, Progress, Summary, SummaryJob

# A counterpart this related (half embedding cosine, half shared content words) speaks of the same thing.
RELATED = 0.45
# Passages of each document kept for `--about`: the most relevant ones, in document order.
ABOUT_PASSAGES = 8
KINDS = ("agree", "differ", "only")


@dataclass(frozen=True)
class Side:
    """What one document says of a point: the text shown and the passage it is cited to (highlight set)."""

    doc: str
    text: str
    passage: Citation
    span: tuple[int, int]


@dataclass(frozen=True)
class Finding:
    """One point of the comparison: "agree" or "differ" (both sides), or "only" (one side, `a` or `b`)."""

    kind: str
    a: Side | None
    b: Side | None
    related: float


@dataclass(frozen=True)
class Comparison:
    doc_a: str
    doc_b: str
    about: str
    findings: tuple[Finding, ...]
    stats: dict = field(default_factory=dict)

    @property
    def citations(self) -> tuple[Citation, ...]:
        """Every cited sentence's passage, numbered 1.. in order of first citation, the sentence highlighted."""
        out: dict[tuple[str, int, int, tuple[int, int]], Citation] = {}
        for f in self.findings:
            for side in (f.a, f.b):
                if side is None:
                    continue
                key = (side.doc, side.passage.start, side.passage.end, side.span)
                if key not in out:
                    c = side.passage
                    out[key] = Citation(len(out) + 1, c.doc, c.page, c.start, c.end, c.text, side.span, c.location)
        return tuple(out.values())

    def marker(self, side: Side) -> int:
        key = (side.doc, side.passage.start, side.passage.end, side.span)
        return next(c.id for c in self.citations if (c.doc, c.start, c.end, c.highlight) == key)

    def to_dict(self) -> dict:
        def side(s: Side | None):
            return None if s is None else {"doc": s.doc, "text": s.text, "citation": self.marker(s)}

        return {"doc_a": self.doc_a, "doc_b": self.doc_b, "about": self.about,
                "findings": [{"kind": f.kind, "a": side(f.a), "b": side(f.b), "related": round(f.related, 4)}
                             for f in self.findings],
                "citations": [c.to_dict() for c in self.citations], "stats": dict(self.stats)}


def about_passages(source: Source, about: str, relevance: Callable) -> list[Citation]:
    """The passages of a document that speak most to `about`, in document order (document-scoped retrieval)."""
    passages = list(source.passages)
    if not about or len(passages) <= ABOUT_PASSAGES:
        return passages
    scores = np.asarray(relevance(about, [p.text for p in passages]))
    keep = sorted(np.argsort(-scores)[:ABOUT_PASSAGES])
    return [passages[i] for i in keep]


def sentences_of(source: Source) -> list[Side]:
    """Every sentence of a document as a Side cited to its passage (instruction-like ones left out)."""
    out = []
    for p in source.passages:
        text = readable(p)
        for a, b in split_sentences(text):
            if len(text[a:b].split()) >= 3:
                out.append(Side(source.doc, " ".join(p.text[a:b].split()), p, (p.start + a, p.start + b)))
    return out


class Matcher:
    """Document-scoped retrieval over one document's sentences: the best counterpart of a statement."""

    def __init__(self, sides: list[Side], embed: Callable):
        self.sides = sides
        self.embed = embed
        self.vectors = embed([s.text for s in sides]) if sides else np.zeros((0, 1))

    def best(self, statement: str, taken: set = frozenset()) -> tuple[Side | None, float]:
        """The sentence most related to the statement, and its score; sentences whose span is in `taken`
        (already another point's counterpart) are passed over."""
        free = [i for i, s in enumerate(self.sides) if s.span not in taken]
        if not free:
            return None, 0.0
        dense = self.vectors[free] @ self.embed([statement])[0]
        lexical = np.array([support_score(statement, self.sides[i].text) for i in free])
        scores = 0.5 * dense + 0.5 * lexical
        i = int(np.argmax(scores))
        return self.sides[free[i]], float(scores[i])


def backs(statement: str, side: Side, threshold: float) -> bool:
    """Whether the other document's passage around its best sentence backs the statement (the verifier)."""
    return verify_sentence(statement, [readable(side.passage)], threshold)


def as_side(point: Point) -> Side:
    return Side(point.passage.doc, point.text, point.passage, point.span)


def match_points(points: list[Point], other: Matcher, threshold: float, first: bool) -> list[Finding]:
    """Each point of one document against the other document: agree, differ or only (see the module).

    A sentence of the other document is the counterpart of one point at most, so a theme both documents
    share is not shown as one sentence against every point near it.
    """
    out, taken = [], set()
    for point in points:
        counterpart, related = other.best(point.text, taken)
        mine = as_side(point)
        if counterpart is not None and backs(point.text, counterpart, threshold):
            kind = "agree"
        elif counterpart is not None and related >= RELATED:
            kind = "differ"
        else:
            kind, counterpart = "only", None
        if counterpart is not None:
            taken.add(counterpart.span)
        out.append(Finding(kind, mine if first else counterpart, counterpart if first else mine, related))
    return out


class CompareJob:
    """The two summaries (streamed like `SummaryJob.run`), then the matching; `run()` ends with a Comparison."""

    def __init__(self, job_a: SummaryJob, job_b: SummaryJob, embed: Callable, about: str = "",
                 threshold: float = 0.55):
        self.jobs = (job_a, job_b)
        self.embed = embed
        self.about = about
        self.threshold = threshold

    def run(self) -> Iterator[str | Progress | Summary | Comparison]:
        summaries = []
        for job in self.jobs:
            for event in job.run():
                yield event
                if isinstance(event, Summary):
                    summaries.append(event)
        yield self.compare(*summaries)

    def compare(self, a: Summary, b: Summary) -> Comparison:
        job_a, job_b = self.jobs
        match_a = Matcher(sentences_of(job_a.source), self.embed)
        match_b = Matcher(sentences_of(job_b.source), self.embed)
        from_a = match_points(list(a.points), match_b, self.threshold, first=True)
        from_b = match_points(list(b.points), match_a, self.threshold, first=False)
        findings, seen = [], set()
        # A statement paired with the other document's sentence (either way round) is not also "only" one's.
        paired = {(s.doc, s.span) for f in [*from_a, *from_b] if f.kind != "only" for s in (f.a, f.b)}
        for f in [*from_a, *from_b]:
            key = tuple((s.doc, s.span) for s in (f.a, f.b) if s is not None)
            if key in seen or (f.kind == "only" and key[0] in paired):
                continue
            seen.add(key)
            findings.append(f)
        findings.sort(key=lambda f: KINDS.index(f.kind))
        counts = {k: sum(f.kind == k for f in findings) for k in KINDS}
        stats = {"a": a.stats, "b": b.stats, **counts}
        return Comparison(job_a.source.doc, job_b.source.doc, self.about, tuple(findings), stats)
