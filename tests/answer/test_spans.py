"""Short answers decoded as spans of the passages (rag/answer/spans.py), on a small made-up vocabulary."""

import numpy as np
import pytest

from rag.answer.spans import ChoiceConstraint, Passage, SentenceConstraint, SpanConstraint, Vocabulary, asks_yes_or_no

END = 0
PIECES = [b"", b"NONE", b"28", b" nations", b"The", b" Bletchley", b" Declaration", b" was", b" signed",
          b" by", b" 2", b"8", b"Yes", b"No", b" the", b" Bletch", b"ley", b"[", b"2", b"]", b" YES", b"s"]
ID = {p: i for i, p in enumerate(PIECES)}


@pytest.fixture
def vocabulary():
    return Vocabulary(PIECES, frozenset({END}))


def decode(constraint, choices):
    """Follow `choices` (pieces), checking each is allowed; returns the allowed set after the last."""
    for piece in choices:
        allowed = set(constraint.allowed().tolist())
        assert ID[piece] in allowed, (piece, [PIECES[i] for i in allowed])
        constraint.advance(ID[piece])
    return {PIECES[i] for i in constraint.allowed().tolist()}


def test_a_passage_number_or_a_yes_cannot_start_a_short_answer(vocabulary):
    constraint = SpanConstraint(["The Bletchley Declaration was signed by 28 nations."], vocabulary)
    first = {PIECES[i] for i in constraint.allowed().tolist()}
    assert b"[" not in first and b" YES" not in first and b"Yes" not in first and b"No" not in first
    assert {b"The", b"28", b" Bletchley", b" nations", b"NONE"} <= first


def test_the_span_goes_on_only_as_the_passage_does_and_ends_only_at_a_word_end(vocabulary):
    constraint = SpanConstraint(["The Bletchley Declaration was signed by 28 nations."], vocabulary)
    after = decode(constraint, [b" Bletch"])
    assert after == {b"ley"}  # " Bletch" cuts a word: neither the end nor another word may follow
    after = decode(constraint, [b"ley"])
    assert b"" in after and b" Declaration" in after and b" was" not in after
    assert constraint.span() == (0, 4, 13)


def test_case_and_whitespace_runs_are_forgiven_and_the_span_maps_to_the_original_text(vocabulary):
    text = "It was\n\n  signed by   28 nations."
    constraint = SpanConstraint(["Nothing here.", text], vocabulary)
    decode(constraint, [b" signed", b" by", b" 2", b"8", b" nations"])
    n, start, end = constraint.span()
    assert n == 1 and text[start:end] == "signed by   28 nations"


def test_the_abstention_word_is_allowed_only_first_and_ends_the_reply(vocabulary):
    constraint = SpanConstraint(["signed by 28 nations"], vocabulary)
    assert ID[b"NONE"] in constraint.allowed()
    constraint.advance(ID[b"NONE"])
    assert constraint.abstained
    other = SpanConstraint(["signed by 28 nations"], vocabulary)
    other.advance(ID[b" signed"])
    assert ID[b"NONE"] not in other.allowed()


def test_a_word_cut_inside_a_multibyte_character_is_not_a_whole_span():
    text = "Zürich"
    pieces = [b"", b"Z", b"\xc3", b"\xbc", b"rich"]
    constraint = SpanConstraint([text], Vocabulary(pieces, frozenset({0})))
    constraint.advance(1)
    constraint.advance(2)
    assert not constraint.can_end() and 0 not in constraint.allowed()
    constraint.advance(3)
    constraint.advance(4)
    assert constraint.can_end() and constraint.span() == (0, 0, 6)


def test_instruction_blanked_passages_offer_no_span_there(vocabulary):
    constraint = SpanConstraint(["   "], vocabulary)
    assert set(constraint.allowed().tolist()) == {ID[b"NONE"]}


def test_a_yes_no_reply_is_one_of_its_words_then_ends(vocabulary):
    constraint = ChoiceConstraint(("Yes", "No", "NONE"), vocabulary)
    # Any case, with or without the leading space: " YES" spells the same word.
    assert set(constraint.allowed().tolist()) == {ID[b"Yes"], ID[b"No"], ID[b"NONE"], ID[b" YES"]}
    assert constraint.chosen(ID[b"No"]) == "No"
    constraint.advance(ID[b"No"])
    assert constraint.allowed().tolist() == [END]


@pytest.mark.parametrize("question,expected", [
    ("Does the GPL-3 allow sublicensing?", True), ("Is zoneinfo still supported in 3.11?", True),
    ("Did both articles mention Raimondo?", True), ("Is the initiative Chinese or American?", False),
    ("Which countries signed?", False), ("What does the licence cover?", False)])
def test_yes_no_questions_are_told_from_questions_about_a_thing(question, expected):
    assert asks_yes_or_no(question) is expected


def test_the_passage_bytes_keep_each_bytes_offset_in_the_original():
    p = Passage.of("a  b\nç")
    assert p.lower == "a b ç".encode()
    assert p.origin == (0, 1, 3, 4, 5, 5)
    assert np.all(np.diff(p.origin) >= 0)


TWO = "The Bletchley Declaration was signed by 28 nations.  The nations\nsigned it."


def test_a_sentence_answer_starts_at_any_word_of_the_passages_but_not_at_a_number_or_the_end(vocabulary):
    constraint = SentenceConstraint([TWO], vocabulary)
    first = {PIECES[i] for i in constraint.allowed().tolist()}
    assert {b"The", b" the", b" Bletchley", b" nations", b"28", b"NONE"} <= first
    assert not first & {b"[", b" YES", b"Yes", b""}


def test_a_sentence_answer_ends_only_where_its_sentence_ends(vocabulary):
    constraint = SentenceConstraint(["Signed by 28 nations. Signed by 28 nations, it was a pact."],
                                    Vocabulary([b"", b"Signed", b" by", b" 2", b"8", b" nations", b".", b","],
                                               frozenset({END})))
    for piece in (1, 2, 3, 4, 5):  # "Signed by 28 nations" stands in both sentences: not yet unique
        assert END not in constraint.allowed()
        constraint.advance(piece)
        assert constraint.rest() is None
    assert END not in constraint.allowed()  # a word end, not a sentence end
    constraint.advance(6)  # "." ends the first sentence: the reply may end here
    assert END in constraint.allowed() and constraint.rest() is None
    other = SentenceConstraint(["Signed by 28 nations. Signed by 28 nations, it was a pact."], constraint.vocabulary)
    for piece in (1, 2, 3, 4, 5, 7):  # "," leaves only the second sentence
        other.advance(piece)
    assert other.rest() == " it was a pact."


def test_once_one_sentence_is_left_its_rest_comes_from_the_passage_in_its_own_characters(vocabulary):
    constraint = SentenceConstraint(["Nothing here.", TWO], vocabulary)
    decode(constraint, [b"The"])
    assert constraint.rest() is None  # two sentences start with "The"
    decode(constraint, [b" Bletchley"])
    assert constraint.rest() == " Declaration was signed by 28 nations."
    second = SentenceConstraint([TWO], vocabulary)
    decode(second, [b"The", b" nations"])
    assert second.rest() == " signed it."  # the line break read as a space


def test_the_abstention_word_may_start_a_sentence_answer_and_ends_it(vocabulary):
    constraint = SentenceConstraint([TWO], vocabulary, abstain_word="NONE")
    assert ID[b"NONE"] in constraint.allowed()
    constraint.advance(ID[b"NONE"])
    assert constraint.abstained and constraint.rest() is None


def test_a_sentence_is_not_completed_from_inside_a_character():
    text = "Café owners met. Others left."
    pieces = [b"", b"Caf", b"\xc3", b"\xa9", b" owners"]
    constraint = SentenceConstraint([text], Vocabulary(pieces, frozenset({END})))
    constraint.advance(1)
    constraint.advance(2)  # the first byte of "é": the reply may not be completed yet
    assert constraint.rest() is None
    constraint.advance(3)
    assert constraint.rest() == " owners met."


def test_a_yes_no_bias_moves_the_first_step_odds_by_exactly_its_log_odds(vocabulary):
    logp = np.log(np.full(len(PIECES), 0.01))
    logp[ID[b"Yes"]], logp[ID[b"No"]], logp[ID[b"NONE"]], logp[ID[b" YES"]] = np.log([0.5, 0.1, 0.1, 0.1])
    logp -= np.log(np.exp(logp).sum())
    constraint = ChoiceConstraint(("Yes", "No", "NONE"), vocabulary, {"No": np.log(8.0)})
    raw = constraint.choice_probabilities(logp)
    assert raw["Yes"] == pytest.approx(raw["No"] * 6, rel=1e-4)  # "Yes" and " YES" spell one word: 0.6 against 0.1
    biased = constraint.calibrate(logp)
    assert np.exp(biased).sum() == pytest.approx(1.0)
    after = constraint.choice_probabilities(biased)
    assert after["No"] / after["Yes"] == pytest.approx(8 / 6, rel=1e-4)  # 0.1 × 8 against 0.6: "No" now wins
    assert after["NONE"] / after["Yes"] == pytest.approx(raw["NONE"] / raw["Yes"], rel=1e-4)
    constraint.advance(ID[b"No"])
    assert constraint.calibrate(logp) is logp  # only the first step is biased
    assert ChoiceConstraint(("Yes", "No"), vocabulary).calibrate(logp) is logp
