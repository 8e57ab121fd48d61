"""`rag summarize` and `rag compare` on a terminal: the time up front, a progress bar, the cited result."""

from __future__ import annotations

import json
import sys

from .summarize import Progress, Summary, SummaryJob, with_marker


def duration(seconds: float) -> str:
    """ "2 min 5 s", "40 s"."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def announce(job: SummaryJob, out=sys.stderr) -> None:
    """What the summary will cost, before it starts: passages, parts and (when measured here) the time."""
    passages = sum(len(p) for p in job.parts)
    estimate = job.estimate()
    when = (f", about {duration(estimate)} at this machine's measured speed" if estimate is not None
            else " (speed not measured here: `rag bench` measures it)")
    print(f"Summarizing {job.source.doc}: {passages} passages, {job.prompt_tokens():,} tokens, "
          f"{len(job.parts)} part{'s' if len(job.parts) != 1 else ''}{when}", file=out, flush=True)


def run_with_progress(job: SummaryJob, out=sys.stderr) -> tuple[Summary, bool]:
    """Run the job with a progress bar on a terminal; Ctrl-C stops it and keeps what is done.

    Returns the summary and whether it was interrupted.
    """
    bar = None
    steps = job.steps()
    if out.isatty():
        from tqdm import tqdm

        bar = tqdm(total=steps, file=out, unit="step", bar_format="{desc} {n}/{total} {bar} {postfix}")
        bar.set_description_str("summarizing")
    summary, interrupted = None, False
    try:
        for event in job.run():
            if isinstance(event, Progress) and bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{event.seconds:.0f} s" + (f", about {duration(event.eta)} left"
                                                                if event.eta else ""))
            elif isinstance(event, Summary):
                summary = event
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return summary or job.summary(), interrupted


def print_summary(summary: Summary, as_json: bool = False, out=sys.stdout) -> None:
    """The summary with its sources, each quoting the sentence that backs it; or its JSON."""
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False), file=out)
        return
    print(clean(summary.text) if summary.points else "No sentence of the summary passed the verifier.", file=out)
    for c in summary.citations:
        print(source_line(c), file=out)
    s = summary.stats
    stopped = "" if summary.complete else "; interrupted: every verified sentence of the parts done"
    print(f"  ({s['sentences_chosen']} of the document's sentences chosen: {s['verified']} verified, {s['dropped']} "
          f"dropped; {s['parts_done']} of {s['parts']} parts in {duration(s['seconds'])}{stopped})", file=out)


def source_line(c) -> str:
    """ "  [1] doc, page 2, chars 10-80: “the backing sentence”" (control characters removed)."""
    where = f", {c.where()}" if c.where() else ""
    a, b = c.highlight or (c.start, c.end)
    quote = " ".join(c.text[a - c.start:b - c.start].split())
    return clean(f"  [{c.id}] {c.doc}{where}, chars {a}-{b}: “{quote}”")


def clean(text: str) -> str:
    """Text from a document or the model, safe for a terminal: escape sequences and control characters gone."""
    import unicodedata

    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) != "Cc")


def compare_in_terminal(job, as_json: bool = False, out=sys.stdout) -> int:
    """Run a CompareJob (both summaries announced, with progress) and print the findings; the exit code."""
    from .compare import Comparison

    comparison = None
    for summary_job in job.jobs:
        announce(summary_job)
    try:
        events = job.run()
        for event in events:
            if isinstance(event, Comparison):
                comparison = event
    except KeyboardInterrupt:
        print("rag: interrupted; the summaries done so far are cached, so a second run starts from there",
              file=sys.stderr)
        return 130
    print_comparison(comparison, as_json, out)
    return 0


def print_comparison(comparison, as_json: bool = False, out=sys.stdout) -> None:
    """The findings under three headings, each side with its marker, then the sources."""
    if as_json:
        print(json.dumps(comparison.to_dict(), ensure_ascii=False), file=out)
        return
    a, b = comparison.doc_a, comparison.doc_b
    headings = {"agree": "Both say", "differ": "They differ", "only": "Only one says"}
    for kind, heading in headings.items():
        findings = [f for f in comparison.findings if f.kind == kind]
        print(clean(f"{heading} ({len(findings)})" + (f", about {comparison.about}" if comparison.about else "")
                    + ":"), file=out)
        for f in findings:
            for side in (f.a, f.b):
                if side is not None:
                    print(clean(f"  {'-' if side is (f.a or f.b) else ' '} {side.doc}: "
                                f"{with_marker(side.text, comparison.marker(side))}"), file=out)
        if not findings:
            print("  (none)", file=out)
    print("Sources:", file=out)
    for c in comparison.citations:
        print(source_line(c), file=out)
    s = comparison.stats
    print(f"  ({a}: {s['a']['verified']} of {s['a']['sentences_chosen']} summary sentences verified; "
          f"{b}: {s['b']['verified']} of {s['b']['sentences_chosen']})", file=out)
