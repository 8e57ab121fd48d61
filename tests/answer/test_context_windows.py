"""Sentence windows send no text twice, and leave out the windows far behind the best when it is clear."""

import numpy as np

from rag.answer import context
from rag.answer.context import sentence_windows
from rag.records import Chunk, Hit

DOC = ("The summit met at Bletchley Park. Twenty-eight nations signed the declaration. "
       "The declaration names frontier risks. Seoul hosts the next summit. Paris follows later.")


def hit(start: int, end: int, rank: int) -> Hit:
    return Hit(Chunk(f"d#{rank}", "d.txt", DOC[start:end], start, end), 1.0 / rank, rank, 0.5, 0.5)


def scorer(scores: dict[str, float]):
    """Relevance by sentence text, from a table (0 for the rest)."""
    return lambda texts: np.array([scores.get(t.strip(), 0.0) for t in texts])


def test_overlapping_chunks_send_each_sentence_once():
    # Two overlapping chunks, both best at the second sentence, whose neighbours score nearly as well.
    first, second = hit(0, 116, 1), hit(34, 166, 2)
    scores = {"Twenty-eight nations signed the declaration.": 1.0, "The summit met at Bletchley Park.": 0.9,
              "The declaration names frontier risks.": 0.95}
    windows, sent, _ = sentence_windows([first, second], scorer(scores))
    texts = [w.text for w in windows]
    assert len(windows) == 1 and "Twenty-eight nations" in texts[0]
    assert sent == sum(len([s for s in scores if s in t]) for t in texts)


def test_an_overlapping_window_keeps_only_its_new_sentences():
    first, second = hit(0, 116, 1), hit(79, 166, 2)
    scores = {"Twenty-eight nations signed the declaration.": 0.95, "The declaration names frontier risks.": 0.9,
              "Seoul hosts the next summit.": 1.0}
    windows, _, _ = sentence_windows([first, second], scorer(scores))
    assert [w.text for w in windows] == ["Twenty-eight nations signed the declaration. "
                                         "The declaration names frontier risks.", "Seoul hosts the next summit."]
    assert all(DOC[w.start:w.end] == w.text for w in windows)


def test_a_window_far_behind_a_clear_best_is_left_out(monkeypatch):
    first, second = hit(0, 116, 1), hit(117, 166, 2)
    scores = {"Twenty-eight nations signed the declaration.": 1.0, "Seoul hosts the next summit.": 0.3}
    monkeypatch.setattr(context, "WINDOW_SHARE", 0.0)
    assert len(sentence_windows([first, second], scorer(scores))[0]) == 2
    monkeypatch.undo()
    windows, _, _ = sentence_windows([first, second], scorer(scores))
    assert [w.text for w in windows] == ["Twenty-eight nations signed the declaration."]
