"""Load prompt templates from `prompts/` and render them strictly: a missing variable raises."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ..config import PROJECT_ROOT
from ..errors import RagError

PROMPTS_DIR = PROJECT_ROOT / "prompts"


@cache
def _template(name: str, directory: str):
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)
    path = Path(directory) / name
    try:
        return env.from_string(path.read_text(encoding="utf-8"))
    except OSError:
        raise RagError(f"prompt template {path} is missing") from None


def render(name: str, directory: Path = PROMPTS_DIR, **variables) -> str:
    """Render `prompts/<name>` with the variables; StrictUndefined makes a missing one an error."""
    import jinja2

    try:
        return _template(name, str(directory)).render(**variables).strip()
    except jinja2.UndefinedError as exc:
        raise RagError(f"prompt {name}: {exc}") from None


def read(name: str, directory: Path = PROMPTS_DIR) -> str:
    """A prompt file's text as it is (the system prompt)."""
    return (directory / name).read_text(encoding="utf-8").strip()


def turns(name: str, directory: Path = PROMPTS_DIR) -> list[dict]:
    """Example chat turns from a file whose `### user` and `### assistant` lines open each turn."""
    out = []
    for line in read(name, directory).splitlines():
        if line.startswith("### "):
            out.append({"role": line[4:].strip(), "content": ""})
        elif out:
            out[-1]["content"] += line + "\n"
    return [{"role": t["role"], "content": t["content"].strip()} for t in out]


# The control tokens of the common chat templates (ChatML, Llama 2 and 3, Gemma); a generator adds
# those of its own model's vocabulary (see `control_token_pattern`).
_CONTROL_TOKEN = re.compile(r"<\|([^|<>\s]{1,40})\|>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>",
                            re.IGNORECASE)
_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "[": "⟦", "]": "⟧"})
_WORD_JOINER = "\u2060"


def as_data(text: str) -> str:
    """Text for the prompt: a line that starts like a passage ("[3] …") broken up, control tokens too.

    Each passage is an `[id] text` line, so a document whose text started a new line with "[3] ..."
    could pass for another passage; its bracket becomes a lookalike ("⟦3⟧"). Every kind of line break
    counts (CR, LS, PS, VT, FF…), and they all become "\n". The model's tokenizer reads control
    tokens (`<|im_start|>`, `</s>`, `[INST]`) in the prompt as real turn markers, so a document
    containing them could open a fake "system" turn. Broken up, they are plain characters.
    """
    lines = "\n".join(text.splitlines())
    return break_control_tokens(_PASSAGE_LINE.sub(lambda m: f"{m[1]}⟦{m[2]}⟧", lines))


_PASSAGE_LINE = re.compile(r"^(\s*)\[(\d+)\]", re.MULTILINE)


def break_control_tokens(text: str, pattern: re.Pattern = _CONTROL_TOKEN) -> str:
    """`text` with every match of `pattern` made plain characters: brackets swapped for lookalikes
    ("<|im_end|>" becomes "‹|im_end|›"), or a word joiner after the first character of a token
    without any."""
    return pattern.sub(lambda m: _broken(m.group()), text)


def control_token_pattern(tokens) -> re.Pattern:
    """A pattern for the common control tokens and the given ones (a model's own), longest first."""
    tokens = sorted({t for t in tokens if len(t.strip()) > 1}, key=len, reverse=True)
    if not tokens:
        return _CONTROL_TOKEN
    # Case-sensitive, like llama.cpp's own matching of special tokens in text.
    own = "|".join(re.escape(t) for t in tokens)
    return re.compile(f"{own}|(?i:{_CONTROL_TOKEN.pattern})")


def _broken(token: str) -> str:
    plain = token.translate(_LOOKALIKES)
    return plain if plain != token else token[0] + _WORD_JOINER + token[1:]
