"""The web UI: chat with cited answers, a sources panel, document upload and settings. `python app.py`."""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# Read at import time, so set before gradio loads: no telemetry, and (rag.config forces
# HF_HUB_OFFLINE) no model-hub calls from the huggingface_hub that gradio imports.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
from rag.errors import RagError  # noqa: E402, I001
from rag.history import History, collection_label, history_path, model_label, when  # noqa: E402
from rag.pipeline import Pipeline, clean_question, upload_name  # noqa: E402
from rag.records import Answer, Citation  # noqa: E402
from rag.webcache import private_cache, start_expiry  # noqa: E402
from rag.access import FailureThrottle, LoginThrottle, check_secret, new_secret  # noqa: E402
from rag.webguard import (  # noqa: E402
    SameOriginGuard, SecurityHeaders, allowed_hosts, bracketed, is_loopback, plain_refusal)
from rag.whole.ui import FILE_ROUTE, cited_pages_html, file_endpoint, summarize_tab  # noqa: E402

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402

DEFAULT_MODEL = "default tier"
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".odt", ".epub", ".rtf"]
NO_SOURCES = '<p class="rag-empty">The passages behind the latest answer appear here.</p>'
_MARKER = re.compile(r"\[(\d+)\]")
# Inline, because the chat panel does not apply the page's stylesheet to message HTML.
ANSWER_STYLE = "font-weight:600;font-size:1.1em;margin-bottom:4px"
SENTENCE_STYLE = "margin-bottom:4px"
EVIDENCE_STYLE = "margin:4px 0 6px;padding-left:10px;border-left:3px solid #f59e0b;opacity:0.9;font-size:0.93em"
_LINK = re.compile(r'<a class="cite" href="#src-\d+">(\[\d+\])</a>')

# Clicking a [n] marker opens its source and scrolls to it. Capturing the click on the document
# also stops the chatbot from opening the link in a new tab.
CITATION_CLICKS_JS = """
() => {
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('a[href^="#src-"]');
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


# --- rendering: every piece of document text, file name and model output is escaped here ---------
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


def sources_html(answer: Answer) -> str:
    """The sources panel for an answer: its badge, then one expandable entry per cited passage."""
    parts = [f"<div>{badge_html(answer)}</div>"]
    if answer.receipt:
        parts.append(f'<p class="rag-receipt">{html.escape(receipt_line(answer.receipt))}</p>')
    for c in answer.citations:
        page = f' <span class="rag-page">· {html.escape(c.where())}</span>' if c.where() else ""
        parts.append(f'<details class="rag-source" id="src-{c.id}" open><summary>[{c.id}] '
                     f'{html.escape(c.doc)}{page}</summary>'
                     f'<blockquote class="rag-passage">{passage_html(c)}</blockquote></details>')
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


# --- what the events do ----------------------------------------------------------------------------
class Backend:
    """The UI's actions on one shared pipeline; switching model swaps in a pipeline with the same embedder."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.lock = threading.RLock()
        self.collections: dict[str, Pipeline] = {}

    def pipeline_for(self, model: str, temperature: float, collection: str | None = None) -> Pipeline:
        """The pipeline for these generation settings, rebuilt (keeping the embedder) if they changed."""
        model = "" if model == DEFAULT_MODEL else model
        with self.lock:
            s = self.pipeline.settings
            if (s.model, s.temperature) != (model, float(temperature)):
                settings = s.replace(model=model, temperature=temperature)
                self.pipeline = Pipeline(settings, embedder=self.pipeline.embedder)
            return self.pipeline if collection is None else self.in_collection(self.pipeline, collection)

    def in_collection(self, pipeline: Pipeline, collection: str | None) -> Pipeline:
        """`pipeline` for the named collection (the same models; its own index), made once per collection."""
        from rag.index.collections import check_name

        name = check_name(collection or "")
        if name == pipeline.settings.collection:
            return pipeline
        with self.lock:
            cached = self.collections.get(name)
            if cached is None or cached.settings.replace(collection="") != pipeline.settings.replace(collection=""):
                cached = Pipeline(pipeline.settings.replace(collection=name), embedder=pipeline.embedder,
                                  generator=pipeline.generator)
                self.collections[name] = cached
            return cached

    def collections_view(self, chosen: str | None = None) -> gr.Dropdown:
        """The collection picker with every collection there is now."""
        from rag.index.collections import collection_names, display_name

        names = collection_names(self.pipeline.settings)
        value = display_name(chosen) if chosen else display_name(self.pipeline.settings.collection)
        return gr.Dropdown(choices=list(dict.fromkeys([*names, value])), value=value)

    def respond(self, question: str, turns: list[dict], top_k: int, model: str,
                temperature: float, collection: str | None = None) -> Iterator[tuple]:
        """Stream an answer into the chat: the model's draft first, then the verified answer and sources."""
        try:
            question = clean_question(question)
            pipeline = self.pipeline_for(model, temperature, collection)
            about = collection_label(pipeline.settings)
            history = [m for t in turns if "answer" in t for m in (
                {"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["answer"]})]
            turns = [*turns, {"question": question}]
            draft = ""
            yield chat_messages(turns, draft), turns, gr.skip(), ""
            for item in pipeline.stream(question, history, int(top_k)):
                if isinstance(item, Answer):
                    turns[-1] = {"question": question, "answer": item.text, "html": answer_html(item), "record": item,
                                 "collection": about}
                    sources = sources_html(item) + cited_pages_html(pipeline, item.citations)
                    yield chat_messages(turns), turns, sources, ""
                else:
                    draft += item
                    yield chat_messages(turns, draft), turns, gr.skip(), ""
        except RagError as exc:
            raise error_toast(exc) from None

    def collection_changed(self, collection: str | None, turns: list[dict]) -> tuple:
        """The chat after the collection picker changed: cleared if it was about another collection's
        documents, kept if it is this collection's (a reopened conversation switches the picker)."""
        from rag.index.collections import display_name

        try:
            name = display_name(collection or "")
        except RagError:
            name = None
        if turns and turns[-1].get("collection") == name:
            return gr.skip(), gr.skip(), gr.skip()
        return [], [], NO_SOURCES

    def ask(self, question: str) -> dict:
        """Answer one question with the current settings; the JSON of the verified Answer."""
        try:
            return self.pipeline.ask(question).to_dict()
        except RagError as exc:
            raise error_toast(exc) from None

    def documents_view(self, collection: str | None = None) -> tuple:
        """The documents table and the remove dropdown, as they are now."""
        try:
            docs = self.in_collection(self.pipeline, collection).documents()
        except RagError as exc:
            raise error_toast(exc) from None
        return documents_html(docs), gr.Dropdown(choices=[d["id"] for d in docs], value=None)

    def add_files(self, paths: list[str] | None, collection: str | None = None, progress=gr.Progress()) -> tuple:
        """Index uploaded files one by one; report what was added and what was skipped, and why."""
        lines, problems = [], []
        paths = paths or []
        try:
            pipeline = self.in_collection(self.pipeline, collection)
        except RagError as exc:
            raise error_toast(exc) from None
        for i, path in enumerate(paths):
            name = upload_name(Path(path).name)
            progress((i, len(paths)), desc=f"Indexing {name}")
            try:
                report = pipeline.add_documents(
                    [(name, Path(path).read_bytes())],
                    ocr_progress=lambda _, done, total, name=name: progress(
                        (done, total), desc=f"OCR page {min(done + 1, total)}/{total} of {name}"))
            except RagError as exc:
                problems.append(str(exc))
                continue
            finally:
                discard_upload(Path(path))
            skipped = [s for s in report.skipped if Path(s.path).name == name]
            if skipped:
                problems.extend(f"{name}: {s.reason}" for s in skipped)
            elif name in report.added or name in report.updated:
                lines.append(f"{name}: {'added' if name in report.added else 'updated'}")
            else:
                lines.append(f"{name}: already indexed")
        if problems and not lines:
            raise error_toast("Nothing was added. " + "; ".join(problems))
        status = [f"✓ {html.escape(line)}" for line in lines] + [f"✗ skipped {html.escape(p)}"
                                                                 for p in problems]
        return ("<br>".join(status), *self.documents_view(collection))

    def remove(self, doc_id: str | None, collection: str | None = None) -> tuple:
        """Take one document out of the index."""
        if not doc_id:
            raise error_toast("Choose a document to remove.")
        try:
            self.in_collection(self.pipeline, collection).remove_document(doc_id)
        except RagError as exc:
            raise error_toast(exc) from None
        return (f"Removed {html.escape(doc_id)}.", *self.documents_view(collection))


def discard_upload(path: Path) -> None:
    """Delete Gradio's copy of an uploaded file, and its folder once empty: the index keeps its own copy."""
    import gradio.utils

    if path.resolve().is_relative_to(Path(gradio.utils.get_upload_folder()).resolve()):
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()


# --- saved conversations (rag/history.py) ---------------------------------------------------------
LIST_TITLE_CHARS = 60
# The export is made into a file by the browser, from the text: it is never written to the server's disk
# (Gradio's file cache is readable by every local user).
SAVE_AS_FILE_JS = """
(text, name) => {
  if (!text) return;
  const url = URL.createObjectURL(new Blob([text], {type: "text/markdown;charset=utf-8"}));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
"""


class SavedConversations:
    """The conversations sidebar: each answered turn saved (unless turned off), listed, reopened, renamed,
    deleted, exported as Markdown. A session's open conversation is its id (None until the first save)."""

    def __init__(self, backend: Backend, models: tuple[str, ...] = (DEFAULT_MODEL,)):
        self.backend = backend
        self.models = models
        self.store = History.for_settings(backend.pipeline.settings)

    def respond(self, conversation: int | None, save: bool, question: str, turns: list[dict],
                *choices) -> Iterator[tuple]:
        """`Backend.respond`, then the answered turn saved in one transaction when `save` is on; yields the
        chat, turns, sources, question box, open conversation, sidebar list and title."""
        answered = None
        for chat, answered, sources, box in self.backend.respond(question, turns, *choices):
            yield chat, answered, sources, box, gr.skip(), gr.skip(), gr.skip()
        record = answered[-1].get("record") if answered else None
        if not save or record is None:
            return
        settings = self.backend.pipeline.settings
        if len(choices) > 3:  # the collection picked: the turn records the index it was answered from
            from rag.index.collections import check_name

            settings = settings.replace(collection=check_name(choices[3] or ""))
        try:
            conversation = self.store.save_turn(conversation, record, model_label(settings),
                                                collection_label(settings))
        except RagError as exc:
            raise error_toast(f"The answer was not saved: {exc}") from None
        title = self.store.conversation(conversation).title
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), conversation, self.listing(conversation), title

    def listing(self, selected: int | None = None) -> gr.Radio:
        """The saved conversations, the most recently continued first: first question (or title) and date."""
        try:
            found = self.store.conversations()
        except RagError as exc:
            raise error_toast(exc) from None
        choices = [(f"{shorten(c.title)} · {when(c.updated)}", c.id) for c in found]
        return gr.Radio(choices=choices, value=selected if selected in {c.id for c in found} else None)

    def reopen(self, conversation: int | None) -> tuple:
        """A saved conversation back in the chat, with its citations, ready to go on with the model and
        the collection it last used (each left as it is when it is no longer there); yields the chat,
        turns, sources, open conversation, title, model and collection."""
        if conversation is None:
            return (gr.skip(),) * 7
        try:
            saved = self.store.turns(conversation)
            opened = self.store.conversation(conversation)
        except RagError as exc:
            raise error_toast(exc) from None
        turns = [{"question": t.question, "answer": t.answer.text, "html": answer_html(t.answer),
                  "record": t.answer, "collection": t.collection} for t in saved]
        sources = sources_html(saved[-1].answer) if saved else NO_SOURCES
        return (chat_messages(turns), turns, sources, conversation, opened.title, self.model_choice(opened.model),
                self.collection_choice(opened.collection))

    def model_choice(self, label: str):
        """The model picker's choice that answers as the saved `label` (see `model_label`), or no change."""
        settings = self.backend.pipeline.settings
        for choice in self.models:
            if model_label(settings.replace(model="" if choice == DEFAULT_MODEL else choice)) == label:
                return choice
        return gr.skip()

    def collection_choice(self, name: str):
        """The collection picker set to `name`, or no change when that collection is gone."""
        from rag.index.collections import collection_names

        try:
            return self.backend.collections_view(name) if name in collection_names(self.backend.pipeline.settings) \
                else gr.skip()
        except RagError:
            return gr.skip()

    def rename(self, conversation: int | None, title: str) -> tuple:
        """Give the open conversation the title in the box."""
        if conversation is None:
            raise error_toast("Open a saved conversation to rename it.")
        try:
            renamed = self.store.rename(conversation, title)
        except RagError as exc:
            raise error_toast(exc) from None
        return self.listing(conversation), renamed.title

    def delete(self, conversation: int | None) -> tuple:
        """Delete the open conversation and clear the chat."""
        if conversation is None:
            raise error_toast("Open a saved conversation to delete it.")
        try:
            self.store.delete(conversation)
        except RagError as exc:
            raise error_toast(exc) from None
        return [], [], NO_SOURCES, None, self.listing(), ""

    def export(self, conversation: int | None) -> tuple[str, str]:
        """The open conversation as Markdown, and the name of the file the browser saves it as."""
        if conversation is None:
            raise error_toast("Open a saved conversation to export it.")
        try:
            return self.store.export_markdown(conversation), f"conversation-{conversation}.md"
        except RagError as exc:
            raise error_toast(exc) from None

    def start_new(self) -> tuple:
        """An empty chat; the next answer starts a new saved conversation."""
        return [], [], NO_SOURCES, "", None, self.listing(), ""


def shorten(title: str) -> str:
    """A title cut to fit the sidebar."""
    return title if len(title) <= LIST_TITLE_CHARS else title[:LIST_TITLE_CHARS - 1] + "…"


def conversations_sidebar(app: gr.Blocks, saved: SavedConversations, chat: tuple, save: gr.Checkbox,
                          ask_events: list, ask_inputs: list, clear_events: list, pickers: tuple,
                          **answering) -> None:
    """The sidebar of saved conversations, and the ask event that saves each answer.

    `chat` holds the chat's components (chatbot, turns, sources, question); `ask_inputs` are what
    `Backend.respond` takes after the question and the turns; `clear_events` start a new conversation;
    `pickers` are the model and collection pickers a reopened conversation sets.
    """
    chatbot, turns, sources, question = chat
    conversation = gr.State(None)
    with gr.Sidebar(label="Conversations", open=True, elem_id="history"):
        new_button = gr.Button("New conversation", elem_id="history-new", size="sm")
        listing = gr.Radio([], label="Saved conversations", elem_id="history-list")
        title = gr.Textbox(label="Title", elem_id="history-title", max_lines=1)
        with gr.Row():
            rename_button = gr.Button("Rename", elem_id="history-rename", size="sm")
            delete_button = gr.Button("Delete", elem_id="history-delete", variant="stop", size="sm")
        export_button = gr.Button("Export as Markdown", elem_id="history-export", size="sm")
        export_text = gr.Textbox(visible=False, elem_id="history-export-text")
        export_name = gr.Textbox(visible=False, elem_id="history-export-name")
    private = {"api_visibility": "private"}
    gr.on(ask_events, saved.respond, [conversation, save, question, turns, *ask_inputs],
          [chatbot, turns, sources, question, conversation, listing, title], **private, **answering)
    listing.input(saved.reopen, listing, [chatbot, turns, sources, conversation, title, *pickers], **private,
                  queue=False)
    new_button.click(saved.start_new, None, [chatbot, turns, sources, question, conversation, listing, title],
                     **private, queue=False)
    gr.on(clear_events, lambda: (None, gr.Radio(value=None), ""), None, [conversation, listing, title],
          **private, queue=False)
    rename_button.click(saved.rename, [conversation, title], [listing, title], **private, queue=False)
    delete_button.click(saved.delete, conversation, [chatbot, turns, sources, conversation, listing, title],
                        **private, queue=False)
    export_button.click(saved.export, conversation, [export_text, export_name], **private, queue=False).success(
        None, [export_text, export_name], None, js=SAVE_AS_FILE_JS, **private, queue=False)
    app.load(saved.listing, None, listing, **private)


# --- the layout --------------------------------------------------------------------------------
def build_app(pipeline: Pipeline) -> gr.Blocks:
    """The Blocks of the UI over `pipeline`, not yet served."""
    backend = Backend(pipeline)
    s = pipeline.settings
    from rag.answer.models import TIERS, is_installed

    tiers = [t.name for t in TIERS if is_installed(t)]
    models = list(dict.fromkeys([DEFAULT_MODEL, *tiers, *s.models, *([s.model] if s.model else [])]))
    serial = {"concurrency_limit": 1, "concurrency_id": "pipeline"}
    # The in-process model answers one question at a time (its context is locked); a generation
    # server takes several at once and batches or queues them itself.
    answering = ({"concurrency_limit": max(1, s.llm_concurrency), "concurrency_id": "answers"}
                 if s.llm_url else serial)
    # Uploads and removals take turns on a lane of their own: questions are answered while a file is read.
    documents_lane = {"concurrency_limit": 1, "concurrency_id": "documents"}

    with gr.Blocks(title="Ask your documents", analytics_enabled=False) as app:
        gr.Markdown("## Ask your documents\nAnswers come only from the indexed documents; "
                    "click a marker like [1] to see the passage behind it.")
        turns = gr.State([])
        collection = gr.Dropdown([], label="Collection", elem_id="collection", allow_custom_value=True,
                                 info="Questions and uploads go to this collection; type a new name to start one.")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=480, render_markdown=False,
                                         sanitize_html=True, allow_tags=False, latex_delimiters=[],
                                         feedback_options=None, buttons=[])
                    question = gr.Textbox(placeholder="Ask a question about your documents",
                                          show_label=False, elem_id="question", max_lines=4)
                    with gr.Row():
                        ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
                        clear_button = gr.Button("Clear", elem_id="clear")
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(NO_SOURCES, elem_id="sources", css_template=SOURCES_CSS,
                                      js_on_load=None)
        with gr.Tab("Documents"):
            upload = gr.File(label=f"Add documents ({' '.join(UPLOAD_TYPES)})", file_types=UPLOAD_TYPES,
                             file_count="multiple", type="filepath", elem_id="upload")
            upload_status = gr.HTML(elem_id="upload-status", js_on_load=None)
            documents = gr.HTML(elem_id="documents", css_template=SOURCES_CSS, js_on_load=None)
            with gr.Row():
                to_remove = gr.Dropdown(label="Document to remove", choices=[], elem_id="to-remove")
                remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove")
        with gr.Tab("Summarize"):
            summarize_tab(backend, collection, documents, serial)
        with gr.Tab("Settings"):
            top_k = gr.Slider(1, 12, value=s.top_k, step=1, label="Passages to retrieve (top-k)",
                              elem_id="top-k")
            model = gr.Dropdown(models, value=s.model or DEFAULT_MODEL, label="Model (tier or GGUF)",
                                info="Loaded when the next question is asked.", elem_id="model")
            temperature = gr.Slider(0.0, 1.5, value=s.temperature, step=0.05, label="Temperature",
                                    elem_id="temperature")
            save = gr.Checkbox(value=s.save_history, label="Save conversations", elem_id="save-history",
                               info=f"Each answer is kept in {history_path(s)} on this machine; "
                                    "off, nothing is stored.")

        conversations_sidebar(app, SavedConversations(backend, tuple(models)), (chatbot, turns, sources, question),
                              save, [question.submit, ask_button.click], [top_k, model, temperature, collection],
                              [clear_button.click, chatbot.clear], (model, collection), **answering)
        clear_button.click(lambda: ([], [], NO_SOURCES, ""), None, [chatbot, turns, sources, question],
                           api_visibility="private", queue=False)
        chatbot.clear(lambda: ([], NO_SOURCES), None, [turns, sources], api_visibility="private", queue=False)
        upload.upload(backend.add_files, [upload, collection], [upload_status, documents, to_remove],
                      api_visibility="private", **documents_lane).success(
            lambda: None, None, upload, api_visibility="private", queue=False)
        remove_button.click(backend.remove, [to_remove, collection], [upload_status, documents, to_remove],
                            api_visibility="private", **documents_lane)
        app.load(backend.collections_view, None, collection, api_visibility="private", queue=False).then(
            backend.documents_view, collection, [documents, to_remove], api_visibility="private")
        app.load(None, None, None, js=CITATION_CLICKS_JS)
        # Another collection: a chat about other documents starts afresh.
        collection.change(backend.collection_changed, [collection, turns], [chatbot, turns, sources],
                          api_visibility="private", queue=False).then(
            backend.documents_view, collection, [documents, to_remove], api_visibility="private")
        gr.api(backend.ask, api_name="ask", **answering)
    app.rag_files = file_endpoint(backend)  # served by serve() at FILE_ROUTE
    return app


def serve(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          token: str = "", max_upload_mb: int = 20, allow_hosts: tuple[str, ...] = (),
          block: bool = True) -> uvicorn.Server:
    """Serve the app: queue on, no share link, no run history, a login if `auth` is given, else the
    `token` if one is; uploads past `max_upload_mb` are refused while they arrive.

    Every request must name this server in `Host` (the loopback names, `host`, `allow_hosts`) and
    not come from another site's page (see rag/webguard.py). With `block` False the server runs in
    a thread until its `should_exit` is set.
    """
    from fastapi import FastAPI

    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if hasattr(app, "rag_files"):
        root.add_api_route(FILE_ROUTE, app.rag_files, methods=["GET"])
    gr.mount_gradio_app(root, app.queue(default_concurrency_limit=1), "/", server_name=host, server_port=port,
                        footer_links=["api"], run_history=False, auth=auth, show_error=True,
                        max_file_size=f"{max_upload_mb}mb", ssr_mode=False, enable_monitoring=False,
                        mcp_server=False)
    # The Host check, then the Origin and token checks, then the login's brake on guessing.
    if auth:
        root.add_middleware(LoginThrottle, refuse=plain_refusal)
    root.add_middleware(SameOriginGuard, token=token, cookie=f"rag-token-{port}", origin_hosts=allow_hosts,
                        hosts=allowed_hosts(host, allow_hosts), throttle=FailureThrottle())
    root.add_middleware(SecurityHeaders)
    server = uvicorn.Server(uvicorn.Config(root, host=host, port=port, log_level="warning", access_log=False))
    if block:
        server.run()
        return server
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise OSError(f"cannot serve on {host}:{port}")
        time.sleep(0.02)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the chat UI over the local index.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another name clients reach this server by, e.g. a reverse proxy's (repeatable)")
    args = parser.parse_args(argv)
    user, password = os.environ.get("RAG_UI_USER"), os.environ.get("RAG_UI_PASSWORD")
    if bool(user) != bool(password):
        print("app.py: error: set both RAG_UI_USER and RAG_UI_PASSWORD, or neither", file=sys.stderr)
        return 2
    auth = (user, password) if user else None
    if not auth and not is_loopback(args.host):
        print(f"app.py: error: --host {args.host} can be reached from other machines; "
              "set RAG_UI_USER and RAG_UI_PASSWORD to require a login", file=sys.stderr)
        return 2
    # Without a login, only this machine can connect, and the token keeps out its other users.
    try:
        token = "" if auth else check_secret(os.environ.get("RAG_UI_TOKEN") or new_secret(), "RAG_UI_TOKEN")
        pipeline = Pipeline.from_settings()
        report = pipeline.index(pipeline.indexed_roots())
    except RagError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"Index ready: {report.documents} documents, {report.chunks} chunks.")
    start_expiry(private_cache(Path(pipeline.settings.index_dir)))  # before the UI is built
    from rag.startup import start_warm

    start_warm(pipeline, sys.stdout)
    url = f"http://{bracketed(args.host)}:{args.port}/"
    if auth:
        print(f"Open {url} and log in as {user!r} with the password in RAG_UI_PASSWORD.")
    else:
        print(f"Open {url}?token={token}")
    serve(build_app(pipeline), args.host, args.port, auth, token, pipeline.settings.max_upload_mb,
          tuple(args.allow_host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
