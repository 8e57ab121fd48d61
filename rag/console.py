"""What a terminal shows of an answer: the model's draft dimmed while it streams, then the verified
answer with its citations and quotes (the CLI's `rag ask` and `rag chat`, and the bench that times them)."""

from __future__ import annotations

import sys


def print_streamed(pipeline, question: str, history: list[dict], documents: list[str] | None = None):
    """Stream the model's draft (dimmed, on a terminal), then replace it with the verified answer."""
    from .records import Answer

    tty = sys.stdout.isatty()
    answer, draft = None, ""
    for item in pipeline.stream(question, history, documents=documents):
        if isinstance(item, Answer):
            answer = item
        elif tty:
            draft += item
            print(f"\033[2m{item}\033[0m", end="", flush=True)
    if tty and draft:
        print(erase_lines(draft), end="")
    print(answer.text)
    for c in answer.citations:
        page = f", {c.where()}" if c.where() else ""
        a, b = c.highlight or (c.start, c.end)
        quote = " ".join(c.text[a - c.start:b - c.start].split())
        print(f"  [{c.id}] {c.doc}{page}, chars {a}-{b}: “{quote}”")
    if not answer.abstained:
        print(f"  ({answer.verdict}: {answer.confidence:.0%} estimated chance it is right)")
    elif answer.passages:
        print("  Closest passages (not an answer):")
        for p in answer.passages[:2]:
            where = f", {p.where()}" if p.where() else ""
            print(f"    {p.doc}{where}, chars {p.start}-{p.end}: “{' '.join(p.text.split())[:160]}”")
    return answer


def erase_lines(text: str) -> str:
    """The terminal codes that move back over `text` as printed, and clear it."""
    import shutil

    width = max(1, shutil.get_terminal_size().columns)
    rows = sum(max(1, -(-len(line) // width)) for line in text.split("\n"))
    return "\r" + (f"\033[{rows - 1}A" if rows > 1 else "") + "\033[J"
