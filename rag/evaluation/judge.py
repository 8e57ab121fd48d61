"""The eval's support judge, independent of the pipeline's verifier.

The verifier (cite.py) asks whether the cited passages, taken together as a bag of words, contain a
sentence's facts and most of its words. The judge asks something stricter and different: is there
one window of at most two consecutive passage sentences that the sentence means (embedding
similarity), that holds every number, name and negation of the sentence, and that leaves few of
its content words unaccounted for? It is validated against hand labels in eval/support_labels.jsonl.
"""

from __future__ import annotations

import re

import numpy as np

from ..documents.chunk import split_sentences
from ..text import STOPWORDS, content_terms, stem, words

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = {"not", "no", "never", "none", "neither", "nor", "without", "cannot", "unlike", "fails",
             "failed", "lack", "lacks", "rejected", "opposed"}
# Tuned on the even-numbered lines of eval/support_labels.jsonl; the report gives the odd lines
# (held out) separately.
MIN_SIMILARITY = 0.55
MAX_NOVEL = 0.34
HIGH_SIMILARITY = 0.8
MAX_NOVEL_AT_HIGH_SIMILARITY = 0.6
# Words that turn a statement around; the sentence may use one only if the window does too.
_POLARITY = {"little", "few", "fewer", "less", "lack", "lacks", "threat", "hindrance", "closed",
             "unwilling", "unnecessary", "unimportant", "oppose", "opposes", "against", "reject",
             "rejects", "fail", "fails", "failed", "restrict", "restricts", "weak", "decline",
             "declined", "refuse", "refused", "refuses", "ignore", "ignores", "ignored", "only",
             "solely", "minor", "small"}


class Judge:
    """Decides whether passages support a sentence. Uses the embedder, not the verifier's rules."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vec in zip(missing, self.embedder.embed(missing)):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts])

    def supports(self, sentence: str, passages: list[str]) -> bool:
        """True when one window of the passages entails the sentence, by the rules above."""
        windows = self.windows(passages)
        if not windows or not content_terms(sentence):
            return False
        vectors = self._vectors([sentence] + windows)
        similarity = vectors[1:] @ vectors[0]
        for i in np.argsort(-similarity)[:3]:
            if similarity[i] < MIN_SIMILARITY:
                break
            novel = MAX_NOVEL_AT_HIGH_SIMILARITY if similarity[i] >= HIGH_SIMILARITY else MAX_NOVEL
            if self.aligned(sentence, windows[i], novel):
                return True
        return False

    def supports_answer(self, question: str, answer: str, passages: list[str]) -> bool:
        """True when one window holds every word, number, name and negation of a short answer and means
        the question answered by it (embedding similarity of "question answer" to the window).

        A short answer ("3.10") asserts only itself; the question's own words may be paraphrased or
        stand elsewhere in the passage (a heading), so only the answer must align word for word.
        """
        turning = set(words(question.lower())) & (_POLARITY | _NEGATION)
        holding = [p for p in passages if any(self.aligned(answer, w, 0.0) for w in self.windows([p]))
                   and turning <= set(words(p.lower()))]
        if not holding or not content_terms(answer):
            return False
        # The passage that holds the answer must mean the question answered by it: a window's
        # heading or subject often stands a sentence or two away, so the whole passage is compared.
        vectors = self._vectors([f"{question} {answer}"] + holding)
        return bool((vectors[1:] @ vectors[0]).max() >= MIN_SIMILARITY)

    @staticmethod
    def windows(passages: list[str]) -> list[str]:
        out = []
        for passage in passages:
            sents = [passage[a:b] for a, b in split_sentences(passage)]
            out += sents + [f"{x} {y}" for x, y in zip(sents, sents[1:])]
        return out

    @staticmethod
    def aligned(sentence: str, window: str, max_novel: float = MAX_NOVEL) -> bool:
        """Numbers, names, negation and polarity must match; at most `max_novel` of the words may be new."""
        wtoks = set(words(window.replace("’", "'")))
        if (set(words(sentence.lower())) & _POLARITY) - wtoks:
            return False
        numbers = {n.rstrip(".,").replace(",", "") for n in _NUMBER.findall(sentence)}
        if not numbers <= {n.rstrip(".,").replace(",", "") for n in _NUMBER.findall(window)}:
            return False
        names = {w.lower().replace("’", "'").removesuffix("'s") for w in re.findall(r"\b[A-Z][\w’'-]+", sentence)}
        if any(n not in STOPWORDS and n not in wtoks and n + "'s" not in wtoks for n in names):
            return False
        if bool(set(words(sentence)) & _NEGATION or "n't" in sentence.replace("’", "'")) != \
                bool(wtoks & _NEGATION or "n't" in window.replace("’", "'")):
            return False
        terms = content_terms(sentence)
        have = {stem(w) for w in wtoks}
        novel = [t for t in terms if t not in have]
        return len(novel) <= max_novel * len(terms)


def agreement(predicted: list[bool], gold: list[bool]) -> dict:
    """Accuracy and Cohen's kappa of predictions against labels."""
    n = len(gold)
    if n == 0:
        return {"n": 0, "accuracy": 0.0, "kappa": 0.0}
    po = sum(p == g for p, g in zip(predicted, gold)) / n
    p_yes, g_yes = sum(predicted) / n, sum(gold) / n
    pe = p_yes * g_yes + (1 - p_yes) * (1 - g_yes)
    kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
    return {"n": n, "accuracy": round(po, 4), "kappa": round(kappa, 4)}
