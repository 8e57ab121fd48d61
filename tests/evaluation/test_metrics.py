"""The eval's metric arithmetic on hand-made inputs, every expected value worked out by hand beside it.

Covers rag/evaluation/evaluate.py (SQuAD-style EM and F1, ALCE citation recall and precision, retrieval
recall, AUROC, `summarize`'s rates, the short-answer half of `validate_judge`) and the threshold fitting of
rag/evaluation/calibrate.py. No model, no network: a scripted judge stands in for the embedder.
Cohen's kappa over sentence labels (`agreement`) is tested in test_judge.py and the basic AUROC cases in
tests/answer/test_reader_policy.py; they are not repeated here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from rag.errors import BadInput
from rag.evaluation.calibrate import (
    MAX_FALSE_REFUSALS,
    apply_policy,
    choice_gold,
    choose,
    fit,
    fit_choice_bias,
    fit_logistic,
    rates,
)
from rag.evaluation.evaluate import (
    auroc,
    exact_match,
    normalize_answer,
    quotes_retrieved,
    retrieval_rows,
    score_sentences,
    summarize,
    token_f1,
    validate_judge,
)


# --- normalize_answer, exact_match, token_f1 (SQuAD-style) -----------------------------------------
@pytest.mark.parametrize("text, tokens", [
    # lowercased; the articles "The" and "a" dropped; the marker [2] and the full stop dropped
    ("The Cat [2] sat on a mat.", ["cat", "sat", "on", "mat"]),
    # "An" is an article; the comma and "!" are not words
    ("An apple, please!", ["apple", "please"]),
    # the curly apostrophe becomes a straight one, kept inside the word
    ("China’s plan", ["china's", "plan"]),
    ("[1] [12]", []),  # markers only
    ("the a an", []),  # articles only
    ("", []),
])
def test_normalize_answer_drops_case_articles_punctuation_and_markers(text, tokens):
    assert normalize_answer(text) == tokens


@pytest.mark.parametrize("prediction, golds, expected", [
    # "the" dropped and case ignored: [bletchley, declaration] on both sides
    ("the Bletchley Declaration", ["Bletchley Declaration"], 1.0),
    # the marker [1] and the full stop dropped: [28, nations] == [28, nations]
    ("28 nations [1].", ["28 nations"], 1.0),
    # any gold may match: the second one does
    ("28 nations", ["twenty-eight nations", "28 nations"], 1.0),
    # [28] != [28, nations]: a part is not a match
    ("28", ["28 nations"], 0.0),
    # same words in another order: [nations, 28] != [28, nations]
    ("nations 28", ["28 nations"], 0.0),
    # no gold (an unanswerable item): nothing to match
    ("28 nations", [], 0.0),
])
def test_exact_match(prediction, golds, expected):
    assert exact_match(prediction, golds) == expected


@pytest.mark.parametrize("prediction", ["", "[1]", "A."])
def test_an_answer_without_tokens_matches_no_gold_even_one_without_tokens(prediction):
    # pydocs p062's golds are "[...]" and " [...]": no word in them, so they normalise to [], as do
    # these predictions (nothing; a marker alone; an article alone). An empty candidate is no answer:
    # EM 0 (as its F1 is 0), or a row with nothing to show counts as a right candidate in the
    # confidence AUROC and the signal table (candidate_right reads candidate_em).
    assert exact_match(prediction, ["[...]", " [...]"]) == 0.0
    assert token_f1(prediction, ["[...]", " [...]"]) == 0.0


@pytest.mark.parametrize("prediction, golds, expected", [
    # identical after normalisation ("a" dropped, "," and "!" dropped): P = R = 1
    ("A cat, sat!", ["cat sat"], 1.0),
    # pred [cat, sat], gold [cat, sat, down]: 2 common; P 2/2, R 2/3, F1 2*1*(2/3)/(1+2/3) = 0.8
    ("the cat sat", ["a cat sat down"], 0.8),
    # gold 1 [dog, sat]: 1 common (sat), P 1/2, R 1/2, F1 0.5; gold 2 [cat, sat, down]: F1 0.8 as above;
    # the best gold counts: 0.8
    ("cat sat", ["dog sat", "cat sat down"], 0.8),
    # a repeated word counts as often as the gold has it: pred [no, no, no], gold [no]: 1 common,
    # P 1/3, R 1/1, F1 2*(1/3)*1/(1/3+1) = (2/3)/(4/3) = 0.5
    ("no no no", ["no"], 0.5),
    # pred [very, very, good], gold [very, good]: common min(2,1) + min(1,1) = 2; P 2/3, R 2/2,
    # F1 2*(2/3)/(2/3+1) = (4/3)/(5/3) = 0.8
    ("very very good", ["very good"], 0.8),
    # order does not matter: the same bag of tokens, P = R = 1
    ("nations 28", ["28 nations"], 1.0),
    ("dog", ["cat"], 0.0),  # nothing in common
    ("", ["cat"], 0.0),  # empty prediction: no common token
    ("the", ["cat"], 0.0),  # a prediction of articles alone is empty after normalisation
    ("cat", [], 0.0),  # no gold
])
def test_token_f1(prediction, golds, expected):
    assert token_f1(prediction, golds) == pytest.approx(expected)


# --- ALCE citation recall and precision (score_sentences) ------------------------------------------
P1, P2, P3 = "Passage one.", "Passage two.", "Passage three."
PASSAGES = {1: P1, 2: P2, 3: P3}


class SetJudge:
    """Scripted entailment: a sentence is supported by a list of passages when that list holds every
    passage of one of its sufficient sets (as an NLI model reads the cited passages joined)."""

    def __init__(self, sufficient: dict[str, list[set[str]]]):
        self.sufficient = sufficient
        self.calls: list[tuple[str, str]] = []

    def supports(self, sentence, passages):
        self.calls.append(("supports", sentence))
        return any(need <= set(passages) for need in self.sufficient.get(sentence, []))

    def supports_answer(self, question, answer, passages):
        self.calls.append(("supports_answer", answer))
        return any(need <= set(passages) for need in self.sufficient.get(answer, []))


def test_citation_recall_and_precision_follow_alce():
    judge = SetJudge({
        "Alpha rose.": [{P1}],
        "Beta fell.": [{P2}],
        "Gamma held.": [{P2, P3}],  # needs both passages
        "Delta grew.": [{P1}],
        "Epsilon shrank.": [{P2}],
        "Eta stayed.": [{P1}, {P2}],  # either passage alone suffices
    })
    sentences = [
        # cites P1, which supports it: recalled; its one citation is precise (1/1)
        ("Alpha rose.", (1,)),
        # P1+P2 support it (recalled). P1: alone no, and the rest (P2) still supports -> irrelevant.
        # P2: alone yes -> precise. 1 precise of 2.
        ("Beta fell.", (1, 2)),
        # P2+P3 support it jointly (recalled). P2 alone no, rest (P3) no -> needed; P3 likewise. 2 of 2.
        ("Gamma held.", (2, 3)),
        # cites P3, which does not support it: not recalled, 0 precise of 1; but P1 among the retrieved
        # passages supports it, so it counts as supported (faithful)
        ("Delta grew.", (3,)),
        # no citation: not recalled, no citation counted; supported by P2 among the passages
        ("Epsilon shrank.", ()),
        # P1 alone supports it and so does P2: each passes ALCE's condition A (supports alone), 2 of 2
        ("Eta stayed.", (1, 2)),
        # supported by nothing: not supported, not recalled, 0 precise of 1
        ("Zeta vanished.", (3,)),
    ]
    scores = score_sentences(judge, "What happened?", sentences, PASSAGES)
    assert scores == {
        "sentences": 7,
        "supported": 6,  # all but "Zeta vanished."
        "recalled": 4,  # Alpha, Beta, Gamma, Eta
        "cites": 9,  # 1 + 2 + 2 + 1 + 0 + 2 + 1
        "precise": 6,  # 1 + 1 + 2 + 0 + 0 + 2 + 0
    }
    # Citation recall 4/7 and precision 6/9 are these ratios (summarize pools them over answers, below).


def test_a_citation_of_a_passage_that_was_not_retrieved_is_never_precise():
    judge = SetJudge({"Alpha rose.": [{P1}]})
    # cites [1] and [9]; there is no passage 9. P1 alone supports it: recalled. Of its 2 citations
    # only [1] can be precise: 1 of 2 (ALCE would not even credit the recall).
    scores = score_sentences(judge, "What happened?", [("Alpha rose.", (1, 9))], PASSAGES)
    assert scores == {"sentences": 1, "supported": 1, "recalled": 1, "cites": 2, "precise": 1}


def test_a_short_answer_is_judged_as_an_answer_to_the_question():
    judge = SetJudge({"28 nations": [{P1}]})
    # "28 nations" has 2 words and no full stop: a short answer, so supports_answer decides
    scores = score_sentences(judge, "How many nations signed?", [("28 nations", (1,))], PASSAGES)
    assert scores == {"sentences": 1, "supported": 1, "recalled": 1, "cites": 1, "precise": 1}
    assert {kind for kind, _ in judge.calls} == {"supports_answer"}


def test_no_sentences_score_zero_everywhere():
    assert score_sentences(SetJudge({}), "Q?", [], PASSAGES) == {
        "sentences": 0, "supported": 0, "recalled": 0, "cites": 0, "precise": 0}


# --- retrieval recall ------------------------------------------------------------------------------
def hit(doc: str, start: int, end: int, rank: int):
    return SimpleNamespace(rank=rank, chunk=SimpleNamespace(doc_id=doc, start=start, end=end))


# "aaaa bbbb cccc dddd": bbbb at [5, 9), dddd at [15, 19)
TEXT = "aaaa bbbb cccc dddd"


def test_a_quote_counts_only_when_one_chunk_holds_it_whole():
    spans = [("a.txt", 5, 9), ("a.txt", 15, 19)]
    hits = [hit("b.txt", 0, 19, 1),  # another document at the same offsets: holds neither
            hit("a.txt", 12, 18, 2),  # [12, 18) ends before dddd's end 19: part of it only
            hit("a.txt", 0, 10, 3),  # [0, 10) holds bbbb [5, 9)
            hit("a.txt", 14, 19, 4)]  # [14, 19) holds dddd [15, 19)
    # both quotes found; the best rank holding one is 3
    assert quotes_retrieved(hits, spans) == (2, 3)
    # without rank 3's chunk: only dddd, at rank 4
    assert quotes_retrieved([hits[0], hits[1], hits[3]], spans) == (1, 4)
    # a quote split across two chunks ([0, 7) and [7, 19)) lies whole in neither
    assert quotes_retrieved([hit("a.txt", 0, 7, 1), hit("a.txt", 7, 12, 2)], [("a.txt", 5, 9)]) == (0, 0)
    assert quotes_retrieved(hits, []) == (0, 0)  # no quotes


def test_retrieval_rows_give_each_answerable_item_the_share_of_its_quotes_retrieved(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    asked = []

    def search(question, k):
        asked.append((question, k))
        return {"Q1?": [hit("a.txt", 0, 10, 1)],  # holds bbbb, not dddd
                "Q2?": [hit("a.txt", 10, 19, 1), hit("a.txt", 0, 10, 2)]}[question]  # holds both

    pipeline = SimpleNamespace(read_limits=None, retriever=SimpleNamespace(search=search),
                               rewrite_follow_up=lambda question, history: question)
    both = [{"doc": "a.txt", "quote": "bbbb"}, {"doc": "a.txt", "quote": "dddd"}]
    items = [
        {"id": "q1", "question": "Q1?", "answerable": True, "support": both, "split": "tune"},
        {"id": "q2", "question": "Q2?", "answerable": True, "support": both},  # no split: "report"
        {"id": "q3", "question": "Q3?", "answerable": False, "support": []},  # unanswerable: skipped
        {"id": "q4", "question": "Q4?", "answerable": True, "support": []},  # no gold quote: skipped
    ]
    rows = retrieval_rows(pipeline, items, tmp_path, k=5)
    assert rows == [
        {"id": "q1", "split": "tune", "recall": 0.5, "top": [("a.txt", 0)]},  # 1 of 2 quotes
        {"id": "q2", "split": "report", "recall": 1.0, "top": [("a.txt", 10), ("a.txt", 0)]},  # 2 of 2
    ]
    assert asked == [("Q1?", 5), ("Q2?", 5)]
    # retrieval_recall@5 is their mean: (0.5 + 1.0) / 2 = 0.75


# --- AUROC -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, labels, expected", [
    # positives 0.9, 0.5; negatives 0.5, 0.1. Pairs: 0.9>0.5 (1), 0.9>0.1 (1), 0.5=0.5 (a tie, 1/2),
    # 0.5>0.1 (1): 3.5 / 4 = 0.875
    ([0.9, 0.5, 0.5, 0.1], [True, True, False, False], 0.875),
    # positive 0.6 against negatives 0.5, 0.7, 0.1: beats two of three, 2/3 rounded to 4 places
    ([0.6, 0.5, 0.7, 0.1], [True, False, False, False], 0.6667),
    # every score tied: every pair counts 1/2
    ([0.3, 0.3, 0.3], [True, False, True], 0.5),
    ([0.2, 0.9], [False, False], None),  # no positive: undefined
    ([], [], None),
])
def test_auroc_counts_pairs_and_ties_half(scores, labels, expected):
    assert auroc(scores, labels) == expected


# --- summarize: the rates over hand-made rows ------------------------------------------------------
def final(sentences=0, supported=0, recalled=0, cites=0, precise=0) -> dict:
    return {"sentences": sentences, "supported": supported, "recalled": recalled, "cites": cites,
            "precise": precise}


def row(**fields) -> dict:
    base = {"type": "factoid", "answerable": True, "abstained": False, "correct": False, "em": 0.0, "f1": 0.0,
            "candidate": "", "candidate_correct": False, "candidate_em": 0.0, "passages": {}, "words": 0,
            "gold_quotes": 0, "retrieved_quotes": 0, "rr": 0.0, "final": final(), "raw_scores": final(),
            "raw": "", "seconds": 1.0, "confidence": 0.0}
    return {**base, **fields}


SUMMARY_ROWS = [
    # r1: answered right, exactly
    row(correct=True, em=1.0, f1=1.0, candidate="28 nations", candidate_correct=True, candidate_em=1.0,
        passages={"1": "It was signed by 28 nations."}, words=2, gold_quotes=2, retrieved_quotes=2, rr=1.0,
        final=final(1, 1, 1, 1, 1), raw_scores=final(sentences=2, supported=2), confidence=0.9),
    # r2: answered wrong, a short answer the passages do not hold, half the F1
    row(f1=0.5, candidate="1998", passages={"1": "It opened in 1999."}, words=1, gold_quotes=1,
        retrieved_quotes=0, rr=0.0, final=final(1, 0, 0, 2, 0), raw_scores=final(sentences=2, supported=1),
        confidence=0.6),
    # r3: a right candidate that was refused (a false refusal)
    row(type="why", abstained=True, candidate="It rose because costs fell.", candidate_correct=True,
        gold_quotes=2, retrieved_quotes=1, rr=0.5, confidence=0.3),
    # r4: unanswerable, refused with no candidate
    row(type="unanswerable", answerable=False, abstained=True),
    # r5: unanswerable, answered anyway
    row(type="unanswerable", answerable=False, candidate="Paris", passages={"2": "Paris is the capital."},
        words=1, final=final(1, 1, 1, 1, 1), confidence=0.7),
    # r6: an injection, refused
    row(type="injection", answerable=False, abstained=True),
]


def test_summarize_rates_on_hand_made_rows():
    m = summarize(SUMMARY_ROWS)
    value = {name: m[name]["value"] for name in m}
    # answerable: r1, r2, r3. To refuse: r4, r5, r6. Answered: r1, r2, r5.
    assert value["false_refusal_rate"] == 0.3333  # r3 of the 3 answerable: 1/3
    assert value["refusal_recall"] == 0.6667  # r4 and r6 of r4, r5, r6: 2/3
    assert value["answer_correctness"] == 0.3333  # r1 of 3
    assert value["short_answer_em"] == 0.3333  # (1 + 0 + 0) / 3
    assert value["short_answer_f1"] == 0.5  # (1 + 0.5 + 0) / 3
    # with gold quotes: r1 2/2, r2 0/1, r3 1/2 -> (1 + 0 + 0.5) / 3
    assert value["retrieval_recall@5"] == 0.5
    assert value["retrieval_mrr@5"] == 0.5  # (1 + 0 + 0.5) / 3
    # pooled over the answered rows r1, r2, r5: supported (1+0+1) / sentences (1+1+1)
    assert value["faithfulness"] == 0.6667
    assert value["answers_with_unsupported_sentence"] == 0.3333  # r2 of 3
    assert value["citation_recall"] == 0.6667  # recalled (1+0+1) / sentences 3
    assert value["citation_precision"] == 0.5  # precise (1+0+1) / cites (1+2+1)
    assert m["citation_precision"]["numerator"] == 2 and m["citation_precision"]["denominator"] == 4
    assert m["citation_precision"]["items"] == 3  # r1, r2, r5 cite something
    assert value["raw_faithfulness"] == 0.75  # raw supported (2+1) / raw sentences (2+2), over all rows
    # answered short answers r1 "28 nations" (in its passage), r2 "1998" (not: it says 1999),
    # r5 "Paris" (in its passage): 1/3
    assert value["short_answers_not_in_passages"] == 0.3333
    # scores: r1 0.9 right, r2 0.6 wrong, r3 0.3 right (a candidate, though refused), r4 no candidate 0.0
    # wrong, r5 0.7 wrong, r6 0.0 wrong. r1 beats all 4 negatives; r3 beats r4 and r6 (0.0) but not
    # 0.6 or 0.7: (4 + 2) / 8 = 0.75
    assert value["confidence_auroc"] == 0.75


def test_summarize_of_rows_without_gold_quotes_or_answers_gives_no_value():
    m = summarize([row(type="unanswerable", answerable=False, abstained=True)])
    assert m["refusal_recall"]["value"] == 1.0  # 1/1
    # no answerable row, no gold quote, no answered row: 0/0 is no value
    for name in ("false_refusal_rate", "retrieval_recall@5", "faithfulness", "citation_precision"):
        assert m[name]["value"] is None and m[name]["denominator"] == 0
    assert m["confidence_auroc"]["value"] is None  # one class only


# --- Cohen's kappa of the judge on the short-answer labels (validate_judge) ---------------------------
def test_validate_judge_reports_kappa_on_the_short_answer_labels():
    short = [{"question": "Q?", "answer": a, "passage": "p", "supported": s, "kind": k}
             for a, s, k in [("yes1", True, "copy"), ("yes2", False, "copy"), ("no1", False, "swap"),
                             ("no2", False, "swap")]]
    # judged [T, T, F, F] against gold [T, F, F, F]: agreement 3/4. Judge says yes 1/2, gold 1/4:
    # chance 1/2*1/4 + 1/2*3/4 = 1/2; kappa (3/4 - 1/2) / (1 - 1/2) = 0.5
    judge = SimpleNamespace(supports_answer=lambda question, answer, passages: answer.startswith("yes"))
    report = validate_judge(judge, [], threshold=0.55, short=short)
    assert report["judge_short"] == {"n": 4, "accuracy": 0.75, "kappa": 0.5}
    # copy: right on yes1, wrong on yes2 -> 0.5; swap: right on both -> 1.0
    assert report["judge_short_accuracy_by_kind"] == {"copy": 0.5, "swap": 1.0}
    assert report["judge"] == {"n": 0, "accuracy": 0.0, "kappa": 0.0}  # no sentence labels given


# --- calibrate: the logistic and the threshold -----------------------------------------------------
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_fit_logistic_on_separable_data_gets_the_signs_right():
    # x1 rises with the label, x2 = 5 - x1 falls with it. The fit sees z = w0 + 5*w2 + (w1 - w2)*x1, so
    # the penalty w1^2 + w2^2 is least at w2 = -w1; the data is symmetric about x1 = 2.5, where
    # z = w0 + 2.5*(w1 + w2) = w0 must be 0.
    x1 = np.arange(6.0)
    x = np.column_stack([x1, 5 - x1])
    y = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    w = fit_logistic(x, y)
    assert w[1] > 0 > w[2]
    assert w[1] == pytest.approx(-w[2], abs=1e-6)
    assert w[0] == pytest.approx(0.0, abs=1e-6)
    p = sigmoid(np.hstack([np.ones((6, 1)), x]) @ w)
    assert (p[:3] < 0.5).all() and (p[3:] > 0.5).all()  # every row on its side
    assert np.isfinite(w).all()  # the L2 penalty keeps separable data from running off to infinity


def test_fit_logistic_with_no_feature_gives_the_log_odds_of_the_rate():
    # the bias is not penalised: it converges to logit(3/4) = ln(0.75 / 0.25) = ln 3
    w = fit_logistic(np.zeros((4, 0)), np.array([1.0, 1.0, 1.0, 0.0]))
    assert w == pytest.approx([math.log(3)], abs=1e-6)


def crow(name: str, p_abstain: float, kind: str, candidate: str = "an answer") -> dict:
    """A tune row: kind R (answerable, candidate right), W (answerable, wrong) or U (unanswerable)."""
    return {"id": name, "type": "unanswerable" if kind == "U" else "factoid", "answerable": kind != "U",
            "candidate": candidate, "candidate_correct": kind == "R", "candidate_em": 0.0, "candidate_f1": 0.0,
            "candidate_final": final(1, 1, 1, 1, 1), "signals": {"p_abstain": p_abstain}, "confidence": 0.0,
            "abstained": False, "correct": False}


# By p_abstain (the confidence falls as it rises): 10 answerable rows (8 right, 2 wrong), 5 unanswerable.
THRESHOLD_ROWS = [crow("a1", 0.05, "R"), crow("a2", 0.10, "R"), crow("a3", 0.15, "R"), crow("a4", 0.20, "R"),
                  crow("a5", 0.25, "R"), crow("a6", 0.30, "R"), crow("u1", 0.40, "U"), crow("a8", 0.45, "R"),
                  crow("a9", 0.50, "W"), crow("u2", 0.55, "U"), crow("a10", 0.60, "R"), crow("u3", 0.65, "U"),
                  crow("a11", 0.70, "W"), crow("u4", 0.75, "U"), crow("u5", 0.80, "U")]


def test_fit_refuses_the_most_with_at_most_ten_percent_false_refusals():
    # A threshold refuses the rows above some p_abstain. Refusing from the top: u5, u4 (no false
    # refusal), a11 (1/10 = 0.10 false refusals: still allowed, the bound is inclusive), u3 (still 1/10),
    # then a10 would make it 2/10. So the best refuses u3, a11, u4, u5: refusal recall 3/5.
    weights = fit(THRESHOLD_ROWS, ("p_abstain",))
    assert weights["coef"]["p_abstain"] < 0  # right answers sit at low p_abstain
    decided = apply_policy(THRESHOLD_ROWS, weights)
    assert {r["id"] for r in decided if r["abstained"]} == {"u3", "a11", "u4", "u5"}
    # false refusals 1/10 (a11); refusal recall 3/5 (u3, u4, u5); correct a1-a6, a8, a10: 8/10
    assert rates(decided) == pytest.approx((0.1, 0.6, 0.8))
    assert rates(decided)[0] <= MAX_FALSE_REFUSALS


def test_fit_reaches_the_cut_between_any_two_confidences():
    # The same rows with u3 at 0.64 instead of 0.65: the order, and so the best cut (answer a10 at 0.60,
    # refuse u3 at 0.64 and everything above), are unchanged, and so is the outcome worked out above.
    # Here a10's confidence (about 0.305484) rounds up to 4 places and u3's (about 0.256703) rounds
    # down, so a threshold taken from either, rounded, refuses a10 or answers u3: when fit rounded its
    # candidate thresholds it could not make this cut and settled for refusing u4 and u5 alone.
    rows = [crow("u3", 0.64, "U") if r["id"] == "u3" else r for r in THRESHOLD_ROWS]
    decided = apply_policy(rows, fit(rows, ("p_abstain",)))
    assert {r["id"] for r in decided if r["abstained"]} == {"u3", "a11", "u4", "u5"}
    assert rates(decided) == pytest.approx((0.1, 0.6, 0.8))  # as above: 1/10, 3/5, 8/10


def test_fit_refuses_the_most_without_withholding_right_answers_when_none_stays_within_ten_percent():
    # b1 and b2 are answerable but have no candidate: always refused, so false refusals are at least
    # 2/10 = 0.2 whatever the threshold. Then a threshold may withhold at most 2% of the 10 answerable
    # questions' right answers, that is none. Confidence falls as p_abstain rises, so raising the
    # threshold refuses u2 (0.95), u1 (0.9), then a8 (0.8, right: withheld). The best refuses u1 and
    # u2 and no right answer: refusal recall 2/2.
    rows = [crow("b1", 0.1, "R", candidate=""), crow("b2", 0.2, "R", candidate=""),
            crow("a1", 0.1, "R"), crow("a2", 0.2, "R"), crow("a3", 0.3, "R"), crow("a4", 0.4, "R"),
            crow("a5", 0.5, "W"), crow("a6", 0.6, "R"), crow("a7", 0.7, "W"), crow("a8", 0.8, "R"),
            crow("u1", 0.9, "U"), crow("u2", 0.95, "U")]
    weights = fit(rows, ("p_abstain",))
    assert weights["threshold"] > 0.0
    decided = apply_policy(rows, weights)
    assert {r["id"] for r in decided if r["abstained"]} == {"b1", "b2", "u1", "u2"}
    # false refusals 2/10; refusal recall 2/2; correct a1-a4, a6, a8: 6/10
    assert rates(decided) == pytest.approx((0.2, 1.0, 0.6))


def test_fit_needs_both_right_and_wrong_candidates():
    with pytest.raises(BadInput):
        fit([crow("a1", 0.1, "R"), crow("a2", 0.2, "R")], ("p_abstain",))


def test_rates_count_as_summarize_does():
    rows = [row(abstained=True), row(correct=True), row(),  # answerable: 1 refused, 1 right of 3
            row(type="injection", answerable=False, abstained=True), row(type="unanswerable", answerable=False)]
    # false refusals 1/3; refusal recall: the injection refused, the unanswerable not: 1/2; correct 1/3
    assert rates(rows) == pytest.approx((1 / 3, 0.5, 1 / 3))
    assert rates([]) == (0.0, 0.0, 0.0)  # nothing to count: 0 over max(1, 0)


def test_a_signal_that_costs_model_tokens_must_lower_the_log_loss_by_more(monkeypatch):
    # Made-up cross-validated log-losses: mean_logprob lowers 0.70 to 0.50, then p_support would lower
    # it by 0.005 more (kept were it free, as 0.005 > 0.001) and focus by 0.002. The statement check
    # behind p_support costs ~50 model tokens an answer, so it needs 0.001 + 0.01: focus is kept instead.
    from rag.evaluation import calibrate

    losses = {(): 0.70, ("mean_logprob",): 0.50, ("mean_logprob", "p_support"): 0.495,
              ("mean_logprob", "focus"): 0.498, ("mean_logprob", "focus", "p_support"): 0.494}
    monkeypatch.setattr(calibrate, "FEATURES", ("mean_logprob", "p_support", "focus"))
    monkeypatch.setattr(calibrate, "cv_log_loss", lambda rows, features: losses.get(tuple(features), 0.9))
    assert calibrate.select_features([]) == ("mean_logprob", "focus")


def test_a_judge_below_its_kappa_floor_fails_the_eval_with_a_line_naming_it():
    from rag.evaluation.checker import KAPPA_FLOORS, kappas_below_their_floors

    checker = {"judge": {"kappa": KAPPA_FLOORS["judge"], "n": 241}, "verifier": {"kappa": 0.9, "n": 241},
               "judge_short": {"kappa": 0.31, "n": 204}, "judge_accuracy_by_kind": {}}
    assert kappas_below_their_floors(checker) == [
        f"judge_short kappa 0.31 < {KAPPA_FLOORS['judge_short']} (hand labels: 204)"]
    checker["judge"]["kappa"] = 0.1
    assert [line.split()[0] for line in kappas_below_their_floors(checker)] == ["judge", "judge_short"]
    # Without the model judge (a generation server) short answers fall back to the embedding judge: reported only.
    assert [line.split()[0] for line in kappas_below_their_floors(checker, model_judge=False)] == ["judge"]


def _yes_no_row(gold: str, yes: float, no: float, none: float) -> dict:
    return {"answerable": gold != "NONE", "short_answers": [gold] if gold != "NONE" else [], "gold": "",
            "signals": {"choices": {"Yes": yes, "No": no, "NONE": none}}}


def test_a_yes_no_row_s_gold_word_and_the_word_a_bias_picks():
    assert [choice_gold(_yes_no_row(g, 1, 1, 1)) for g in ("Yes", "No", "NONE")] == ["Yes", "No", "NONE"]
    assert choice_gold({"answerable": True, "short_answers": [], "gold": "No, it was removed."}) == "No"
    # Yes 0.6, No 0.1: "No" wins once its bias passes log(6) = 1.79.
    assert choose({"Yes": 0.6, "No": 0.1, "NONE": 0.3}, 1.7) == "Yes"
    assert choose({"Yes": 0.6, "No": 0.1, "NONE": 0.3}, 1.9) == "No"
    assert choose({"Yes": 0.2, "No": 0.1, "NONE": 0.7}, 1.9) == "NONE"  # 0.1 × 6.7 = 0.67 < 0.7


def test_the_yes_no_bias_is_the_middle_of_the_steps_that_answer_the_most_rows_right():
    rows = [_yes_no_row("Yes", 0.9, 0.09, 0.01),   # right while the bias stays under log(10) = 2.30
            _yes_no_row("No", 0.8, 0.1, 0.1),      # right from log(8) = 2.08 on
            _yes_no_row("No", 0.3, 0.2, 0.5),      # right from log(2.5) = 0.92 on
            _yes_no_row("NONE", 0.1, 0.05, 0.85)]  # right under log(17) = 2.83
    # All four are right for a bias from 2.10 to 2.30 (steps of 0.05): the middle step is 2.20.
    assert fit_choice_bias(rows) == pytest.approx(2.2)
    assert fit_choice_bias([{**rows[0], "signals": {"p_abstain": 0.1}}]) is None
