"""The conversations sidebar (rag/history.py): each answered turn saved unless turned off, listed, reopened,
renamed, deleted, exported as Markdown."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from ..errors import RagError
from ..history import History, collection_label, model_label, when
from .backend import DEFAULT_MODEL, Backend
from .render import NO_SOURCES, answer_html, chat_messages, error_toast, sources_html

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
