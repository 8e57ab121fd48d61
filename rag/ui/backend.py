"""What the UI's events do, on one shared pipeline: answer, switch model or collection, add and remove
documents."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from ..errors import RagError
from ..history import collection_label
from ..pipeline import Pipeline, clean_question, upload_name
from ..records import Answer
from ..whole.ui import cited_page_views
from .render import NO_SOURCES, answer_html, chat_messages, documents_html, error_toast, sources_html, watched_html

DEFAULT_MODEL = "default tier"
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".odt", ".epub", ".rtf"]


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

    def respond(self, question: str, turns: list[dict], top_k: int, model: str, temperature: float,
                collection: str | None = None, documents: list[str] | None = None) -> Iterator[tuple]:
        """Stream an answer into the chat: the model's draft first, then the verified answer and sources.

        `documents` are the ids the "Ask about" picker holds: only they are searched (none: all of them).
        """
        try:
            question = clean_question(question)
            pipeline = self.pipeline_for(model, temperature, collection)
            chosen = exact_names(documents)
            about = collection_label(pipeline.settings)
            history = [m for t in turns if "answer" in t for m in (
                {"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["answer"]})]
            turns = [*turns, {"question": question}]
            draft = ""
            yield chat_messages(turns, draft), turns, gr.skip(), ""
            for item in pipeline.stream(question, history, int(top_k), chosen):
                if isinstance(item, Answer):
                    turns[-1] = {"question": question, "answer": item.text, "html": answer_html(item), "record": item,
                                 "collection": about}
                    sources = sources_html(item, cited_page_views(pipeline, item.citations))
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

    def ask(self, question: str, documents: list[str] | None = None) -> dict:
        """Answer one question with the current settings, from `documents` only when given (names or glob
        patterns, as `rag ask --doc` takes); the JSON of the verified Answer."""
        try:
            return self.pipeline.ask(question, documents=documents or None).to_dict()
        except RagError as exc:
            raise error_toast(exc) from None

    def documents_view(self, collection: str | None = None) -> tuple:
        """The collection's watched folders and documents table, and the remove dropdown, as they are now."""
        from rag.index.collections import collection_dir, read_watch_state

        try:
            pipeline = self.in_collection(self.pipeline, collection)
            docs = pipeline.documents()
            watch = read_watch_state(collection_dir(pipeline.settings))
        except RagError as exc:
            raise error_toast(exc) from None
        return watched_html(watch) + documents_html(docs), gr.Dropdown(choices=[d["id"] for d in docs], value=None)

    def picker_view(self, collection: str | None = None, chosen: list[str] | None = None) -> gr.Dropdown:
        """The "Ask about" picker: the collection's documents, keeping those of `chosen` still indexed."""
        try:
            ids = [d["id"] for d in self.in_collection(self.pipeline, collection).documents()]
        except RagError:
            ids = []
        return gr.Dropdown(choices=ids, value=[d for d in chosen or [] if d in ids], multiselect=True)

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


def exact_names(ids: list[str] | None) -> list[str] | None:
    """Document ids as patterns that match only themselves (an id may hold `*`, `?` or `[`)."""
    import glob

    return [glob.escape(i) for i in ids] if ids else None


def discard_upload(path: Path) -> None:
    """Delete Gradio's copy of an uploaded file, and its folder once empty: the index keeps its own copy."""
    import gradio.utils

    if path.resolve().is_relative_to(Path(gradio.utils.get_upload_folder()).resolve()):
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
