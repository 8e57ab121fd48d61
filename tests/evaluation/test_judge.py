"""The eval's support judge (rag/judge.py) with an embedder whose similarities the test sets, and the
agreement arithmetic that validates it against the hand labels."""

from __future__ import annotations

import numpy as np
import pytest

from rag.evaluation.evaluate import validate_judge
from rag.evaluation.judge import HIGH_SIMILARITY, MIN_SIMILARITY, Judge, agreement

WINDOW = "The Bletchley Declaration was signed by 28 nations."
OTHER = "Lisbon has mild winters."
PASSAGE = f"{WINDOW} {OTHER}"
CLAIM = "28 nations signed the Bletchley Declaration."  # what WINDOW says, in other words
QUESTION = "How many nations signed the Bletchley Declaration?"


class AngleEmbedder:
    """Gives each listed text a set cosine with the first axis; any other text is orthogonal to it.

    The sentence under test is listed at 1.0, so a window's cosine is its similarity to the sentence.
    """

    name = "angle"
    dim = 2

    def __init__(self, cosines: dict[str, float]):
        self.cosines = cosines
        self.embedded: list[str] = []

    def embed(self, texts, progress=False):
        self.embedded += texts
        c = np.array([self.cosines.get(t, 0.0) for t in texts], dtype=np.float32)
        return np.stack([c, np.sqrt(1 - c * c)], axis=1)


def judge_at(similarity: float, sentence: str = CLAIM) -> Judge:
    """A judge that finds WINDOW at `similarity` to the sentence, and the passage's other windows at 0."""
    return Judge(AngleEmbedder({sentence: 1.0, WINDOW: similarity}))


# --- supports: similarity first, then the window must hold the sentence's facts -------------------
def test_the_passage_sentence_that_restates_the_sentence_supports_it():
    assert Judge.windows([PASSAGE]) == [WINDOW, OTHER, PASSAGE]
    assert judge_at(0.9).supports(CLAIM, [PASSAGE])


def test_below_the_similarity_floor_even_the_same_words_do_not_support():
    assert not judge_at(MIN_SIMILARITY - 0.01).supports(CLAIM, [PASSAGE])
    assert judge_at(MIN_SIMILARITY + 0.01).supports(CLAIM, [PASSAGE])


def test_a_very_similar_window_may_leave_more_of_the_sentence_s_words_unaccounted_for():
    # 4 of 9 content words (long, debates, frontier, safety) are not in the window: 0.44 of them.
    wordy = "The Bletchley Declaration was signed by 28 nations after long debates about frontier safety."
    assert not judge_at(HIGH_SIMILARITY - 0.05, wordy).supports(wordy, [PASSAGE])
    assert judge_at(HIGH_SIMILARITY + 0.05, wordy).supports(wordy, [PASSAGE])


def test_nothing_to_judge_is_never_supported():
    assert not judge_at(1.0).supports(CLAIM, [])
    assert not judge_at(1.0, "It is what it is.").supports("It is what it is.", [PASSAGE])  # only stopwords


@pytest.mark.parametrize("sentence, supported", [
    (CLAIM, True),
    ("The Bletchley Declaration was signed by 30 nations.", False),  # another number
    ("The Lisbon Declaration was signed by 28 nations.", False),  # another name
    ("The Bletchley Declaration was not signed by 28 nations.", False),  # a negation added
    ("Only 28 nations signed the Bletchley Declaration.", False),  # a word that turns it around
    ("The Bletchley Declaration was signed by 28 nations after debates about safety.", True),  # 2 of 7 new
])
def test_a_similar_window_supports_only_a_sentence_whose_facts_it_holds(sentence, supported):
    assert judge_at(0.7, sentence).supports(sentence, [PASSAGE]) is supported


def test_a_negation_the_sentence_drops_is_not_supported():
    assert Judge.aligned(CLAIM, WINDOW)
    assert not Judge.aligned(CLAIM, "The Bletchley Declaration was never signed by 28 nations.")


def test_each_text_is_embedded_once_however_often_it_is_judged():
    judge = judge_at(0.9)
    assert judge.supports(CLAIM, [PASSAGE]) and judge.supports(CLAIM, [PASSAGE])
    assert sorted(judge.embedder.embedded) == sorted([CLAIM, WINDOW, OTHER, PASSAGE])


# --- supports_answer: a short answer word for word, and a passage meaning the answered question ---
def answer_judge(answer: str, similarity: float, question: str = QUESTION) -> Judge:
    return Judge(AngleEmbedder({f"{question} {answer}": 1.0, PASSAGE: similarity}))


def test_a_short_answer_held_word_for_word_by_a_passage_that_means_the_question_is_supported():
    assert answer_judge("28 nations", 0.7).supports_answer(QUESTION, "28 nations", [PASSAGE])


@pytest.mark.parametrize("question, answer, similarity", [
    (QUESTION, "30 nations", 0.7),  # no window holds the answer
    (QUESTION, "28 nations", MIN_SIMILARITY - 0.01),  # the passage means something else
    ("Which nations refused to sign the Bletchley Declaration?", "28 nations", 1.0),  # "refused" is missing
])
def test_a_short_answer_is_not_supported(question, answer, similarity):
    assert not answer_judge(answer, similarity, question).supports_answer(question, answer, [PASSAGE])


# --- agreement: accuracy and Cohen's kappa ---------------------------------------------------------
def table(yes_yes: int, yes_no: int, no_yes: int, no_no: int) -> tuple[list[bool], list[bool]]:
    """(predicted, gold) from a 2x2 table; `yes_no` counts predicted yes where the label is no."""
    cells = [(True, True)] * yes_yes + [(True, False)] * yes_no + [(False, True)] * no_yes + \
        [(False, False)] * no_no
    return [p for p, _ in cells], [g for _, g in cells]


@pytest.mark.parametrize("cells, accuracy, kappa", [
    # Agreement 0.7 where chance gives 0.5 (0.5 x 0.6 + 0.5 x 0.4): kappa (0.7 - 0.5) / 0.5.
    ((20, 5, 10, 15), 0.7, 0.4),
    # Agreement 0.6 where chance gives 0.54 (0.6 x 0.7 + 0.4 x 0.3): kappa 0.06 / 0.46.
    ((45, 15, 25, 15), 0.6, 0.1304),
    ((30, 0, 0, 20), 1.0, 1.0),  # perfect
    ((25, 25, 0, 0), 0.5, 0.0),  # always "supported" on balanced labels: no better than chance
    ((0, 25, 25, 0), 0.0, -1.0),  # always the opposite
    ((40, 0, 0, 0), 1.0, 1.0),  # one class only, agreed: chance agreement is 1
])
def test_agreement_gives_accuracy_and_cohen_s_kappa(cells, accuracy, kappa):
    predicted, gold = table(*cells)
    assert agreement(predicted, gold) == {"n": sum(cells), "accuracy": accuracy, "kappa": kappa}


def test_agreement_on_no_labels_is_zero():
    assert agreement([], []) == {"n": 0, "accuracy": 0.0, "kappa": 0.0}


class ScriptedJudge:
    def __init__(self, verdicts: dict[str, bool]):
        self.verdicts = verdicts

    def supports(self, sentence, passages):
        return self.verdicts[sentence]


def test_validation_reports_the_judge_on_all_labels_on_the_odd_lines_and_by_kind():
    labels = [  # the verifier backs the two copies of the passage and nothing else
        {"sentence": WINDOW, "passage": WINDOW, "supported": True, "kind": "verbatim"},
        {"sentence": "Lisbon had 3 mild winters.", "passage": OTHER, "supported": False, "kind": "verbatim"},
        {"sentence": OTHER, "passage": OTHER, "supported": True, "kind": "swap"},
        {"sentence": "Winters are mild in Porto.", "passage": OTHER, "supported": False, "kind": "swap"},
    ]
    judge = ScriptedJudge({WINDOW: True, "Lisbon had 3 mild winters.": True, OTHER: True,
                           "Winters are mild in Porto.": False})

    report = validate_judge(judge, labels, threshold=0.55)

    assert report["judge"] == {"n": 4, "accuracy": 0.75, "kappa": 0.5}
    assert report["judge_held_out"] == {"n": 2, "accuracy": 0.5, "kappa": 0.0}  # lines 2 and 4
    assert report["judge_accuracy_by_kind"] == {"swap": 1.0, "verbatim": 0.5}
    assert report["verifier"] == {"n": 4, "accuracy": 1.0, "kappa": 1.0}
