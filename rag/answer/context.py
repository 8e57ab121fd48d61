"""What the model reads: the best sentences of each retrieved chunk, with a neighbour, fitted to the context.

A chunk is about 500 characters; the sentence that answers a question is usually one of its three
or four. Sending that sentence (and a neighbour that also speaks to the question) instead of the whole
chunk roughly halves the prompt, and every window is still an exact slice of its document, so it stays
citable and highlightable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..documents.chunk import ends_a_sentence, split_sentences
from ..records import Citation, Hit

# A neighbour joins the best sentence of its chunk when it scores at least this share of the best. At 0.8
# the windows held the gold answer for 0.57 of the tune half's answerable items, the whole chunks for 0.71;
# at 0.5 the windows hold 0.62, for 21% more characters (`python -m rag.evaluation.context_recall`): the
# answer often sits in the sentence next to the one that matches the question's words. Chosen on the tune
# half (correctness 0.44 -> 0.47), kept on the report half (0.45 -> 0.50), docs/eval.md.
NEIGHBOUR_SHARE = 0.5
MAX_WINDOW_CHARS = 450
# A heading or a signature ("exception ModuleNotFoundError", "Path.unlink(missing_ok=False)") says only
# what it names; the answer is in the text it heads ("New in version 3.6.", scoring low on its own). When a
# window's best sentence is one, the window takes the sentences after it up to MAX_WINDOW_CHARS. On the
# tune half the windows then held the gold answer for 0.652 of the answerable items (0.615 before; pydocs
# 0.50 -> 0.60), for 10% more characters; correctness 0.47 -> 0.48 on the tune half, 0.50 -> 0.52 on the
# report half (docs/eval.md).
# A window is sent only when its best sentence scores at least this share of the best window's (0 sends
# all). At 0.6 the eval's tune questions sent 35% fewer new prompt tokens (p50 105 against 162) with the
# same answers right (docs/performance.md, "Fast on the slowest machine").
WINDOW_SHARE = 0.6


@dataclass(frozen=True)
class Receipt:
    """What the context cost and what was cut to fit it."""

    prompt_tokens: int
    passages: int
    sentences_sent: int
    sentences_left_out: int
    chunks_left_out: tuple[str, ...] = ()
    # Prompt tokens the model actually processed, and those it took from its KV cache (the fixed
    # prefix, in a warm process); from llama.cpp's counters. None when unknown (a remote server).
    prompt_evaluated: int | None = None
    prompt_cached: int | None = None
    # Tokens the support check processed after the answer (the rest came from the KV cache).
    check_evaluated: int | None = None

    def to_dict(self) -> dict:
        out = {"prompt_tokens": self.prompt_tokens, "passages": self.passages,
               "sentences_sent": self.sentences_sent, "sentences_left_out": self.sentences_left_out,
               "chunks_left_out": list(self.chunks_left_out)}
        if self.prompt_evaluated is not None:
            out.update(prompt_evaluated=self.prompt_evaluated, prompt_cached=self.prompt_cached)
        if self.check_evaluated is not None:
            out.update(check_evaluated=self.check_evaluated)
        return out


Scorer = Callable[[list[str]], np.ndarray]


def sentence_windows(hits: list[Hit], relevance: Scorer) -> tuple[list[Citation], int, int]:
    """One window per hit: its most relevant sentence, plus the neighbours that score nearly as well; when
    that sentence is a heading or a signature (`is_label`), the text after it too, up to MAX_WINDOW_CHARS.

    No text is sent twice: a window whose best sentence an earlier window holds is dropped, and one that
    overlaps an earlier window loses the overlapping neighbours. When the best window is clear, a window
    whose best sentence scores under WINDOW_SHARE of the best window's is left out too.
    Returns the windows (numbered in hit order), the sentences sent and the sentences left out.
    """
    per_hit = [split_sentences(h.chunk.text) for h in hits]
    flat = [h.chunk.text[a:b] for h, spans in zip(hits, per_hit) for a, b in spans]
    scores = relevance(flat) if flat else np.zeros(0)
    top = float(scores.max()) if len(scores) else 0.0
    windows, seen, sent, total, at = [], [], 0, 0, 0
    for hit, spans in zip(hits, per_hit):
        chunk, mine = hit.chunk, scores[at:at + len(spans)]
        at += len(spans)
        total += len(spans)
        if not spans:
            continue

        def already(j: int, chunk=chunk, spans=spans) -> bool:
            a, b = chunk.start + spans[j][0], chunk.start + spans[j][1]
            return any(d == chunk.doc_id and s < b and a < e for d, s, e in seen)

        best = int(np.argmax(mine))
        if already(best) or (top > 0 and mine[best] < WINDOW_SHARE * top):
            continue
        lo = hi = best
        for j in (best - 1, best + 1):
            if 0 <= j < len(spans) and mine[j] >= NEIGHBOUR_SHARE * mine[best] and not already(j) and \
                    max(spans[hi][1], spans[j][1]) - min(spans[lo][0], spans[j][0]) <= MAX_WINDOW_CHARS:
                lo, hi = min(lo, j), max(hi, j)
        if is_label(chunk.text[spans[best][0]:spans[best][1]]):  # what a heading names follows it
            while hi + 1 < len(spans) and not already(hi + 1) and spans[hi + 1][1] - spans[lo][0] <= MAX_WINDOW_CHARS:
                hi += 1
        start, end = chunk.start + spans[lo][0], chunk.start + spans[hi][1]
        seen.append((chunk.doc_id, start, end))
        sent += hi - lo + 1
        windows.append(Citation(len(windows) + 1, chunk.doc_id, chunk.page, start, end,
                                chunk.text[spans[lo][0]:spans[hi][1]], location=chunk.location))
    return windows, sent, total - sent


def whole_chunks(hits: list[Hit]) -> tuple[list[Citation], int, int]:
    """The hits' chunks as they are (the setting `context = "chunks"`), duplicates dropped."""
    out, seen, sent = [], set(), 0
    for hit in hits:
        chunk = hit.chunk
        if chunk.text in seen:
            continue
        seen.add(chunk.text)
        sent += len(split_sentences(chunk.text))
        out.append(Citation(len(out) + 1, chunk.doc_id, chunk.page, chunk.start, chunk.end, chunk.text,
                            location=chunk.location))
    return out, sent, 0


def fit_to_budget(passages: list[Citation], budget: int,
                  count_tokens: Callable[[str], int]) -> tuple[list[Citation], list[str]]:
    """Keep passages in order while their tokens fit `budget`; renumber them; name those left out."""
    kept, left_out = [], []
    for passage in passages:
        cost = count_tokens(passage.text) + 6
        if cost > budget:
            left_out.append(f"{passage.doc}:{passage.start}-{passage.end}")
            continue
        budget -= cost
        kept.append(Citation(len(kept) + 1, passage.doc, passage.page, passage.start, passage.end, passage.text,
                             location=passage.location))
    return kept, left_out


def is_label(sentence: str) -> bool:
    """A heading, a signature or a caption (no sentence-ending mark before any closing quote or bracket),
    or a line that ends in a colon: what it names or introduces follows it."""
    return not ends_a_sentence(sentence)
