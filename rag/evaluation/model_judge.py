"""The eval's judge of short answers: the model reads the passage and says whether it states the answer.

The embedding judge (judge.py) asks whether a short answer's words stand in a passage that means the
question answered; it could not tell a wrong phrase taken from a true sentence from the right one
(kappa 0.15 on the 204 hand-labelled short answers of eval/short_support_labels.jsonl). The default
tier, asked directly, agrees with those labels at kappa 0.67 on the odd lines held out from choosing
`YES_AT` (docs/eval.md). A "Yes" or "No" answer is judged by asking the model the question itself
from the passage, and comparing. Sentences are still judged by the embedding judge.
"""

from __future__ import annotations

from ..answer import prompt
from ..text import content_terms
from .judge import Judge

# P(yes) from which a short answer is supported: the best kappa on the even lines of the labels.
YES_AT = 0.65
SYSTEM, TURN = "judge_answer.txt", "judge_answer_turn.txt"
YESNO_SYSTEM, YESNO_TURN = "judge_yesno.txt", "judge_yesno_turn.txt"


def yes_or_no(answer: str) -> bool | None:
    """True for a "Yes" answer, False for "No", None for any other."""
    word = answer.strip().lower().rstrip(".!")
    return {"yes": True, "no": False}.get(word)


class ModelJudge(Judge):
    """The embedding judge, with the model deciding short answers; `generator` needs `p_yes`."""

    def __init__(self, embedder, generator):
        super().__init__(embedder)
        self.gen = generator
        for system in (SYSTEM, YESNO_SYSTEM):
            if hasattr(generator, "remember"):
                generator.remember([{"role": "system", "content": prompt.read(system)}])

    def states(self, question: str, answer: str, passage: str) -> bool:
        """Whether this one passage states `answer` as the answer to `question`."""
        data = {"passage": prompt.as_data(passage), "question": prompt.as_data(question)}
        polar = yes_or_no(answer)
        if polar is not None:
            p = self.gen.p_yes([{"role": "system", "content": prompt.read(YESNO_SYSTEM)},
                                {"role": "user", "content": prompt.render(YESNO_TURN, **data)}])
            return (p >= 0.5) == polar
        p = self.gen.p_yes([{"role": "system", "content": prompt.read(SYSTEM)},
                            {"role": "user", "content": prompt.render(TURN, answer=prompt.as_data(answer), **data)}])
        return p >= YES_AT

    def supports_answer(self, question: str, answer: str, passages: list[str]) -> bool:
        """Whether one of the passages states the answer. Only passages that could are asked about, each a
        model call: those holding every content word of the answer, or for a yes/no answer the two sharing
        most words with the question; when none holds the words, all of them (a paraphrase)."""
        return any(self.states(question, answer, p) for p in self.candidates(question, answer, passages))

    @staticmethod
    def candidates(question: str, answer: str, passages: list[str]) -> list[str]:
        if yes_or_no(answer) is not None:
            asked = set(content_terms(question))
            return sorted(passages, key=lambda p: -len(asked & set(content_terms(p))))[:2]
        wanted = set(content_terms(answer))
        holding = [p for p in passages if wanted and wanted <= set(content_terms(p))]
        return holding or passages


def judge_for(embedder, generator) -> Judge:
    """The model judge when the generator can say P(yes) (a local model), else the embedding judge."""
    return ModelJudge(embedder, generator) if hasattr(generator, "p_yes") else Judge(embedder)
