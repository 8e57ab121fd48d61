"""Which of the chosen documents says something: each is asked on its own, and the answer names and cites
the ones that say it (rag/answer/which.py)."""

import pytest

from rag.answer.which import MAX_DOCUMENTS, answer_which, per_document_question
from rag.pipeline import ABSTAIN
from rag.records import Answer, Citation, Sentence


def reply(doc: str, text: str, start: int = 0) -> Answer:
    """A checked reply citing one passage of `doc` as [1], or the abstention for text None."""
    if text is None:
        return Answer(question="q", text=ABSTAIN, abstained=True, sentences=(), citations=(), raw="NONE",
                      passages=(Citation(1, doc, None, start, start + 10, "unrelated"),))
    cited = Citation(1, doc, None, start, start + 10, f"{doc} passage")
    return Answer(question="q", text=f"{text} [1]", abstained=False, sentences=(Sentence(text, (1,), True),),
                  citations=(cited,), raw=text, passages=(cited,), confidence=0.8 if doc == "a.txt" else 0.6)


def asker(replies: dict):
    asked = []

    def ask(question, documents):
        asked.append((question, tuple(documents)))
        return replies[documents[0]]

    return ask, asked


def test_each_document_is_asked_on_its_own_and_those_that_say_it_are_cited_to_their_own_passages():
    ask, asked = asker({"a.txt": reply("a.txt", "Yes"), "b.txt": reply("b.txt", "Yes", 50),
                        "c.txt": reply("c.txt", None)})
    answer = answer_which(ask, "Which of these documents says that the tariff rises?",
                          frozenset({"a.txt", "b.txt", "c.txt"}), ABSTAIN)
    assert asked == [("Does the document say that the tariff rises?", (d,)) for d in ("a.txt", "b.txt", "c.txt")]
    assert answer.text == "a.txt says so [1]. b.txt says so [2]. I can't find it in c.txt."
    assert [(c.id, c.doc, c.start) for c in answer.citations] == [(1, "a.txt", 0), (2, "b.txt", 50)]
    assert [s.citations for s in answer.sentences] == [(1,), (2,)]
    assert answer.confidence == 0.6 and not answer.abstained  # as sure as the least sure of them
    assert {p.doc for p in answer.passages} == {"a.txt", "b.txt", "c.txt"}  # every passage read
    assert len({p.id for p in answer.passages}) == len(answer.passages)


def test_a_no_is_not_saying_it_and_none_saying_it_is_the_abstention():
    ask, _ = asker({"a.txt": reply("a.txt", "No"), "b.txt": reply("b.txt", None)})
    answer = answer_which(ask, "Which document mentions Zorblax?", frozenset({"a.txt", "b.txt"}), ABSTAIN)
    assert answer.abstained and answer.text == ABSTAIN and answer.citations == ()


def test_a_question_inside_is_asked_of_each_document_and_its_answer_shown():
    ask, asked = asker({"a.txt": reply("a.txt", "32"), "b.txt": reply("b.txt", None)})
    answer = answer_which(ask, "Which of the two files says how many bytes a token needs?",
                          frozenset({"a.txt", "b.txt"}), ABSTAIN)
    assert asked[0][0] == "How many bytes a token needs?"
    assert answer.text == "a.txt says: 32 [1]. I can't find it in b.txt."


@pytest.mark.parametrize(("question", "chosen"), [
    ("Which nations signed the declaration?", {"a.txt", "b.txt"}),  # not about the documents
    ("Which document says that X?", {"a.txt"}),  # one document: answered as any other question
    ("Which document says that X?", {f"{n}.txt" for n in range(MAX_DOCUMENTS + 1)}),  # too many to ask each
])
def test_other_questions_are_left_to_the_ordinary_answer(question, chosen):
    def ask(*_, **__):
        raise AssertionError("no document is asked")

    assert answer_which(ask, question, frozenset(chosen), ABSTAIN) is None


def test_the_kinds_of_claims_make_the_right_question():
    assert per_document_question("Which one of the reports discusses flooding?") == (
        "Does the document discuss flooding?", True)
    assert per_document_question("Which of the texts states that the fee is 3 euros?")[0] == (
        "Does the document say that the fee is 3 euros?")
