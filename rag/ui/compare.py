"""The Summarize tab's "Compare": two documents' points where they agree, differ, or only one speaks, each
side cited to its own document (the work is `Pipeline.compare`, rag/whole/compare.py). Everything from a
document or the model is escaped here."""

from __future__ import annotations

import html
from collections.abc import Iterator

import gradio as gr

from ..errors import RagError
from ..whole.compare import Comparison, Side
from ..whole.summarize import Progress, Summary
from ..whole.terminal import duration
from ..whole.ui import cited_pages_html, marked_passage, progress_html

HEADINGS = {"agree": "Both say", "differ": "They differ", "only": "Only one says"}
EMPTY = ('<p class="rag-empty">Pick two documents, and a topic if you like: the points where they agree, differ, '
         "or only one speaks appear here, each cited to its own document.</p>")


def side_html(comparison: Comparison, side: Side) -> str:
    """One document's side of a point: its name, its sentence escaped, and the marker linking its source."""
    n = comparison.marker(side)
    return (f'<div class="rag-side"><strong>{html.escape(side.doc)}</strong>: {html.escape(side.text)} '
            f'<a class="cite" href="#cmp-{n}">[{n}]</a></div>')


def comparison_html(comparison: Comparison, pipeline=None) -> str:
    """The findings under three headings, then the sources they cite (PDF pages rendered when `pipeline`)."""
    about = f", about {comparison.about}" if comparison.about else ""
    parts = [f"<p>{html.escape(comparison.doc_a)} and {html.escape(comparison.doc_b)}{html.escape(about)}:</p>"]
    for kind, heading in HEADINGS.items():
        findings = [f for f in comparison.findings if f.kind == kind]
        items = "".join("<li>" + "".join(side_html(comparison, s) for s in (f.a, f.b) if s is not None) + "</li>"
                        for f in findings)
        parts.append(f'<h4 class="rag-{kind}">{heading} ({len(findings)})</h4>'
                     + (f"<ul>{items}</ul>" if items else '<p class="rag-empty">(none)</p>'))
    s = comparison.stats
    parts.append(f'<p class="rag-receipt">{html.escape(comparison.doc_a)}: {s["a"]["verified"]} of '
                 f'{s["a"]["sentences_chosen"]} summary sentences verified; {html.escape(comparison.doc_b)}: '
                 f'{s["b"]["verified"]} of {s["b"]["sentences_chosen"]}</p>')
    parts.extend(f'<details class="rag-source" id="cmp-{c.id}"><summary>[{c.id}] {html.escape(c.doc)}'
                 f'{" · " + html.escape(c.where()) if c.where() else ""}</summary>'
                 f'<blockquote class="rag-passage">{marked_passage(c)}</blockquote></details>'
                 for c in comparison.citations)
    if pipeline is not None:
        parts.append(cited_pages_html(pipeline, comparison.citations))
    return "".join(parts)


def compare_events(backend, doc_a: str | None, doc_b: str | None, about: str,
                   collection: str | None) -> Iterator[str]:
    """Stream a comparison into the panel: each document's summary in progress, then the findings.

    The Stop button cancels this generator; each summary's finished parts stay cached for the next run.
    """
    if not doc_a or not doc_b:
        raise gr.Error("Choose two documents to compare.")
    try:
        pipeline = backend.in_collection(backend.pipeline, collection)
        job = pipeline.compare(doc_a, doc_b, about or "")
        done: list[str] = []  # what each finished summary says, shown while the next one runs
        points: list = []
        for event in job.run():
            if isinstance(event, Progress):
                points = [*points, *event.points]
                reading = html.escape(job.jobs[len(done)].source.doc)
                yield "".join(done) + f"<p>Summarizing {reading}…</p>" + progress_html(event, points)
            elif isinstance(event, Summary):
                points = []
                done.append(f"<p>Summarized {html.escape(event.doc)}: {len(event.points)} verified point(s) in "
                            f"{html.escape(duration(event.stats.get('seconds', 0)))}.</p>")
                yield "".join(done) + ("<p>Comparing…</p>" if len(done) == len(job.jobs) else "")
            elif isinstance(event, Comparison):
                yield comparison_html(event, pipeline)
    except RagError as exc:
        raise gr.Error(html.escape(str(exc))) from None


def compare_section(backend, collection, documents, serial: dict) -> None:
    """The Compare parts and events (called inside the Summarize tab); `documents` is the documents table,
    whose every change refreshes the two choices of document."""
    gr.Markdown("### Compare two documents")
    with gr.Row():
        doc_a = gr.Dropdown([], label="First document", elem_id="compare-a")
        doc_b = gr.Dropdown([], label="Second document", elem_id="compare-b")
        about = gr.Textbox(label="About (optional)", placeholder="a topic, e.g. patents", max_lines=1,
                           elem_id="compare-about")
    with gr.Row():
        start = gr.Button("Compare", variant="primary", elem_id="compare")
        stop = gr.Button("Stop", elem_id="compare-stop")
    out = gr.HTML(EMPTY, elem_id="comparison", js_on_load=None)

    def choices(chosen):
        try:
            names = [d["id"] for d in backend.in_collection(backend.pipeline, chosen).documents()]
        except RagError:
            names = []
        return gr.Dropdown(choices=names, value=None), gr.Dropdown(choices=names, value=None)

    documents.change(choices, collection, [doc_a, doc_b], api_visibility="private", queue=False)
    running = start.click(lambda a, b, t, c: (yield from compare_events(backend, a, b, t, c)),
                          [doc_a, doc_b, about, collection], out, api_visibility="private", **serial)
    stop.click(None, None, None, cancels=[running], api_visibility="private", queue=False)
