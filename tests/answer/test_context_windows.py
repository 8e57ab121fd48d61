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


ENTRY = ("exception ModuleNotFoundError\n\nA subclass of ImportError, raised when a module cannot be located. "
         "New in version 3.6. It is also raised when None is found in sys.modules.\n\n"
         "exception IndexError\n\nRaised when a sequence subscript is out of range.")


def entry_hit(text: str = ENTRY) -> Hit:
    return Hit(Chunk("e#1", "e.txt", text, 0, len(text)), 1.0, 1, 0.5, 0.5)


def test_a_heading_that_matches_best_brings_the_text_it_names():
    # The question names the entry; the heading matches it, the version note after it does not.
    scores = {"exception ModuleNotFoundError": 1.0, "New in version 3.6.": 0.1}
    windows, sent, _ = sentence_windows([entry_hit()], scorer(scores))
    assert windows[0].text.startswith("exception ModuleNotFoundError")
    assert "New in version 3.6." in windows[0].text
    assert ENTRY[windows[0].start:windows[0].end] == windows[0].text
    assert len(windows[0].text) <= context.MAX_WINDOW_CHARS and sent >= 3


def test_a_heading_brings_no_more_than_a_windows_characters():
    body = " ".join(f"Sentence number {i} says a little more about it." for i in range(30))
    text = f"Heading of a long entry\n\n{body}"
    windows, _, _ = sentence_windows([entry_hit(text)], scorer({"Heading of a long entry": 1.0}))
    assert len(windows[0].text) <= context.MAX_WINDOW_CHARS
    assert windows[0].text.startswith("Heading of a long entry") and "Sentence number 0 " in windows[0].text


def test_a_prose_sentence_that_matches_best_keeps_only_its_close_neighbours():
    scores = {"A subclass of ImportError, raised when a module cannot be located.": 1.0}
    windows, _, _ = sentence_windows([entry_hit()], scorer(scores))
    assert [w.text for w in windows] == ["A subclass of ImportError, raised when a module cannot be located."]


def test_labels_are_headings_signatures_and_lead_ins_not_sentences():
    assert context.is_label("Path.unlink(missing_ok=False)")
    assert context.is_label("Pattern Matching: The Gestalt Approach")
    assert context.is_label("Example of use as a default value:")
    assert not context.is_label("Twenty-eight nations signed the declaration.")
    assert not context.is_label('He said "yes."')
    assert not context.is_label("(See PEP 378.)")
    assert not context.is_label("Is it still supported?")
