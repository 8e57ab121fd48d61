"""Prompt lookup: draft a reply's next tokens from the text it is copying, and check them in one batch.

A reply that restates its passages (a summary sentence, an explanation) mostly continues a run of tokens
that stands in the prompt already. After the reply's last two tokens, the tokens that followed the same
pair earlier (in the prompt or the reply) are a draft: the model evaluates its next token and the draft
in one batch, with the logits of every position, and keeps the draft as far as each drafted token is the
one it would have picked itself at that position (greedy decoding). The reply is the plain greedy reply;
what changes is the cost: on a CPU a decoded token reads all the weights for one position, and a batch
of a few positions reads them once, so every kept draft token comes almost free.

Nothing is drafted when the history offers no continuation, and the draft grows while it is kept and
shrinks when it is not, so a reply that copies nothing costs what it did.
"""

from __future__ import annotations

import numpy as np

# Tokens of history that must match before their continuation is drafted: one token ("the", ",") is
# followed by too many things for a draft to be kept.
NGRAM = 2
# A match is scored by how far back it goes, up to this many tokens; the latest of the best wins.
LONGEST_MATCH = 8
# The draft's size: it starts here, doubles while wholly kept, and falls to what was kept plus one.
FIRST_DRAFT, SMALLEST_DRAFT, LARGEST_DRAFT = 4, 2, 12


class Drafter:
    """Proposes drafts from a token history (the prompt, then the reply as it is made)."""

    def __init__(self, history: list[int]):
        self.history: list[int] = []
        self.ends: dict[tuple[int, ...], list[int]] = {}
        self.size = FIRST_DRAFT
        self.proposed = self.kept = 0
        self.drafts = self.drafted = self.accepted = 0
        for token in history:
            self.add(token)

    def add(self, token: int) -> None:
        """The next token of the history."""
        self.history.append(token)
        if len(self.history) >= NGRAM:
            self.ends.setdefault(tuple(self.history[-NGRAM:]), []).append(len(self.history) - 1)

    def propose(self, room: int) -> list[int]:
        """The draft after the history's last tokens (at most `room` tokens), or [] when nothing matches.
        Settles the previous draft's size first: larger when it was wholly kept, else what was kept + 1."""
        if self.proposed:
            self.size = (min(self.size * 2, LARGEST_DRAFT) if self.kept == self.proposed
                         else max(SMALLEST_DRAFT, self.kept + 1))
        self.proposed = self.kept = 0
        last = len(self.history) - 1
        best, best_length = None, 0
        for end in self.ends.get(tuple(self.history[-NGRAM:]), ()):
            if end >= last:
                continue
            length = NGRAM
            while (length < LONGEST_MATCH and end - length >= 0
                   and self.history[end - length] == self.history[last - length]):
                length += 1
            if length >= best_length:
                best, best_length = end, length
        if best is None:
            return []
        draft = self.history[best + 1:best + 1 + min(self.size, room)]
        self.proposed = len(draft)
        self.drafts += bool(draft)
        self.drafted += len(draft)
        return draft

    def took(self) -> None:
        """One drafted token was the model's own pick."""
        self.kept += 1
        self.accepted += 1


def eval_rows(llm, tokens: list[int], n_vocab: int) -> np.ndarray:
    """Evaluate `tokens` after what the context holds, as one batch, and return the logits of every
    position (row i: the prediction after tokens[i]).

    `Llama.eval` asks llama.cpp for the last position's logits only (the context is made without
    `logits_all`); this does the same steps with every position's logits asked for, and reads them from
    llama.cpp's output buffer. It reaches into `Llama._ctx` and `Llama._batch`, so it is kept here and tested.
    """
    if len(tokens) > llm.n_batch:
        raise ValueError(f"{len(tokens)} tokens do not fit one batch of {llm.n_batch}")
    llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
    past = llm.n_tokens
    llm._batch.set_batch(batch=tokens, n_past=past, logits_all=True)
    llm._ctx.decode(llm._batch)
    llm.input_ids[past:past + len(tokens)] = tokens
    llm.n_tokens += len(tokens)
    rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(tokens) * n_vocab,))
    return rows.reshape(len(tokens), n_vocab).astype(np.float64)
