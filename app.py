"""The web UI: chat with cited answers, a sources panel, document upload and settings. `python app.py`.

The parts live in rag/ui/ (rendering, the events' backend, the conversations sidebar, Compare) and
rag/whole/ui.py (the Summarize tab, the cited PDF page, the file route); this file lays them out and serves them."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

# rag.ui comes first: it turns gradio's telemetry off before gradio loads.
from rag.ui.backend import DEFAULT_MODEL, UPLOAD_TYPES, Backend
from rag.ui.compare import compare_section
from rag.ui.conversations import SavedConversations, conversations_sidebar
from rag.ui.render import (
    ANSWER_STYLE,
    CITATION_CLICKS_JS,
    NO_SOURCES,
    SENTENCE_STYLE,
    SOURCES_CSS,
    answer_html,
    chat_messages,
    documents_html,
    receipt_line,
    sources_html,
    support_badge,
)
from rag.ui.watching import Watchers

# isort: split
import gradio as gr
import uvicorn

from rag.access import FailureThrottle, LoginThrottle, check_secret, new_secret
from rag.errors import RagError
from rag.history import history_path
from rag.pipeline import Pipeline
from rag.webcache import private_cache, start_expiry
from rag.webguard import SameOriginGuard, SecurityHeaders, allowed_hosts, bracketed, is_loopback, plain_refusal
from rag.whole.ui import FILE_ROUTE, file_endpoint, summarize_tab

__all__ = ["ANSWER_STYLE", "DEFAULT_MODEL", "NO_SOURCES", "SENTENCE_STYLE", "UPLOAD_TYPES", "Backend",
           "SavedConversations", "answer_html", "build_app", "chat_messages", "documents_html", "main",
           "receipt_line", "serve", "sources_html", "support_badge"]


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
                    ask_about = gr.Dropdown([], value=[], multiselect=True, label="Ask about", elem_id="ask-about",
                                            info="Only these documents are searched; none picked: all of them.")
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
            watch = gr.Checkbox(False, label="Keep this collection in step with its folders", elem_id="watch",
                                info="The folders it was indexed from (rag index FOLDER): new, changed, deleted "
                                     "and renamed files show in the next answer; documents added here stay.")
        with gr.Tab("Summarize"):
            summarize_tab(backend, collection, documents, serial)
            compare_section(backend, collection, documents, serial)
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
                              save, [question.submit, ask_button.click],
                              [top_k, model, temperature, collection, ask_about],
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
        # The documents table changes with the collection, an upload and a removal: so does the picker.
        documents.change(backend.picker_view, [collection, ask_about], ask_about, api_visibility="private",
                         queue=False)
        app.load(None, None, None, js=CITATION_CLICKS_JS)
        # Another collection: a chat about other documents starts afresh.
        collection.change(backend.collection_changed, [collection, turns], [chatbot, turns, sources],
                          api_visibility="private", queue=False).then(
            backend.documents_view, collection, [documents, to_remove], api_visibility="private")
        watchers = app.rag_watchers = Watchers(backend)
        watch.input(watchers.set, [watch, collection], watch, api_visibility="private", **documents_lane).then(
            backend.documents_view, collection, [documents, to_remove], api_visibility="private")
        collection.change(watchers.is_on, collection, watch, api_visibility="private", queue=False)
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
