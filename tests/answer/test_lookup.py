"""Prompt lookup: drafts come from the history's earlier runs of the same tokens, their size follows what
was kept, and on the real llama.cpp a drafted reply is the plain greedy reply, made in fewer batches."""

import pytest

from rag.answer.lookup import FIRST_DRAFT, LARGEST_DRAFT, SMALLEST_DRAFT, Drafter


def test_the_draft_is_what_followed_the_last_two_tokens_earlier():
    d = Drafter([1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2])
    assert d.propose(room=10) == [3, 4, 5, 6]  # FIRST_DRAFT tokens after the earlier (1, 2)
    assert FIRST_DRAFT == 4


def test_no_draft_when_the_last_pair_never_stood_before_or_room_is_short():
    assert Drafter([1, 2, 3, 4]).propose(room=10) == []
    assert Drafter([5, 1, 2, 7, 1, 2]).propose(room=1) == [7]


def test_the_longest_backward_match_wins_then_the_latest():
    # (1, 2) stands twice before the end; only the second is preceded by 9 as the end is.
    d = Drafter([9, 1, 2, 30, 31, 0, 1, 2, 40, 41, 9, 1, 2])
    assert d.propose(room=2) == [30, 31]
    d = Drafter([1, 2, 30, 0, 1, 2, 40, 0, 1, 2])
    assert d.propose(room=1) == [40]  # equally long matches: the latest


def test_the_draft_grows_while_kept_and_shrinks_when_not():
    history = list(range(100, 140)) + [100, 101]
    d = Drafter(history)
    draft = d.propose(room=50)
    assert len(draft) == FIRST_DRAFT
    for token in draft:
        d.took()
        d.add(token)
    assert len(d.propose(room=50)) == 2 * FIRST_DRAFT
    d.took()  # one of eight kept
    d.add(999)
    d.add(100)
    d.add(101)
    assert len(d.propose(room=50)) == max(SMALLEST_DRAFT, 2)
    assert LARGEST_DRAFT >= 2 * FIRST_DRAFT
    assert (d.drafts, d.accepted) == (3, 5)


@pytest.mark.integration
def test_a_drafted_reply_is_the_greedy_reply_in_fewer_batches(monkeypatch):
    """Every token of the drafted reply is the model's own greedy pick, read again one token at a time from
    a fresh context: the same token, or (llama.cpp rounds a batch a little differently from a single
    token) one within a hair of the best. A draft kept in the wrong place of the context would fail this."""
    from rag.answer.generate import LlamaGenerator, log_softmax

    passage = ("The Bletchley Declaration, a pact signed by 28 nations, including China, the United States, "
               "the United Kingdom, and the European Union, signifies a collective recognition of the "
               "necessity for AI regulation.")
    messages = [{"role": "system", "content": "Answer from the passage, in its own words."},
                {"role": "user", "content": f"Passage: {passage}\n\nSay in one sentence what the passage says, "
                                            "naming the signatories."}]
    monkeypatch.setenv("RAG_LOOKUP", "1")
    drafted = LlamaGenerator("smollm2-135m", n_ctx=1024, n_threads=2)
    reply = "".join(drafted.stream(messages, max_tokens=60))
    drafter = drafted.last_drafter
    assert "28 nations" in reply  # the model copies much of the passage, so there is something to draft
    # Most of the copied reply came from drafts checked in a batch, not one decoded token at a time.
    assert drafter.accepted >= 10 and drafter.accepted <= drafter.drafted
    prompt_tokens = drafted.encode(messages)
    made = drafter.history[len(prompt_tokens):]
    assert drafted.llm.detokenize(made).decode() == reply

    monkeypatch.setenv("RAG_LOOKUP", "0")
    plain = LlamaGenerator("smollm2-135m", n_ctx=1024, n_threads=2)
    plain.feed(prompt_tokens)
    same = 0
    for token in made:
        logp = log_softmax(plain.last_logits())
        assert logp[token] >= logp.max() - 0.05, plain.llm.detokenize([token])
        same += token == int(logp.argmax())
        plain.llm.eval([token])
    assert same >= 0.9 * len(made)
