"""The web UI's whole-document parts: the Summarize tab, a cited PDF page in the sources panel, and the
route that opens an indexed PDF at a page. Everything from a document or the model is escaped here."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ..errors import RagError
from ..records import Citation
from .summarize import Progress, Summary
from .terminal import duration

FILE_ROUTE = "/rag/file"
PAGE_STYLE = "max-width:100%;border:1px solid #d1d5db;margin-top:6px"


# --- rendering --------------------------------------------------------------------------------------
def file_link(doc: str, collection: str, page: int | None) -> str:
    """The escaped href that opens an indexed PDF at its page: /rag/file?doc=…&collection=…#page=N."""
    href = f"{FILE_ROUTE}?doc={quote(doc, safe='')}&collection={quote(collection or '', safe='')}"
    return html.escape(href + (f"#page={page}" if page else ""), quote=True)


def cited_page_html(citation: Citation, pdf_path: Path, collection: str = "") -> str:
    """A PDF citation's page as an image with the cited sentence boxed, and a link to the file at that page."""
    from .pages import render_cited_page

    a, b = citation.highlight or (citation.start, citation.end)
    quote_text = citation.text[a - citation.start:b - citation.start]
    page = citation.page or 1
    try:
        rendered = render_cited_page(pdf_path, page, quote_text)
        if not rendered.boxes and citation.page:  # a passage that runs onto the next page
            following = render_cited_page(pdf_path, page + 1, quote_text)
            rendered = following if following.boxes else rendered
    except (RagError, OSError) as exc:
        return f'<p class="rag-empty">The page cannot be shown: {html.escape(str(exc))}</p>'
    note = "" if rendered.boxes else " (the cited words were not found on the page: it is shown unmarked)"
    image = base64.b64encode(rendered.png).decode("ascii")
    return (f'<div class="rag-page-view"><img alt="page {rendered.page} of {html.escape(citation.doc)}" '
            f'src="data:image/png;base64,{image}" style="{PAGE_STYLE}">'
            f'<p><a href="{file_link(citation.doc, collection, rendered.page)}" target="_blank" rel="noopener">'
            f"Open {html.escape(citation.doc)} at page {rendered.page}</a>{html.escape(note)}</p></div>")


def cited_page_views(pipeline, citations) -> dict[int, str]:
    """The page of each PDF citation, rendered with its sentence boxed, by citation number."""
    pdfs = [c for c in citations if c.doc.lower().endswith(".pdf")]
    if not pdfs:
        return {}
    paths = {d["id"]: Path(d["path"]) for d in pipeline.documents()}
    collection = pipeline.settings.collection
    return {c.id: cited_page_html(c, paths[c.doc], collection) for c in pdfs if c.doc in paths}


def cited_pages_html(pipeline, citations) -> str:
    """The pages of the PDF citations, one block each (nothing when none is a PDF)."""
    views = cited_page_views(pipeline, citations)
    return "".join(f'<details class="rag-source" open><summary>[{c.id}] {html.escape(c.doc)}, page '
                   f'{c.page or 1}</summary>{views[c.id]}</details>' for c in citations if c.id in views)


def marked_passage(c: Citation) -> str:
    """The passage, escaped, with the sentence that backs the summary in <mark>."""
    a, b = c.highlight or (c.start, c.start)
    a, b = a - c.start, b - c.start
    return f"{html.escape(c.text[:a])}<mark>{html.escape(c.text[a:b])}</mark>{html.escape(c.text[b:])}"


def summary_html(summary: Summary, pipeline=None) -> str:
    """The summary, each sentence with its linked marker, then the sources it cites (PDF pages rendered)."""
    if not summary.points:
        return '<p class="rag-empty">No sentence of the summary passed the verifier.</p>'
    sentences = []
    for p in summary.points:
        n = summary.marker(p)
        text = html.escape(p.text.rstrip())
        end = text[-1] if text[-1] in ".!?" else ""
        sentences.append(f'<span>{text[:-1] if end else text} <a class="cite" href="#sum-{n}">[{n}]</a>'
                         f"{end}</span>")
    s = summary.stats
    status = (f"{s['verified']} of the {s['sentences_chosen']} sentences chosen from the document verified, "
              f"{s['dropped']} dropped · {duration(s['seconds'])}")
    if not summary.complete:
        status += f" · stopped after {s['parts_done']} of {s['parts']} parts"
    sources = "".join(f'<details class="rag-source" id="sum-{c.id}"><summary>[{c.id}] {html.escape(c.doc)}'
                      f'{" · " + html.escape(c.where()) if c.where() else ""}</summary>'
                      f'<blockquote class="rag-passage">{marked_passage(c)}</blockquote></details>'
                      for c in summary.citations)
    pages = cited_pages_html(pipeline, summary.citations) if pipeline is not None else ""
    return (f'<div class="rag-summary">{" ".join(sentences)}</div><p class="rag-receipt">{html.escape(status)}</p>'
            f"{sources}{pages}")


def progress_html(event: Progress, points) -> str:
    """Where a summary is: a bar, the time left, and the verified sentences so far."""
    left = f", about {duration(event.eta)} left" if event.eta else ""
    done = "".join(f"<li>{html.escape(p.text)}</li>" for p in points)
    return (f'<progress max="{event.total}" value="{event.done}"></progress> '
            f"<span>{event.done} of {event.total} steps{html.escape(left)}</span><ul>{done}</ul>")


# --- the events -------------------------------------------------------------------------------------
def summarize_events(backend, doc: str | None, length: str, collection: str | None) -> Iterator[str]:
    """Stream a summary into the panel: the time it will take, progress with verified sentences, the result.

    The Stop button cancels this generator; the panel keeps the verified sentences shown so far.
    """
    import gradio as gr

    if not doc:
        raise gr.Error("Choose a document to summarize.")
    try:
        pipeline = backend.in_collection(backend.pipeline, collection)
        job = pipeline.summarize(doc, length or "short")
        estimate = job.estimate()
        yield (f"<p>Summarizing {html.escape(job.source.doc)}: {len(job.parts)} part(s)"
               + (f", about {duration(estimate)}" if estimate is not None else "") + "…</p>")
        points = []
        for event in job.run():
            if isinstance(event, Progress):
                points = [*points, *event.points]
                yield progress_html(event, points)
            elif isinstance(event, Summary):
                yield summary_html(event, pipeline)
    except RagError as exc:
        raise gr.Error(html.escape(str(exc))) from None


def summarize_tab(backend, collection, documents, serial: dict) -> None:
    """The Summarize tab's parts and events (called inside a `gr.Tab`); `documents` is the documents table,
    whose every change refreshes the choice of document."""
    import gradio as gr

    with gr.Row():
        doc = gr.Dropdown([], label="Document", elem_id="summarize-doc")
        length = gr.Radio(["short", "long"], value="short", label="Length", elem_id="summarize-length")
    with gr.Row():
        start = gr.Button("Summarize", variant="primary", elem_id="summarize")
        stop = gr.Button("Stop", elem_id="summarize-stop")
    out = gr.HTML('<p class="rag-empty">A cited summary of the chosen document appears here; every sentence '
                  "is checked against the document.</p>", elem_id="summary", js_on_load=None)

    def choices(chosen):
        try:
            names = [d["id"] for d in backend.in_collection(backend.pipeline, chosen).documents()]
        except RagError:
            names = []
        return gr.Dropdown(choices=names, value=None)

    documents.change(choices, collection, doc, api_visibility="private", queue=False)
    running = start.click(lambda d, n, c: (yield from summarize_events(backend, d, n, c)),
                          [doc, length, collection], out, api_visibility="private", **serial)
    stop.click(None, None, None, cancels=[running], api_visibility="private", queue=False)


# --- the file route -----------------------------------------------------------------------------------
def file_endpoint(backend):
    """GET /rag/file?doc=NAME&collection=C: an indexed PDF of that collection, by its id in the index,
    never by a path the client names (guarded like every route of the app)."""
    from starlette.responses import FileResponse, PlainTextResponse

    def endpoint(doc: str, collection: str = ""):
        try:
            pipeline = backend.in_collection(backend.pipeline, collection)
            entry = {d["id"]: d for d in pipeline.documents()}.get(doc)
        except RagError as exc:
            return PlainTextResponse(str(exc), 400)
        if entry is None or not doc.lower().endswith(".pdf") or not Path(entry["path"]).is_file():
            return PlainTextResponse("no such indexed PDF", 404)
        return FileResponse(entry["path"], media_type="application/pdf",
                            headers={"Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})

    return endpoint
