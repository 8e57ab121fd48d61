"""A cited summary of one whole document, made of its own sentences, chosen part by part in document order.

Map: the passages are packed into parts of about a page, in document order; the model is shown each
part's sentences numbered and replies with the numbers of those that carry the part's main facts, most
important first (`choose.py`), enough from each part to fill the summary. Reduce: when the parts' choices
are more than the summary holds, each part's first choice is taken before any part's second, spread
evenly over the document (`spread`). So a part costs its reading and a few tokens of reply, and every
sentence shown is the document's own; each still goes through the answer verifier against its passage
before it is shown. Each reply is cached by the hash of its prompt, and what is done survives an
interruption (`SummaryJob.summary()`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..answer import prompt
from ..answer.cite import verify_sentence
from ..records import Citation
from .cache import PartCache, content_key
from .choose import NumberChoice, Sentence, parse_numbers, part_sentences, reply_tokens
from .source import Source, pack_parts, readable

# (sentences chosen in each part at least, sentences in the summary) for each --length.
LENGTHS = {"short": (2, 8), "long": (3, 16)}
# Tokens of passages in one part: about a page. A small model shown more at once favours the first
# sentences it reads, so the summary would only cover the beginning.
PART_TOKENS = 512
SYSTEM_PROMPT = "summarize.txt"


@dataclass(frozen=True)
class Point:
    """One shown summary sentence: the document's sentence, its passage, and its doc span."""

    text: str
    passage: Citation
    span: tuple[int, int]


@dataclass(frozen=True)
class Progress:
    """A part done, with the time left and the part's verified sentences."""

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
                "sentences": [{"text": p.text, "citations": [self.marker(p)]} for p in self.points],
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
        # Enough from each part to fill the summary: a document of one part gives all 8 in one step, of
        # three parts 3 each (then 8 of those 9 are kept), of ten parts 2 each.
        self.per_part = max(per_part, -(-self.target // len(self.parts)))
        self.sentences = [part_sentences(part, self.per_part) for part in self.parts]
        self.done: list[list[Point]] = []
        self.final: list[Point] | None = None
        self.chosen = self.verified = 0
        self.cached_parts = 0
        # Tokens the model wrote (its replies of numbers), for `rag bench --summary`.
        self.reply_tokens = 0
        self.seconds = 0.0
        self.model_seconds: list[float] = []

    # --- sizes and time -------------------------------------------------------------------------
    def part_budget(self, per_part: int) -> int:
        """Tokens of passages one part may hold: about a page, and never more than the context has room for."""
        return min(self.part_tokens, self.context_budget(per_part))

    def context_budget(self, count: int) -> int:
        """Tokens of text one step may show the model: the context less the prompts, the sentences' numbers
        (about a token for every five of text) and the reply's room."""
        gen = self.gen
        empty = self.part_messages([], 1, 1, count)
        fixed = sum(gen.count_tokens(m["content"]) for m in empty) + gen.chat_overhead(empty)
        return max(64, (gen.n_ctx - fixed - reply_tokens(999, count) - 16) * 5 // 6)

    def prompt_tokens(self) -> int:
        """Tokens the model reads for the map step: the system prompt once (its state is kept), then each
        part's numbered sentences."""
        count = self.gen.count_tokens
        parts = [self.part_messages(s, i, len(self.parts), self.per_part) for i, s in enumerate(self.sentences, 1)]
        return count(prompt.read(SYSTEM_PROMPT)) + sum(count(m[-1]["content"]) + 16 for m in parts)

    def estimate(self) -> float | None:
        """Seconds the summary should take, from this machine's measured speed (models/speed.json), or None."""
        prompt_speed, decode_speed = self.speed.get("prompt_tok_s"), self.speed.get("decode_tok_s")
        if not prompt_speed or not decode_speed:
            return None
        written = len(self.parts) * reply_tokens(99, self.per_part)
        return self.prompt_tokens() / prompt_speed + written / decode_speed

    def eta(self) -> float | None:
        """Seconds left: the parts to go at the pace of those the model read here, else the estimate's share."""
        left = self.steps() - len(self.done)
        if self.model_seconds:
            return left * sum(self.model_seconds) / len(self.model_seconds)
        estimate = self.estimate()
        return None if estimate is None else estimate * left / self.steps()

    def steps(self) -> int:
        """The steps: one a part (a model call, unless the part has no more sentences than it gives)."""
        return len(self.parts)

    # --- the steps ------------------------------------------------------------------------------
    def part_messages(self, sentences: list[Sentence], number: int, parts: int, count: int) -> list[dict]:
        shown = [{"number": s.number, "text": prompt.as_data(s.text)} for s in sentences]
        return [{"role": "system", "content": prompt.read(SYSTEM_PROMPT)},
                {"role": "user", "content": prompt.render("summarize_part.txt", doc=prompt.as_data(self.source.doc),
                                                          part=number, parts=parts, sentences=shown, count=count)}]

    def run(self) -> Iterator[str | Progress | Summary]:
        """Yield each part's verified sentences as text when the part is done (a draft), a Progress after
        each step, and the Summary last."""
        began = time.perf_counter()
        total = self.steps()
        for number, sentences in enumerate(self.sentences[len(self.done):], len(self.done) + 1):
            choosable = [s for s in sentences if s.number is not None]
            count = min(self.per_part, len(choosable))
            if count == len(choosable):  # nothing to choose between: all of them, no model call
                numbers, cached = [s.number for s in choosable], False
            else:
                messages = self.part_messages(sentences, number, len(self.parts), count)
                numbers, cached = self.choose(messages, len(choosable), count)
            points = self.keep([choosable[n - 1] for n in numbers], seen=self.all_points())
            self.done.append(points)
            self.seconds = time.perf_counter() - began
            if points:
                yield " ".join(p.text for p in points) + " "
            yield Progress(len(self.done), total, round(self.seconds, 1), self.eta(), cached, tuple(points))
        # The model chose as many from each part as the summary would need: when that is more than it holds,
        # each part's first choice before any part's second, evenly over the document. Asking the model to
        # choose again read every chosen sentence a second time (GPL-3: 54 of 315 s) and covered no more
        # of the hand-marked key points (docs/eval-summaries.md).
        self.final = spread(self.done, self.target)
        self.seconds = time.perf_counter() - began
        yield self.summary()

    def choose(self, messages: list[dict], total: int, count: int) -> tuple[list[int], bool]:
        """The numbers the model chooses, most important first (from the cache when it read the same prompt
        before), and whether they came from the cache. A local model can only reply with `count` distinct
        numbers of 1..`total`."""
        gen = self.gen
        key = content_key(getattr(gen, "name", ""), "choose", [m["content"] for m in messages], count)
        reply = self.cache.get(key)
        if reply is not None:
            self.cached_parts += 1
            return parse_numbers(reply, total, count), True
        options: dict = {"keep": 1} if hasattr(gen, "remember") else {}
        if hasattr(gen, "span_vocabulary"):
            options["constraint"] = NumberChoice(total, count, gen.span_vocabulary)
        began = time.perf_counter()
        reply = "".join(gen.stream(messages, reply_tokens(total, count), **options))
        self.model_seconds.append(time.perf_counter() - began)
        self.reply_tokens += gen.count_tokens(reply)
        self.cache.put(key, reply)
        return parse_numbers(reply, total, count), False

    def keep(self, chosen: list[Sentence], seen: list[Point]) -> list[Point]:
        """The chosen sentences that pass the verifier in their passage, as Points (repeats left out).

        A sentence of the passage backs itself; the check is what stands between the document and the
        reader all the same, so nothing unchecked is shown."""
        shown = {" ".join(p.text.lower().split()) for p in seen}
        out = []
        for s in chosen:
            self.chosen += 1
            if not verify_sentence(s.text, [readable(s.passage)], self.threshold):
                continue
            self.verified += 1
            key = s.text.lower()
            if key not in shown:
                shown.add(key)
                out.append(Point(s.text, s.passage, s.span))
        return out

    def all_points(self) -> list[Point]:
        """The points of the parts done, in document order."""
        return sorted((p for part in self.done for p in part), key=lambda p: p.span)

    def summary(self) -> Summary:
        """The summary as it stands: the final one, or (interrupted) every verified sentence of the parts done."""
        complete = self.final is not None
        points = self.final if complete else self.all_points()
        estimate = self.estimate()
        stats = {"parts": len(self.parts), "parts_done": len(self.done), "steps_cached": self.cached_parts,
                 "sentences_chosen": self.chosen, "verified": self.verified, "dropped": self.chosen - self.verified,
                 "faithfulness": round(self.verified / self.chosen, 4) if self.chosen else None,
                 "seconds": round(self.seconds, 1),
                 "estimate_seconds": None if estimate is None else round(estimate, 1),
                 "prompt_tokens": self.prompt_tokens()}
        return Summary(self.source.doc, self.length, tuple(points), complete, stats)


def spread(parts: list[list[Point]], n: int) -> list[Point]:
    """`n` points, each part's first choice before any part's second; when a round offers more than are
    left to take, they are taken evenly over the document. In document order.

    A part's points are in the order the model chose them, the most important first."""
    chosen: list[Point] = []
    for rank in range(max((len(p) for p in parts), default=0)):
        chosen.extend(evenly([part[rank] for part in parts if rank < len(part)], n - len(chosen)))
    return sorted(chosen, key=lambda p: p.span)


def evenly(points: list[Point], n: int) -> list[Point]:
    """`n` points spread evenly over the list, in order."""
    if n >= len(points):
        return list(points)
    return [points[round(i * (len(points) - 1) / max(n - 1, 1))] for i in range(n)]
