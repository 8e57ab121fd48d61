import numpy as np
import pytest

from rag.answer.cite import facts, parse_claims, verify_sentence
from rag.index.lexical import BM25
from rag.index.retrieve import fuse_scores

PASSAGE = ("The Bletchley Declaration, a pact signed by 28 nations, including China, the United States, "
           "the United Kingdom, and the European Union, signifies a collective recognition of the "
           "necessity for AI regulation.")
REGULATION = ("China’s groundbreaking regulation of generative artificial intelligence (AI), enacted on "
              "August 15, 2023,  stands as a trailblazing move in tackling apprehensions regarding privacy.")


def test_bm25_ranks_the_chunk_with_the_rare_term_first():
    bm25 = BM25.from_texts(["the cat sat on the mat", "dogs chase cats in the park", "Bletchley pact signed"])
    scores = bm25.scores("Who signed the Bletchley pact?")
    assert scores.argmax() == 2 and scores[0] == 0


def test_fusion_weighs_cosine_against_bm25_scaled_to_its_best():
    dense = np.array([0.9, 0.2, 0.5], dtype=np.float32)
    lexical = np.array([0.0, 10.0, 5.0], dtype=np.float32)
    assert np.allclose(fuse_scores(dense, lexical, 0.5), [0.45, 0.6, 0.5])
    assert np.allclose(fuse_scores(dense, lexical, 1.0), dense)
    assert np.allclose(fuse_scores(dense, np.zeros(3), 0.5), dense / 2)


def test_markers_are_parsed_and_attached_to_their_sentence():
    claims = parse_claims("It was signed by 28 nations [1]. It came in 2023. [2][3] Done [9, 4].")
    assert [(c.text, c.cited) for c in claims] == [
        ("It was signed by 28 nations.", (1,)), ("It came in 2023.", (2, 3)), ("Done.", (9, 4))]


def test_facts_are_numbers_months_and_names():
    assert facts("Gina Raimondo said 28 nations signed in August 2023.") >= {"gina", "raimondo", "28",
                                                                              "august", "2023"}


def test_supported_sentences_pass():
    assert verify_sentence("The Bletchley Declaration was signed by 28 nations.", [PASSAGE])
    assert verify_sentence("China's rules on generative AI were enacted on August 15, 2023.", [REGULATION])


@pytest.mark.parametrize("sentence", [
    "The Bletchley Declaration was signed by 29 nations.",            # number swapped
    "China's rules on generative AI were enacted on March 15, 2023.",  # date swapped
    "The Bletchley Declaration was signed by 28 nations including India.",  # entity added
    "The Bletchley Declaration was not signed by 28 nations.",        # negation
    "Brazil has a GDP of 2 trillion dollars.",                         # unrelated
])
def test_the_checker_rejects_swapped_facts(sentence):
    assert not verify_sentence(sentence, [PASSAGE, REGULATION])


def test_no_passage_supports_nothing():
    assert not verify_sentence("Anything at all.", [])


SUPPORT = "China’s proposal for a worldwide AI governance initiative has gained substantial international support."
OPEN = "China’s commitment is demonstrated by its willingness to share knowledge with the international community."


def test_a_faithful_paraphrase_and_a_possessive_name_pass_the_verifier():
    assert verify_sentence("China’s AI governance proposal has gained wide international support.", [SUPPORT])
    assert verify_sentence("China's proposal has gained international support.", [SUPPORT])


@pytest.mark.parametrize("sentence", [
    "China’s proposal for a worldwide AI governance initiative has failed to gain international support.",
    "China’s proposal for a worldwide AI governance initiative has not gained international support.",
    "Twenty-seven nations signed the Bletchley Declaration.",
    "China is unwilling to share knowledge with the international community.",
])
def test_a_negated_or_renumbered_paraphrase_fails_the_verifier(sentence):
    assert not verify_sentence(sentence, [SUPPORT, OPEN, PASSAGE])


def test_the_facts_must_stand_in_one_window_not_anywhere_in_the_passages():
    # 28 is in PASSAGE and August in REGULATION: no window of either passage holds both.
    assert verify_sentence("28 nations signed the Bletchley Declaration.", [PASSAGE, REGULATION])
    assert not verify_sentence("28 nations signed the Bletchley Declaration in August.", [PASSAGE, REGULATION])


def test_a_number_inside_a_word_is_found_where_it_stands():
    # `facts` reads "one" in "one-sided", "two" in "two-storey" and "0" in "CC0": the same words hold them.
    for sentence in ("The principle acts against technological monopolies and one-sided restrictions.",
                     "The committee had no objection to the two-storey rear extension at 9 Church Lane.",
                     "The License shall be deemed effective as of the date CC0 was applied by Affirmer to the Work."):
        assert verify_sentence(sentence, [sentence])
    assert not verify_sentence("The committee had no objection to the two-storey rear extension.",
                               ["The committee had no objection to the single-storey rear extension."])
