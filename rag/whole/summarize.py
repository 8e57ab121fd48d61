"""A cited summary of one whole document: map-reduce over its passages in document order.

Map: the passages are packed into parts that fill the model's context, in document order; the model
summarizes each part in a few sentences, each citing its passage. Reduce: when the parts' sentences are
more than the summary's length, the model condenses them, citing the statements it keeps. Every sentence,
in both steps, goes through the answer verifier against the document's own text (`verify.check_reply`):
kept, rewritten as the document's sentence it paraphrases, or dropped. Each part's reply is cached by the
hash of its text, and what is done survives an interruption (`SummaryJob.summary()`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..answer import prompt
from ..answer.reader import best_span
from ..records import Citation
from .cache import PartCache, content_key
from .source import Source, pack_parts, readable
from .verify import Checked, check_reply

# (sentences asked of each part, sentences in the summary) for each --length.
LENGTHS = {"short": (2, 8), "long": (3, 16)}
# Tokens of passages in one part: about a page. A small model asked to summarize more at once copies
# the first sentences it reads, so the summary would only cover the beginning.
PART_TOKENS = 512
# Room for one sentence of the reply, and what one usually takes (for the time estimate).
MAX_SENTENCE_TOKENS = 64
TYPICAL_SENTENCE_TOKENS = 30
SYSTEM_PROMPT = "summarize.txt"


@dataclass(frozen=True)
class Point:
    """One shown summary sentence: its text, the passage that backs it, and the backing sentence's doc span.

    `written` is what the model wrote; `rewritten` when the text shown is the document's own sentence.
    """

    text: str
    passage: Citation
    span: tuple[int, int]
    written: str = ""
    rewritten: bool = False


@dataclass(frozen=True)
class Progress:
    """A step done: a part (`stage` "part") or the final condensing ("reduce"), with the time left."""

    stage: str
    done: int
    total: int
    seconds: float
    eta: float | None
    cached: bool
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Summary:
    """The verified summary of a document: its sentences with their passages, and how it was made."""

    doc: str
    length: str
    points: tuple[Point, ...]
    complete: bool
    stats: dict = field(default_factory=dict)

    @property
    def citations(self) -> tuple[Citation, ...]:
        """The cited passages numbered 1.. in order of first citation, one for each backing sentence (its span
        highlighted), so every marker quotes the sentence behind its own summary sentence."""
        out: dict[tuple[int, int, tuple[int, int]], Citation] = {}
        for p in self.points:
            key = (p.passage.start, p.passage.end, p.span)
            if key not in out:
                c = p.passage
                out[key] = Citation(len(out) + 1, c.doc, c.page, c.start, c.end, c.text, p.span, c.location)
        return tuple(out.values())

    def marker(self, point: Point) -> int:
        """The citation number of a point's passage."""
        return next(c.id for c in self.citations
                    if (c.start, c.end, c.highlight) == (point.passage.start, point.passage.end, point.span))

    @property
    def text(self) -> str:
        """The sentences with their `[n]` markers before the final full stop."""
        return " ".join(with_marker(p.text, self.marker(p)) for p in self.points)

    def to_dict(self) -> dict:
        return {"doc": self.doc, "length": self.length, "complete": self.complete, "summary": self.text,
                "sentences": [{"text": p.text, "citations": [self.marker(p)], "rewritten": p.rewritten,
                               "written": p.written} for p in self.points],
                "citations": [c.to_dict() for c in self.citations], "stats": dict(self.stats)}


def with_marker(text: str, n: int) -> str:
    """ "It rose." -> "It rose [2]."; text without a final stop gets the marker at its end."""
    text = text.rstrip()
    return f"{text[:-1]} [{n}]{text[-1]}" if text and text[-1] in ".!?" else f"{text} [{n}]"


class SummaryJob:
    """One summary in the making: `run()` streams it, `summary()` gives what is done at any moment."""

    def __init__(self, source: Source, generator, length: str = "short", threshold: float = 0.55,
                 cache: PartCache | None = None, speed: dict | None = None,
                 passages: list[Citation] | None = None, part_tokens: int = PART_TOKENS):
        from ..errors import BadInput

        if length not in LENGTHS:
            raise BadInput(f"--length must be one of {', '.join(LENGTHS)}, not {length!r}")
        self.source, self.gen, self.length, self.threshold = source, generator, length, threshold
        self.cache = cache or PartCache(None)
        self.part_tokens = part_tokens
        self.speed = speed or {}
        passages = list(source.passages if passages is None else passages)
        if not passages:
            raise BadInput(f"{source.doc}: no text to summarize")
        per_part, self.target = LENGTHS[length]
        self.parts = pack_parts(passages, self.part_budget(per_part), generator.count_tokens)
        # A document that fits in one part is summarized at the summary's length in one step.
        self.per_part = self.target if len(self.parts) == 1 else per_part
        # Whether the parts' sentences are expected to be more than the summary holds, so the model condenses them.
        self.condenses = len(self.parts) > 1 and len(self.parts) * self.per_part > self.target
        self.done: list[list[Point]] = []
        self.final: list[Point] | None = None
        self.checked: list[Checked] = []
        self.cached_parts = 0
        self.seconds = 0.0
        self.model_seconds: list[float] = []

    # --- sizes and time -------------------------------------------------------------------------
    def part_budget(self, per_part: int) -> int:
        """Tokens of passages one part may hold: about a page, and never more than the context has room for."""
        return min(self.part_tokens, self.context_budget(per_part))

    def context_budget(self, sentences: int) -> int:
        """Tokens of text one step may show the model: the context less the prompts and the reply's room."""
        gen = self.gen
        empty = self.part_messages([], 1, 1, sentences)
        fixed = sum(gen.count_tokens(m["content"]) for m in empty) + gen.chat_overhead(empty)
        return max(64, gen.n_ctx - fixed - sentences * MAX_SENTENCE_TOKENS - 16)

    def prompt_tokens(self) -> int:
        """Tokens the model reads for the map step (the floor: the document read once, plus the prompts)."""
        count = self.gen.count_tokens
        return sum(count(p.text) + 4 for part in self.parts for p in part) + len(self.parts) * 120

    def estimate(self) -> float | None:
        """Seconds the summary should take, from this machine's measured speed (models/speed.json), or None."""
        prompt_speed, decode_speed = self.speed.get("prompt_tok_s"), self.speed.get("decode_tok_s")
        if not prompt_speed or not decode_speed:
            return None
        mapped = len(self.parts) * self.per_part
        written = mapped + (self.target if self.condenses else 0)
        reduce_read = mapped * TYPICAL_SENTENCE_TOKENS if self.condenses else 0
        return ((self.prompt_tokens() + reduce_read) / prompt_speed
                + written * TYPICAL_SENTENCE_TOKENS / decode_speed)

    def eta(self) -> float | None:
        """Seconds left: the parts to go at the pace of those the model read here, else the estimate's share."""
        left = max(0, self.steps() - len(self.done) - (self.final is not None and self.condenses))
        if self.model_seconds:
            return left * sum(self.model_seconds) / len(self.model_seconds)
        estimate = self.estimate()
        return None if estimate is None else estimate * left / self.steps()

    def steps(self) -> int:
        """The model calls expected: one a part, and one to condense."""
        return len(self.parts) + self.condenses

    # --- the steps ------------------------------------------------------------------------------
    def part_messages(self, part: list[Citation], number: int, parts: int, sentences: int) -> list[dict]:
        shown = [{"id": i, "text": prompt.as_data(readable(p))} for i, p in enumerate(part, 1)]
        return [{"role": "system", "content": prompt.read(SYSTEM_PROMPT)},
                {"role": "user", "content": prompt.render("summarize_part.txt", doc=prompt.as_data(self.source.doc),
                                                          part=number, parts=parts, passages=shown,
                                                          sentences=sentences)}]

    def reduce_messages(self, points: list[Point]) -> list[dict]:
        shown = [{"id": i, "text": prompt.as_data(p.text)} for i, p in enumerate(points, 1)]
        return [{"role": "system", "content": prompt.read(SYSTEM_PROMPT)},
                {"role": "user", "content": prompt.render("summarize_reduce.txt", doc=prompt.as_data(self.source.doc),
                                                          points=shown, sentences=self.target)}]

    def run(self) -> Iterator[str | Progress | Summary]:
        """Yield the model's words as they come, a Progress after each step, and the Summary last."""
        began = time.perf_counter()
        total = self.steps()
        for number, part in enumerate(self.parts[len(self.done):], len(self.done) + 1):
            messages = self.part_messages(part, number, len(self.parts), self.per_part)
            reply, cached = yield from self.ask(messages, self.per_part, [p.text for p in part])
            evidence = {i: readable(p) for i, p in enumerate(part, 1)}
            points = self.keep(check_reply(reply, evidence, self.threshold), part, seen=self.all_points())
            self.done.append(points)
            self.seconds = time.perf_counter() - began
            yield Progress("part", len(self.done), total, round(self.seconds, 1), self.eta(), cached, tuple(points))
        points = self.all_points()
        if len(points) <= self.target or not self.condenses:
            # More sentences than asked for from a few parts: spread over them, no second model call.
            self.final = balanced(self.done, self.target)
        else:
            shown = fit_points(points, self.context_budget(self.target), self.gen.count_tokens)
            reply, cached = yield from self.ask(self.reduce_messages(shown), self.target, [p.text for p in shown])
            evidence = {i: readable(p.passage) for i, p in enumerate(shown, 1)}
            kept = self.keep(check_reply(reply, evidence, self.threshold), [p.passage for p in shown], seen=[])
            self.final = kept[:self.target] or balanced(self.done, self.target)
            self.seconds = time.perf_counter() - began
            done = len(self.parts) + 1
            yield Progress("reduce", done, max(done, total), round(self.seconds, 1), 0.0, cached, tuple(self.final))
        self.seconds = time.perf_counter() - began
        yield self.summary()

    def ask(self, messages: list[dict], sentences: int, texts: list[str]):
        """The model's reply to a step (from the cache when it read the same text before); yields its words."""
        gen = self.gen
        key = content_key(getattr(gen, "name", ""), [m["content"] for m in messages], texts)
        reply = self.cache.get(key)
        if reply is not None:
            self.cached_parts += 1
            return reply, True
        began = time.perf_counter()
        pieces = []
        keep = {"keep": 1} if hasattr(gen, "remember") else {}
        for piece in gen.stream(messages, sentences * MAX_SENTENCE_TOKENS, **keep):
            pieces.append(piece)
            yield piece
        reply = "".join(pieces)
        self.model_seconds.append(time.perf_counter() - began)
        self.cache.put(key, reply)
        return reply, False

    def keep(self, checked: list[Checked], passages: list[Citation], seen: list[Point]) -> list[Point]:
        """The verified sentences as Points (repeats left out); every checked sentence counts in the stats."""
        self.checked.extend(checked)
        shown = {" ".join(p.text.lower().split()) for p in seen}
        out = []
        for c in checked:
            key = " ".join(c.text.lower().split())
            if not c.kept or key in shown:
                continue
            shown.add(key)
            passage = passages[c.backer - 1]
            out.append(Point(c.text, passage, best_span(passage, c.text), c.written, c.rewritten))
        return out

    def all_points(self) -> list[Point]:
        return [p for part in self.done for p in part]

    def summary(self) -> Summary:
        """The summary as it stands: the final one, or (interrupted) every verified sentence of the parts done."""
        complete = self.final is not None
        points = self.final if complete else self.all_points()
        cut = sum(c.cut for c in self.checked)
        written = len(self.checked) - cut
        verified = sum(c.kept and not c.rewritten for c in self.checked)
        rewritten = sum(c.rewritten for c in self.checked)
        estimate = self.estimate()
        stats = {"parts": len(self.parts), "parts_done": len(self.done), "steps_cached": self.cached_parts,
                 "sentences_written": written, "verified": verified, "rewritten": rewritten,
                 "dropped": written - verified - rewritten, "cut_short": cut,
                 "faithfulness": round(verified / written, 4) if written else None,
                 "seconds": round(self.seconds, 1),
                 "estimate_seconds": None if estimate is None else round(estimate, 1),
                 "prompt_tokens": self.prompt_tokens()}
        return Summary(self.source.doc, self.length, tuple(points), complete, stats)


def fit_points(points: list[Point], budget: int, count_tokens) -> list[Point]:
    """The points, evenly thinned until their text fits `budget` tokens."""
    chosen = points
    while len(chosen) > 1 and sum(count_tokens(p.text) + 4 for p in chosen) > budget:
        chosen = evenly(points, len(chosen) - 1)
    return chosen


def balanced(parts: list[list[Point]], n: int) -> list[Point]:
    """`n` points taken from the parts in turn (the first of each part, then the second…), in document order:
    a part whose reply ran on does not crowd out the others."""
    chosen: list[Point] = []
    for rank in range(max((len(p) for p in parts), default=0)):
        for part in parts:
            if rank < len(part) and len(chosen) < n:
                chosen.append(part[rank])
    order = {id(p): i for i, p in enumerate(p for part in parts for p in part)}
    return sorted(chosen, key=lambda p: order[id(p)])


def evenly(points: list[Point], n: int) -> list[Point]:
    """`n` points spread evenly over the list, in order."""
    if n >= len(points):
        return list(points)
    return [points[round(i * (len(points) - 1) / max(n - 1, 1))] for i in range(n)]
