"""A summary's sentences checked one by one with the answer verifier: kept, rewritten as the document's
own sentence, or dropped. Nothing the verifier does not back is ever shown."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..answer.cite import facts, holds_facts, negations, parse_claims, strip_markers, support_score, verify_sentence
from ..documents.chunk import split_sentences

# A failing sentence is replaced by the document's sentence it paraphrases when that sentence holds all
# of its facts, its negation, and at least this share of its content words; else it is dropped.
REWRITE_MIN_SUPPORT = 0.35
# Evidence tried for a sentence: the passages it cites, then the best others, this many in all.
TRIED = 4


@dataclass(frozen=True)
class Checked:
    """One sentence the model wrote, and what the verifier made of it.

    `backer` is the key of the evidence that backs it (None when dropped); `text` is what is shown (the
    model's sentence, or the document's own sentence when `rewritten`).
    """

    written: str
    text: str
    backer: int | None
    rewritten: bool = False
    # Unfinished when the reply ran out of tokens: dropped without being judged.
    cut: bool = False

    @property
    def kept(self) -> bool:
        return self.backer is not None


def check_reply(reply: str, evidence: dict[int, str], threshold: float) -> list[Checked]:
    """Every sentence of a reply checked against the evidence texts (by the `[n]` keys the reply cites).

    Each line is read on its own, so a sentence cut short by the reply's token limit cannot join the next
    line's; a last sentence left unfinished (no full stop or marker at the end of the reply) is dropped.
    """
    lines = [_LINE_LABEL.sub(_label_as_marker, line) for line in reply.strip().splitlines() if line.strip()]
    claims = parse_claims("\n\n".join(lines))
    checked = [check_sentence(claim.text, claim.cited, evidence, threshold) for claim in claims]
    if checked and not re.search(r"[.!?\]\"”')]$", reply.strip()):
        last = checked[-1]
        checked[-1] = Checked(last.written, last.written, None, cut=True)
    return checked


# A line the model opened with its passage's label ("Passage 4: …", "[4] …") instead of ending it with "[4]".
_LINE_LABEL = re.compile(r"^\s*(?:passage\s+(\d+)\s*[:.)-]|\[(\d+)\])\s*(\S.*?)\s*$", re.IGNORECASE)


def _label_as_marker(m: re.Match) -> str:
    text = m[3]
    n = m[1] or m[2]
    return f"{text[:-1]} [{n}]{text[-1]}" if text[-1] in ".!?" and not text.endswith("]") else f"{text} [{n}]"


def check_sentence(sentence: str, cited: tuple[int, ...], evidence: dict[int, str], threshold: float) -> Checked:
    """The sentence backed by the first evidence that passes `verify_sentence` (cited ones first), else
    rewritten as the evidence sentence it paraphrases, else dropped (backer None)."""
    order = [i for i in cited if i in evidence] + sorted(
        (i for i in evidence if i not in cited), key=lambda i: -support_score(sentence, evidence[i]))
    order = order[:TRIED]
    for key in order:
        if verify_sentence(sentence, [evidence[key]], threshold):
            return Checked(sentence, sentence, key)
    found = paraphrased(sentence, {k: evidence[k] for k in order})
    if found:
        return Checked(sentence, found[1], found[0], rewritten=True)
    return Checked(sentence, sentence, None)


def paraphrased(sentence: str, evidence: dict[int, str]) -> tuple[int, str] | None:
    """(key, the evidence sentence) that `sentence` says in other words: same facts, same negation, and
    at least REWRITE_MIN_SUPPORT of its content words; None when there is none."""
    wanted, negated = facts(sentence), negations(sentence)
    best, best_score = None, REWRITE_MIN_SUPPORT
    for key, text in evidence.items():
        for a, b in split_sentences(text):
            window = text[a:b]
            if not window.strip() or not holds_facts(wanted, window) or negations(window) != negated:
                continue
            score = support_score(sentence, window)
            if score >= best_score:
                best, best_score = (key, " ".join(strip_markers(window).split())), score
    return best
