"""Local generation with llama-cpp-python, from a GGUF file: a model tier (see models.py) or a path."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from ..errors import GenerationFailed, ModelMissing
from . import prompt
from .lookup import Drafter, eval_rows
from .models import resolve_model
from .prefix_store import PrefixStore


class Generator(Protocol):
    name: str

    def stream(self, messages: list[dict], max_tokens: int = 128) -> Iterator[str]:
        """Yield the reply to a chat, piece by piece."""

    def count_tokens(self, text: str) -> int:
        """How many tokens the model's own tokenizer makes of `text`."""


class LlamaGenerator:
    """One llama.cpp context. Calls are serialized: a context is not thread-safe."""

    def __init__(self, model: str = "", n_ctx: int = 2048, n_threads: int = 2,
                 temperature: float = 0.0, seed: int = 7):
        path = resolve_model(model)
        self.name = path.name
        self.path = path
        self.temperature = temperature
        self.seed = seed
        self.lock = threading.Lock()
        # Read into memory, not mapped: llama.cpp repacks the weights for this CPU, and a mapped file's
        # pages, all read once for that, stayed resident beside the repacked copy (2.2 GB peak with the
        # 1.5b tier and the UI, 1.6 GB unmapped; docs/performance.md).
        try:
            self.llm = load_llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                  n_threads_batch=n_threads, seed=seed, use_mmap=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelMissing(f"cannot load GGUF model {path}: {exc}") from None
        self.n_ctx = self.llm.n_ctx()
        self.control = prompt.control_token_pattern(control_tokens(self.llm))
        # Of the last call's prompt: tokens llama.cpp processed, and tokens it took from the KV cache.
        self.last_evaluated: int | None = None
        self.last_cached: int | None = None
        self.last_scores: dict | None = None
        self.last_check_evaluated: int | None = None
        # KV states of the modes' fixed prefixes, by their tokens, least recently used first.
        self.prefixes: collections.OrderedDict[tuple[int, ...], object] = collections.OrderedDict()
        # The same states on disk, for the next process with this model (prefix_store.py); None when off.
        self.store = PrefixStore.for_model(path, self.n_ctx)
        # Calls that asked for the context (answers, checks): a warm-up in the background stops at the first.
        self.asked = 0
        # Free replies draft their next tokens from the text they copy (lookup.py); RAG_LOOKUP=0 turns it off.
        self.lookup = os.environ.get("RAG_LOOKUP", "1") != "0"
        self.last_drafter: Drafter | None = None
        # Over this generator's life: free replies' tokens, and how many of them came from kept drafts.
        self.lookup_stats = collections.Counter()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(self.as_data(text).encode("utf-8"), add_bos=False, special=True))

    def as_data(self, text: str) -> str:
        """Message text with this model's control tokens broken up: the chat template's own stay the
        only turn markers in the prompt."""
        return prompt.break_control_tokens(text, self.control)

    def chat_overhead(self, messages: list[dict]) -> int:
        """Tokens the chat template adds around the messages' contents."""
        return 8 * len(messages) + 8

    def stream(self, messages: list[dict], max_tokens: int = 128, stop_at_newline: bool = False,
               abstain_word: str = "", constraint=None, keep: int = 0) -> Iterator[str]:
        """Yield the reply to a chat piece by piece, decoding one token at a time from the logits.

        With a `constraint` (spans.SpanConstraint or ChoiceConstraint) only the tokens it allows are
        taken: the most likely of them, the rest of the vocabulary masked. The first `keep` messages are
        the mode's fixed prefix: their KV state is kept and restored, never evaluated twice.

        After the stream ends, `last_scores` holds the reply's log-probabilities under the whole
        vocabulary: the mean and lowest log-probability of its tokens and, when `abstain_word` is given,
        the probability that the reply's first token begins that word (the model's own "I can't answer");
        for a yes/no reply also `choices`, each word's raw first-step probability before its calibrated bias.
        """
        self.asked += 1
        with self.lock:
            self.last_evaluated = self.last_cached = self.last_check_evaluated = None
            self.last_scores = None
            tokens = self.encode(messages)
            cached = self.feed(tokens, len(self.encode_prefix(messages[:keep])) if keep else 0)
            self.last_cached, self.last_evaluated = cached, len(tokens) - cached
            logprobs: list[float] = []
            first = None
            made: list[int] = []
            shown = ""
            rng = np.random.default_rng(self.seed)
            # A free reply at temperature 0 drafts from what it copies (lookup.py); a constrained one is a
            # few tokens of a passage and gains nothing.
            drafter = Drafter(tokens) if constraint is None and self.temperature <= 0 and self.lookup else None
            ahead: list[tuple[int, np.ndarray]] = []
            self.last_drafter = drafter
            logits = self.last_logits()
            allowed = constraint.allowed() if constraint is not None else None
            choices = None
            for _ in range(max_tokens):
                logp = log_softmax(logits)
                if first is None:
                    if hasattr(constraint, "calibrate"):  # a yes/no reply: its raw odds kept, then its bias
                        choices = constraint.choice_probabilities(logp)
                        logp = constraint.calibrate(logp)
                    first = logp
                if allowed is not None and not len(allowed):
                    break
                token = self.pick(logp, rng, allowed)
                if self.ends(token):
                    break
                made.append(token)
                logprobs.append(float(logp[token]))
                if constraint is not None:
                    constraint.advance(token)
                    if constraint.abstained:
                        made = self.llm.tokenize(abstain_word.encode("utf-8"), add_bos=False, special=False)
                text = self.llm.detokenize(made).decode("utf-8", errors="ignore")
                if stop_at_newline and "\n" in text.lstrip():
                    text = text.lstrip().split("\n")[0]
                    if len(text) > len(shown):
                        yield text[len(shown):]
                    break
                if len(text) > len(shown) and not text.endswith("\ufffd"):
                    yield text[len(shown):]
                    shown = text
                if constraint is not None and constraint.abstained:
                    break
                rest = constraint.rest() if constraint is not None and hasattr(constraint, "rest") else None
                if rest is not None:  # one sentence left that the reply can be: the rest is known
                    yield rest
                    break
                if constraint is not None:
                    allowed = constraint.allowed()
                    if len(allowed) and self.ends(int(allowed[0])) and all(self.ends(int(t)) for t in allowed):
                        break  # the reply can only end here: its last token needs no evaluating
                logits = self.advance(token, ahead, drafter, max_tokens - len(made))
            else:
                text = self.llm.detokenize(made).decode("utf-8", errors="ignore")
                if len(text) > len(shown):
                    yield text[len(shown):]
            # Drafted tokens past the reply's end are not the context's: the next call evaluates over them.
            self.llm.n_tokens -= len(ahead)
            if constraint is None:
                self.lookup_stats.update(replies=1, tokens=len(made), drafts=drafter.drafts if drafter else 0,
                                         drafted=drafter.drafted if drafter else 0,
                                         accepted=drafter.accepted if drafter else 0)
            self.last_scores = {
                "p_abstain": self.word_probability(first, abstain_word) if abstain_word and first is not None
                else None,
                "mean_logprob": sum(logprobs) / len(logprobs) if logprobs else 0.0,
                "min_logprob": min(logprobs, default=0.0),
                "tokens": len(logprobs)}
            if choices is not None:
                self.last_scores["choices"] = choices

    def advance(self, token: int, ahead: list, drafter, left: int) -> np.ndarray:
        """Put the reply's next token in the context and return the logits after it.

        `ahead` holds drafted tokens the context holds already, each with the logits after it: when the
        token is the first of them, its logits are at hand. Else the draft is forgotten, and the token is
        evaluated with a new draft in one batch (or alone, when the history offers none); `left` is how
        many tokens the reply may still take.
        """
        if drafter is not None:
            drafter.add(token)
        if ahead and ahead[0][0] == token:
            drafter.took()
            return ahead.pop(0)[1]
        self.llm.n_tokens -= len(ahead)
        ahead.clear()
        room = min(self.n_ctx - self.llm.n_tokens - 1, self.llm.n_batch, left) - 1
        draft = drafter.propose(room) if drafter is not None and room > 0 else []
        if not draft:
            self.llm.eval([token])
            return self.last_logits()
        rows = eval_rows(self.llm, [token, *draft], self.n_vocab)
        ahead.extend(zip(draft, rows[1:]))
        return rows[0]

    def p_yes(self, messages: list[dict]) -> float:
        """P(the reply to this chat starts with "yes" rather than "no"), from one forward pass.

        The chat usually extends the last one (its passages and answer, then a check question), so
        only the new tokens are processed: the rest comes from the KV cache.
        """
        self.asked += 1
        with self.lock:
            tokens = self.encode(messages)
            self.last_check_evaluated = len(tokens) - self.feed(tokens)
            logp = log_softmax(self.last_logits())
        yes, no = self.word_probability(logp, "yes"), self.word_probability(logp, "no")
        return yes / (yes + no) if yes + no > 0 else 0.5

    def remember(self, messages: list[dict], give_way_after: int | None = None) -> int:
        """Evaluate a mode's fixed messages (system prompt, examples) once and keep their KV state, so no
        later question evaluates them again; returns how many tokens were evaluated (0 when kept already).

        A warm-up in the background passes `give_way_after` (the `asked` count when it began): the prefix is
        then evaluated WARM_STEP tokens at a time and left as soon as a question has asked for the context,
        so a question waits for one step at most and no warm-up comes between an answer and its check.
        """
        evaluated, tokens = 0, None
        while give_way_after is None or self.asked == give_way_after:
            with self.lock:
                if give_way_after is not None and self.asked != give_way_after:
                    break
                tokens = tokens or self.encode_prefix(messages)
                if self.recall(tuple(tokens)):
                    break
                if give_way_after is None:
                    return len(tokens) - self.feed(tokens, len(tokens))
                same = self.shared_prefix(tokens)
                end = min(len(tokens), same + WARM_STEP)
                self.llm.n_tokens = same
                self.llm.eval(tokens[same:end])
                evaluated += end - same
                if end == len(tokens):
                    self.keep_state(tuple(tokens))
                    break
        return evaluated

    @functools.cached_property
    def span_vocabulary(self):
        """The model's pieces as bytes, for decoding short answers as spans of the passages."""
        from .spans import Vocabulary

        pieces = [self.llm.detokenize([t]) for t in range(self.n_vocab)]
        return Vocabulary(pieces, self.end_tokens | {self.llm.token_eos()})

    # --- the pieces of the decoding loop ----------------------------------------------------------
    def encode(self, messages: list[dict]) -> list[int]:
        """The chat rendered with the model's own chat template and tokenized, ready to continue; the
        model's control tokens inside a message are broken up, so the template's stay the only turn markers."""
        rendered = self.formatter(messages=[{**m, "content": self.as_data(m["content"])} for m in messages])
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                 special=True)

    def encode_prefix(self, messages: list[dict]) -> list[int]:
        """The tokens a chat that starts with these whole messages starts with (no assistant turn opened)."""
        rendered = self.formatter(messages=[{**m, "content": self.as_data(m["content"])} for m in messages],
                                  opened=False)
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                 special=True)

    def formatter(self, messages: list[dict], opened: bool = True):
        """The chat rendered with the template from the GGUF's metadata (ChatML when it has none); with
        `opened`, the assistant's turn is opened at the end, ready to continue."""
        return self.formatters[opened](messages=messages)

    @functools.cached_property
    def formatters(self) -> dict:
        from llama_cpp import llama_chat_format

        template = self.llm.metadata.get("tokenizer.chat_template") or CHATML
        piece = functools.partial(self.llm.detokenize, special=True)
        eos = piece([self.llm.token_eos()]).decode("utf-8", errors="ignore") if self.llm.token_eos() >= 0 else ""
        bos = piece([self.llm.token_bos()]).decode("utf-8", errors="ignore") if self.llm.token_bos() >= 0 else ""
        return {opened: llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                              add_generation_prompt=opened)
                for opened in (True, False)}

    def feed(self, tokens: list[int], keep: int = 0) -> int:
        """Evaluate `tokens`, reusing what the KV cache holds of them; returns how many came from the cache.

        The context's own cache serves the prefix it shares with `tokens`; a kept prefix state (see
        `remember`) that covers more is restored instead. With `keep`, the state after the first `keep`
        tokens is kept for later calls. At least the last token is evaluated, for its logits.
        """
        limit = len(tokens) - 1
        if keep == len(tokens) and self.recall(tuple(tokens)):
            self.restore_state(tuple(tokens), self.prefixes[tuple(tokens)])
            return keep
        if 0 < keep < len(tokens):
            self.recall(tuple(tokens[:keep]))
        same = self.shared_prefix(tokens[:limit])
        for prefix, state in self.prefixes.items():
            if same < len(prefix) <= limit and tuple(tokens[:len(prefix)]) == prefix:
                self.restore_state(prefix, state)
                same = len(prefix)
                self.prefixes.move_to_end(prefix)
                break
        self.llm.n_tokens = same
        reused = same
        if same < keep <= len(tokens) and tuple(tokens[:keep]) not in self.prefixes:
            self.llm.eval(tokens[same:keep])
            self.keep_state(tuple(tokens[:keep]))
            same = keep
            if keep == len(tokens):
                return reused
        self.llm.eval(tokens[same:])
        return reused

    def shared_prefix(self, tokens: list[int]) -> int:
        """How many of `tokens` the context holds already, from the start."""
        same, old, limit = 0, self.llm.input_ids, min(self.llm.n_tokens, len(tokens))
        while same < limit and old[same] == tokens[same]:
            same += 1
        return same

    def keep_state(self, prefix: tuple[int, ...]) -> None:
        """Keep the KV state of `prefix` (just evaluated); the least recently used goes past KEPT_PREFIXES.

        llama.cpp's own state bytes are kept, not `Llama.save_state()`, which copies a logits buffer of
        n_batch x n_vocab floats (311 MB with a 152k vocabulary) that this generator never reads.
        """
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        self.hold(prefix, bytes(memoryview(buffer)[:written]))
        if self.store:
            self.store.save(prefix, self.prefixes[prefix])

    def hold(self, prefix: tuple[int, ...], state: bytes) -> None:
        """Keep a prefix's state in memory, the least recently used going past KEPT_PREFIXES."""
        self.prefixes[prefix] = state
        while len(self.prefixes) > KEPT_PREFIXES:
            self.prefixes.popitem(last=False)

    def recall(self, prefix: tuple[int, ...]) -> bool:
        """Whether `prefix`'s KV state is kept: in memory, or read from disk (written by this or an earlier
        process with the same model) into memory, ready for `feed` to restore."""
        if prefix in self.prefixes:
            return True
        state = self.store.load(prefix) if self.store else None
        if state is None:
            return False
        self.hold(prefix, state)
        return True

    def restore_state(self, prefix: tuple[int, ...], state: bytes) -> None:
        """Put a kept prefix's KV state back: the context then holds exactly `prefix`."""
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_set_data(self.llm._ctx.ctx, buffer, len(state)) != len(state):
            raise GenerationFailed("llama.cpp could not restore a kept prompt prefix")
        self.llm.input_ids[:len(prefix)] = prefix
        self.llm.n_tokens = len(prefix)

    def last_logits(self) -> np.ndarray:
        """The logits of the last evaluated position.

        Without `logits_all` (which costs about 1 GB and a third more prompt time with a 152k vocabulary)
        llama-cpp-python keeps no logits of its own; llama.cpp's context still holds the last batch's
        last row, read here. This reaches into `Llama._ctx`, so it is kept in this one place and tested.
        """
        pointer = self.llm._ctx.get_logits()
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)

    @functools.cached_property
    def n_vocab(self) -> int:
        return self.llm.n_vocab()

    def pick(self, logp: np.ndarray, rng, allowed: np.ndarray | None = None) -> int:
        """The next token: the most likely at temperature 0, else sampled from the tempered distribution;
        only among `allowed` when given."""
        if allowed is not None:
            return int(allowed[self.pick(logp[allowed], rng)])
        if self.temperature <= 0:
            return int(np.argmax(logp))
        scaled = logp / self.temperature
        p = np.exp(scaled - scaled.max())
        return int(rng.choice(len(p), p=p / p.sum()))

    def ends(self, token: int) -> bool:
        """Whether `token` ends the reply: the model's end-of-sequence or an end-of-turn marker."""
        return token == self.llm.token_eos() or token in self.end_tokens

    @functools.cached_property
    def end_tokens(self) -> frozenset[int]:
        found = set()
        for marker in END_MARKERS:
            ids = self.llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(ids) == 1:
                found.add(ids[0])
        return frozenset(found)

    def word_probability(self, logp: np.ndarray, word: str) -> float:
        """P(the next token begins `word`), summed over the tokens that spell a prefix of it in any case."""
        return float(np.exp(logp[list(self.prefix_tokens(word))]).sum()) if self.prefix_tokens(word) else 0.0

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one generator per process; the cache is its own
    def prefix_tokens(self, word: str) -> frozenset[int]:
        found = set()
        for variant in {word, word.lower(), word.upper(), word.capitalize()}:
            for spaced in (variant, " " + variant):
                ids = self.llm.tokenize(spaced.encode("utf-8"), add_bos=False, special=False)
                if ids:
                    piece = self.llm.detokenize(ids[:1]).decode("utf-8", errors="ignore").strip().lower()
                    if piece and word.lower().startswith(piece):
                        found.add(ids[0])
        return frozenset(found)


# Fixed prefixes whose KV state is kept: short answer, yes/no, explanation, rewrite, and room to spare.
KEPT_PREFIXES = 6
# Tokens a background warm-up evaluates between looks for a waiting question (under a second on one slow core).
WARM_STEP = 16
# Turn ends of the common chat templates; a model's own end-of-sequence token is always one too.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>")
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def control_tokens(llm) -> tuple[str, ...]:
    """The texts llama.cpp reads as one special token in a prompt: the vocabulary's control tokens
    ("<|im_start|>", "<file_sep>"), and the user-defined tokens its chat template uses ("<tool_call>")."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    template = llm.metadata.get("tokenizer.chat_template", "")
    found = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED):
            text = llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")
            if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL or text in template:
                found.append(text)
    return tuple(found)


class _StreamsKept:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`, which with verbose=False points file
    descriptors 1 and 2 of the whole process at /dev/null while a model loads. Another thread's output in
    that time was lost: an MCP reply over stdio (the client then waited for ever), a chat's greeting. The
    library's log callback already drops everything below an error when verbose is off."""

    def __init__(self, disable: bool = True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None


def load_llama(**kwargs):
    """`llama_cpp.Llama(**kwargs, verbose=False)`, without taking the process's stdout and stderr away."""
    import llama_cpp._internals
    import llama_cpp.llama

    for module in (llama_cpp.llama, llama_cpp._internals):
        if hasattr(module, "suppress_stdout_stderr"):
            module.suppress_stdout_stderr = _StreamsKept
    return llama_cpp.llama.Llama(**kwargs, verbose=False)


@contextlib.contextmanager
def stderr_silenced():
    """Send standard error, Python's and file descriptor 2, to /dev/null for the duration.

    llama.cpp warns about the context of a vocabulary-only model ("n_ctx_seq > n_ctx_train") even
    with verbose=False; without this, the CLI's one-line errors would come with that line.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
