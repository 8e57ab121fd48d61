"""The chat's HTML: answers with linked citation markers, the support badge, the sources panel and the
documents table. Every piece of document text, file name and model output is escaped here."""

from __future__ import annotations

import html
import re

import gradio as gr

from ..records import Answer, Citation

NO_SOURCES = '<p class="rag-empty">The passages behind the latest answer appear here.</p>'
_MARKER = re.compile(r"\[(\d+)\]")
# Inline, because the chat panel does not apply the page's stylesheet to message HTML.
ANSWER_STYLE = "font-weight:600;font-size:1.1em;margin-bottom:4px"
SENTENCE_STYLE = "margin-bottom:4px"
EVIDENCE_STYLE = "margin:4px 0 6px;padding-left:10px;border-left:3px solid #f59e0b;opacity:0.9;font-size:0.93em"
_LINK = re.compile(r'<a class="cite" href="#src-\d+">(\[\d+\])</a>')

# Clicking a [n] marker opens its source and scrolls to it: in the chat (#src-n), under a summary (#sum-n)
# and a comparison (#cmp-n). Capturing the click on the document also stops the chatbot from opening the
# link in a new tab.
CITATION_CLICKS_JS = """
() => {
  document.addEventListener("click", (event) => {
    const link = event.target.closest &&
      event.target.closest('a[href^="#src-"], a[href^="#sum-"], a[href^="#cmp-"]');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const source = document.getElementById(link.getAttribute("href").slice(1));
    if (!source) return;
    source.open = true;
    source.scrollIntoView({behavior: "smooth", block: "center"});
    source.classList.add("rag-flash");
    setTimeout(() => source.classList.remove("rag-flash"), 1500);
  }, true);
}
"""

SOURCES_CSS = """
.rag-badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 0.9em;
             margin-bottom: 8px; background: #dcfce7; color: #14532d; }
.rag-badge.uncertain { background: #fef3c7; color: #78350f; }
.rag-badge.abstained { background: #fee2e2; color: #7f1d1d; }
.rag-closest { opacity: 0.75; font-size: 0.9em; margin: 6px 0 2px; }
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px;
              margin-bottom: 8px; transition: box-shadow 0.3s; }
.rag-source summary { cursor: pointer; font-weight: 600; }
.rag-source .rag-page { font-weight: 400; opacity: 0.7; }
.rag-passage { white-space: pre-wrap; margin: 6px 0 0; font-size: 0.92em; line-height: 1.45; }
.rag-passage mark { background: #fde68a; color: #111827; padding: 0 1px; }
.rag-flash { box-shadow: 0 0 0 3px #f59e0b; }
.rag-empty { opacity: 0.7; }
.rag-receipt { font-size: 0.85em; opacity: 0.7; margin: 0 0 8px; }
table.rag-docs { width: 100%; border-collapse: collapse; }
table.rag-docs th, table.rag-docs td { text-align: left; padding: 4px 8px;
                                       border-bottom: 1px solid var(--border-color-primary); }
"""



def support_badge(answer: Answer) -> str:
    """What the system believes of an answer, in words: "likely answer", "uncertain: check the source"
    or "not found in the documents" (from its calibrated confidence)."""
    return answer.verdict or ("not found in the documents" if answer.abstained else "uncertain: check the source")


def badge_kind(answer: Answer) -> str:
    """The badge's CSS class: its colour says the same as its words."""
    if answer.abstained:
        return "rag-badge abstained"
    return "rag-badge" if support_badge(answer) == "likely answer" else "rag-badge uncertain"


def badge_html(answer: Answer) -> str:
    """The badge, with the calibrated probability of being right as its tooltip."""
    mark = "✗" if answer.abstained else ("✓" if support_badge(answer) == "likely answer" else "?")
    title = "" if answer.abstained else f' title="{answer.confidence:.0%} estimated chance this answer is right"'
    return f'<span class="{badge_kind(answer)}"{title}>{mark} {html.escape(support_badge(answer))}</span>'


def link_markers(text: str, ids: set[int]) -> str:
    """Escaped text whose [n] markers link to the source panel's `#src-n`, for the n in `ids`."""
    def link(m: re.Match) -> str:
        return f'<a class="cite" href="#src-{m[1]}">[{m[1]}]</a>' if int(m[1]) in ids else m[0]

    return _MARKER.sub(link, html.escape(text)).replace("\n", "<br>")


def evidence_html(answer: Answer) -> str:
    """The sentence behind each cited passage, quoted under the short answer, each linking to its source."""
    quotes = []
    for c in answer.citations:
        if c.highlight:
            quote = " ".join(c.text[c.highlight[0] - c.start:c.highlight[1] - c.start].split())
            quotes.append(f'<blockquote class="rag-evidence" style="{EVIDENCE_STYLE}">“{html.escape(quote)}” '
                          f'<a class="cite" href="#src-{c.id}">[{c.id}]</a></blockquote>')
    return "".join(quotes)


def answer_html(answer: Answer) -> str:
    """An answer as a chat message: the answer with citation links, its evidence quote, and its badge.

    A short answer takes the large headline style; a sentence answer, or the abstention, is plain text.
    When the reply is the abstention, the closest passages follow, marked as not an answer.
    """
    short = not answer.abstained and all(len(s.text.split()) <= 12 and not s.text.rstrip().endswith(".")
                                         for s in answer.sentences)
    style = ANSWER_STYLE if short else SENTENCE_STYLE
    body = (f'<div class="rag-answer" style="{style}">'
            f'{link_markers(answer.text, {c.id for c in answer.citations})}</div>'
            f"{evidence_html(answer)}{badge_html(answer)}")
    if answer.abstained and answer.passages:
        closest = "".join(f'<blockquote class="rag-evidence" style="{EVIDENCE_STYLE}">'
                          f'{html.escape(", ".join(filter(None, (p.doc, p.where()))))}: '
                          f'“{html.escape(" ".join(p.text.split()))}”</blockquote>' for p in answer.passages[:2])
        body += f'<p class="rag-closest">Closest passages (not an answer):</p>{closest}'
    return body


def passage_html(citation: Citation) -> str:
    """The passage's text, escaped, with the sentence that backs the answer in <mark>."""
    text, span = citation.text, citation.highlight
    if not span:
        return html.escape(text)
    a = min(max(span[0] - citation.start, 0), len(text))
    b = min(max(span[1] - citation.start, a), len(text))
    return f"{html.escape(text[:a])}<mark>{html.escape(text[a:b])}</mark>{html.escape(text[b:])}"


def sources_html(answer: Answer, pages: dict[int, str] | None = None) -> str:
    """The sources panel for an answer: its badge, then one expandable entry per cited passage, holding
    the passage and, for a PDF, the page it stands on (`pages`: HTML made safe by rag/whole/ui.py)."""
    parts = [f"<div>{badge_html(answer)}</div>"]
    if answer.receipt:
        parts.append(f'<p class="rag-receipt">{html.escape(receipt_line(answer.receipt))}</p>')
    for c in answer.citations:
        page = f' <span class="rag-page">· {html.escape(c.where())}</span>' if c.where() else ""
        parts.append(f'<details class="rag-source" id="src-{c.id}" open><summary>[{c.id}] '
                     f'{html.escape(c.doc)}{page}</summary>'
                     f'<blockquote class="rag-passage">{passage_html(c)}</blockquote>'
                     f'{(pages or {}).get(c.id, "")}</details>')
    return "\n".join(parts)


def receipt_line(receipt: dict) -> str:
    """The context receipt in one line:
    "405 prompt tokens (273 from the KV cache) · 4 passages · 4 of 11 sentences sent"."""
    total = receipt["sentences_sent"] + receipt["sentences_left_out"]
    cached = f" ({receipt['prompt_cached']} from the KV cache)" if receipt.get("prompt_cached") else ""
    line = (f"{receipt['prompt_tokens']} prompt tokens{cached} · {receipt['passages']} passages · "
            f"{receipt['sentences_sent']} of {total} sentences sent")
    left = len(receipt.get("chunks_left_out", []))
    return line + (f" · {left} passages did not fit" if left else "")


def documents_html(documents: list[dict]) -> str:
    """The indexed documents as an HTML table, names escaped."""
    if not documents:
        return '<p class="rag-empty">No documents are indexed yet.</p>'
    rows = "".join(f"<tr><td>{html.escape(d['id'])}</td><td>{d.get('pages', '')}</td>"
                   f"<td>{d.get('chunks', '')}</td></tr>" for d in documents)
    return (f'<table class="rag-docs"><thead><tr><th>Document</th><th>Pages</th><th>Chunks</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def watched_html(state: dict) -> str:
    """The collection's watched folders (`rag index --watch`, rag/watch.py), its last sync and whether the
    watcher runs now, from its watch state; a hint when no folder is watched. Paths escaped."""
    folders = [str(f) for f in state.get("folders") or ()]
    if not folders:
        return ('<p class="rag-watched rag-empty">No folder is watched for this collection; '
                "<code>rag index FOLDER --watch</code> keeps one in step.</p>")
    shown = ", ".join(f"<code>{html.escape(f)}</code>" for f in folders)
    running = "watching now" if state.get("running") else "the watcher is not running"
    return (f'<p class="rag-watched">Watched: {shown} · last sync {html.escape(str(state.get("last_sync") or "-"))}'
            f" ({running})</p>")


def error_toast(problem) -> gr.Error:
    """A gr.Error for a one-line problem; escaped, since Gradio renders toasts as HTML."""
    return gr.Error(html.escape(str(problem)))


def chat_messages(turns: list[dict], draft: str | None = None) -> list[dict]:
    """The Chatbot's messages: escaped questions, and answers whose links only the latest keeps."""
    messages = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": html.escape(turn["question"])})
        if "html" in turn:
            latest = i == len(turns) - 1 and draft is None
            content = turn["html"] if latest else _LINK.sub(r"\1", turn["html"])
            messages.append({"role": "assistant", "content": content})
    if draft is not None:
        shown = html.escape(draft).replace("\n", "<br>") if draft else "Searching the documents…"
        messages.append({"role": "assistant", "content": f'<em style="opacity:0.6">{shown}</em>'})
    return messages
