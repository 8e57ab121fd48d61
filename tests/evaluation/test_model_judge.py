"""The model judge of short answers (rag/evaluation/model_judge.py), with a scripted P(yes): what it asks
the model and how it decides. Its agreement with the hand labels, on the real model, is in the gate."""

from rag.evaluation.judge import Judge
from rag.evaluation.model_judge import YES_AT, ModelJudge, judge_for, yes_or_no

PASSAGE = "The Bletchley Declaration, a pact signed by 28 nations, recognizes the need for AI regulation."


class ScriptedModel:
    """P(yes) by what the prompt holds; records every chat it is asked."""

    def __init__(self, p_by_text: dict[str, float]):
        self.p_by_text, self.asked = p_by_text, []

    def p_yes(self, messages):
        self.asked.append(messages)
        turn = messages[-1]["content"]
        return next((p for text, p in self.p_by_text.items() if text in turn), 0.0)


def test_a_short_answer_is_supported_when_the_model_says_the_passage_states_it():
    model = ScriptedModel({"Proposed answer: 28": YES_AT + 0.01, "Proposed answer: 41": YES_AT - 0.01})
    judge = ModelJudge(None, model)
    assert judge.supports_answer("How many nations signed?", "28", [PASSAGE])
    assert not judge.supports_answer("How many nations signed?", "41", [PASSAGE])
    turn = model.asked[0][-1]["content"]
    assert PASSAGE in turn and "How many nations signed?" in turn and "Proposed answer: 28" in turn


def test_any_one_passage_that_states_it_is_enough_and_only_those_holding_its_words_are_asked():
    other = "In the other passage 28 nations signed it."
    model = ScriptedModel({"other passage": 0.9})
    judge = ModelJudge(None, model)
    assert judge.supports_answer("Q?", "28", [PASSAGE, other, "A passage without the number."])
    assert len(model.asked) == 2  # the passage without "28" could not state it: not asked about
    assert not judge.supports_answer("Q?", "28", [PASSAGE])
    # A paraphrase no passage holds word for word: every passage is asked.
    model.asked.clear()
    assert not judge.supports_answer("Q?", "twenty-eight", [PASSAGE, "A passage without the number."])
    assert len(model.asked) == 2


def test_a_yes_or_no_answer_is_judged_by_asking_the_model_the_question_itself():
    model = ScriptedModel({"Is regulation needed?": 0.8, "Was it signed by 41 nations?": 0.1})
    judge = ModelJudge(None, model)
    assert judge.supports_answer("Is regulation needed?", "Yes", [PASSAGE])
    assert not judge.supports_answer("Is regulation needed?", "No.", [PASSAGE])
    assert judge.supports_answer("Was it signed by 41 nations?", "No", [PASSAGE])
    assert not judge.supports_answer("Was it signed by 41 nations?", "Yes", [PASSAGE])
    assert all("Proposed answer" not in chat[-1]["content"] for chat in model.asked)
    assert (yes_or_no(" Yes. "), yes_or_no("no"), yes_or_no("Not really")) == (True, False, None)


def test_a_generator_without_p_yes_gets_the_embedding_judge():
    class Remote:
        def stream(self, messages, max_tokens=128):
            yield "x"

    assert type(judge_for(None, Remote())) is Judge
    assert isinstance(judge_for(None, ScriptedModel({})), ModelJudge)
