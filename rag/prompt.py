"""Load prompt templates from `prompts/` and render them strictly: a missing variable raises."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from .config import PROJECT_ROOT
from .errors import RagError

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


_CONTROL_TOKEN = re.compile(r"<\|([^|<>\s]{1,40})\|>|</?s>|\[/?INST\]", re.IGNORECASE)


def as_data(text: str) -> str:
    """Text with chat-template control tokens (`<|im_start|>`, `</s>`, `[INST]`) broken up.

    The model's tokenizer reads such tokens in the prompt as real turn markers, so a document
    containing them could open a fake "system" turn. Broken up, they are plain characters.
    """
    return _CONTROL_TOKEN.sub(lambda m: m.group().replace("<", "‹").replace(">", "›").replace("[", "⟦"), text)
