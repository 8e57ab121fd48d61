"""The `rag` command: index, search, ask, chat, eval, bench. A thin shell over `Pipeline`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .console import erase_lines, print_streamed  # noqa: F401 - erase_lines is part of the CLI's API
from .errors import RagError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"rag: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rag", description="Ask questions of your own documents, offline, "
                     "with every claim cited.")
    parser.add_argument("--config", help="a TOML settings file (default: $RAG_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p, index=True, model=False, collection=True):
        if index:
            p.add_argument("--index-dir", help="index directory (default: index/, or $RAG_INDEX_DIR)")
        if index and collection:
            p.add_argument("--collection", help="a named collection, its own index (default: the default "
                           "collection, or $RAG_COLLECTION; `rag collections` lists them)")
        if model:
            p.add_argument("--model", help="a model tier (see `rag models`) or a GGUF file "
                           "(default: $RAG_MODEL, else the default tier)")
            p.add_argument("-k", "--top-k", type=int, help="passages to retrieve")
        return p

    p = common(sub.add_parser("index", help="index files and folders (default: corpus/)"))
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p.add_argument("--no-ocr", dest="ocr", action="store_false", default=None,
                   help="skip the pages of scanned PDFs instead of reading them with OCR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="keep indexing: follow the folders' changes, deletions "
                   "and renames until interrupted (docs/watch.md)")
    p.add_argument("--rescan", type=float, default=300.0, metavar="SECONDS",
                   help="with --watch: sync this often even without file system events (default: 300)")

    def doc(p):
        p.add_argument("--doc", action="append", metavar="NAME", help="only this document (a name or a glob "
                       "pattern such as '*.pdf'; repeat for several)")

    p = common(sub.add_parser("search", help="show the passages retrieved for a query"))
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    doc(p)

    p = common(sub.add_parser("ask", help="answer a question (`-` reads one per line from stdin)"), model=True)
    p.add_argument("question")
    p.add_argument("--json", action="store_true")
    doc(p)

    p = common(sub.add_parser("summarize", help="a cited, verified summary of one indexed document"), model=True)
    p.add_argument("doc", help="the document's name, as `rag search` shows it")
    p.add_argument("--length", choices=["short", "long"], default="short")
    p.add_argument("--json", action="store_true")

    p = common(sub.add_parser("compare", help="where two indexed documents agree, differ, or only one speaks"),
               model=True)
    p.add_argument("doc_a")
    p.add_argument("doc_b")
    p.add_argument("--about", default="", help="compare only what each says about this topic")
    p.add_argument("--length", choices=["short", "long"], default="long")
    p.add_argument("--json", action="store_true")

    p = common(sub.add_parser("chat", help="an interactive chat that keeps history"), model=True)
    p.add_argument("--resume", action="store_true", help="continue the last saved conversation")
    doc(p)

    p = common(sub.add_parser("history", help="list the saved conversations; export one as Markdown"))
    actions = p.add_subparsers(dest="action", parser_class=_Parser)
    a = actions.add_parser("export", help="print a saved conversation as Markdown, with its sources")
    a.add_argument("id", type=int, help="the conversation's number, as `rag history` lists it")
    a.add_argument("-o", "--out", type=Path, help="write to this file instead of stdout")
    a.add_argument("--index-dir", default=argparse.SUPPRESS, help="index directory (default: index/)")

    p = common(sub.add_parser("eval", help="run the eval suite and write reports"), model=True, collection=False)
    p.add_argument("--set", action="append", help="an eval set to run: news, pydocs (default: both)")
    p.add_argument("--split", choices=["report", "tune", "all", "sealed"], default="all",
                   help="which half of each set to run (metrics are shown for the report half); all is tune and "
                        "report; sealed runs only the sealed items, into eval/reports/sealed/")
    p.add_argument("--per-set", type=int, help="N items of each set, spread evenly over it (after --split)")
    p.add_argument("--dataset", type=Path, help="a JSONL dataset of your own (with --corpus)")
    p.add_argument("--corpus", type=Path, help="the folder --dataset's quotes point into (default: corpus/)")
    p.add_argument("--context", choices=["sentences", "chunks"], help="what the model reads (default: sentences)")
    p.add_argument("--limit", type=int, help="only the first N items of each set")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--out", type=Path, help="report directory (default: eval/reports)")
    p.add_argument("--no-gate", action="store_true", help="don't fail on thresholds")
    p.add_argument("--gate", action="store_true",
                   help="run only the items of eval/gate.json and fail when too many flip (what CI runs)")
    p.add_argument("--gate-file", type=Path,
                   help="with --gate: run these items instead (`python -m rag.evaluation.gate_pool` writes candidates)")
    p.add_argument("--index-root", type=Path, help="keep each set's index here, to share between runs")

    p = sub.add_parser("calibrate", help="fit the abstention score on the tune half of an eval report")
    p.add_argument("report", nargs="*", default=["eval/reports/eval.json"],
                   help="one or more eval.json files from `rag eval` (e.g. one per set), fitted together")
    p.add_argument("--tier", help="the model tier to save the weights for (default: the report's)")
    p.add_argument("--bias-only", action="store_true",
                   help="fit only the yes/no bias; keep the tier's fitted weights and threshold")

    p = sub.add_parser("collections", help="list the collections; `remove NAME` deletes one")
    p.add_argument("--index-dir", help="index directory (default: index/, or $RAG_INDEX_DIR)")
    p.add_argument("--json", action="store_true")
    actions = p.add_subparsers(dest="action", parser_class=_Parser)
    a = actions.add_parser("remove", help="delete a named collection's index (the others are untouched)")
    a.add_argument("name")
    a.add_argument("--index-dir", default=argparse.SUPPRESS, help="index directory (as before `remove`)")

    p = sub.add_parser("serve", help="an OpenAI-compatible API over the collections (/v1/chat/completions)")
    p.add_argument("--index-dir", help="index directory (default: index/, or $RAG_INDEX_DIR)")
    p.add_argument("--model", help="a model tier (see `rag models`) or a GGUF file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1); "
                   "off loopback $RAG_API_KEY must be set")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--no-auth", action="store_true", help="ask for no API key (loopback only); by default "
                   "clients send $RAG_API_KEY, or the key made for the run (printed, and in INDEX_DIR/api-key)")

    p = common(sub.add_parser("mcp", help="the tools search, fetch, ask and list_collections for AI assistants "
                              "(Model Context Protocol) over stdio, or Streamable HTTP with --http"), model=True)
    p.add_argument("--http", action="store_true", help="serve Streamable HTTP at /mcp instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="with --http: address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="with --http: port (default: 8765)")
    p.add_argument("--no-auth", action="store_true", help="with --http on loopback: ask no key")

    p = sub.add_parser("bench", help="measure speed against the raw libraries")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tiny", action="store_true", help="smallest sizes (a smoke test)")
    p.add_argument("--answers", action="store_true",
                   help="only the answers section: first token against raw llama.cpp, seconds per answer, "
                   "why against short, the web UI against the CLI")
    p.add_argument("--embedders", action="store_true",
                   help="only the embedder table: speed, cosine to fp32 and recall@5 of each candidate")
    p.add_argument("--summary", action="store_true",
                   help="only the summary section: seconds per page of a cited summary against reading it once")
    p.add_argument("--summary-doc", type=Path, help="with --summary: the document to summarize "
                   "(default: the bundled corpus's xi-global-ai-collaboration.txt)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="report directory (default: eval/reports)")
    p.add_argument("--scale", type=int, metavar="N",
                   help="only the scale section: the index at N synthetic chunks (docs/scale-10m.md)")
    p.add_argument("--scale-backend", choices=["faiss", "postgres", "both", "ivfpq"], default="both",
                   help="ivfpq: the measured point of docs/scale-10m.md (not the product's index)")
    p.add_argument("--scale-queries", type=int, default=200, help="timed queries, also the recall probes")
    p.add_argument("--scale-pg-url", help="a PostgreSQL with pgvector to use (default: start the embedded one)")

    p = sub.add_parser("models", help="list the model tiers; install or verify them")
    p.add_argument("--json", action="store_true")
    actions = p.add_subparsers(dest="action", parser_class=_Parser)
    a = actions.add_parser("install", help="download, join and verify a tier (default: the default tier)")
    a.add_argument("name", nargs="?", default="")
    a.add_argument("--force", action="store_true", help="download and join again even if installed")
    a.add_argument("--all", action="store_true", help="install every tier")
    a = actions.add_parser("verify", help="re-hash a tier's file (default: every installed tier)")
    a.add_argument("name", nargs="?", default="")
    a = actions.add_parser("bench", help="measure this machine's prompt and decode speed for each installed "
                           "tier again (a few seconds each; kept in models/speed.json)")
    a.add_argument("name", nargs="?", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _pipeline(args):
    from .config import Settings
    from .pipeline import Pipeline

    settings = Settings.load(args.config, index_dir=getattr(args, "index_dir", None),
                             model=getattr(args, "model", None), top_k=getattr(args, "top_k", None),
                             context=getattr(args, "context", None), collection=getattr(args, "collection", None),
                             ocr=getattr(args, "ocr", None))
    from .index.collections import check_name

    check_name(settings.collection)  # a bad name fails now, before any model loads
    if getattr(args, "model", None):
        from .answer.models import resolve_model

        resolve_model(settings.model)  # a bad --model fails now, not after retrieval
    return Pipeline(settings)


def cmd_index(args) -> int:
    for path in args.paths:
        if not path.exists():
            raise RagError(f"{path}: no such file or directory")
    if args.watch:
        return _watch(args)
    report = _pipeline(args).index(args.paths or None, rebuild=args.rebuild,
                                   progress=not args.json)
    return print_report(report, args.json)


def _watch(args) -> int:
    from .config import PROJECT_ROOT
    from .watch import run_watch

    if args.rebuild or args.rescan <= 0:
        raise RagError("--watch takes no --rebuild (run it on its own first), and --rescan must be positive")
    return run_watch(_pipeline(args), args.paths or [PROJECT_ROOT / "corpus"],
                     lambda r: print_report(r, args.json), args.rescan)


def print_report(report, as_json: bool = False) -> int:
    """Print what an index run did (skipped files on stderr); 2 when files were skipped, else 0."""
    # Skipped files are bad input: the rest is indexed and committed, and the exit code says so.
    status = 2 if report.skipped else 0
    for s in report.skipped:
        print(f"rag: skipped {s.path!r}: {s.reason}", file=sys.stderr)
    if as_json:
        print(json.dumps(report.to_dict()), flush=True)
        return status
    d = report.to_dict()
    print(f"{d['documents']} documents, {d['chunks']} chunks: {d['added']} added, {d['updated']} updated, "
          f"{d['removed']} removed, {d['unchanged']} unchanged, {len(report.skipped)} skipped "
          f"({report.embedded} chunks embedded in {report.seconds:.1f}s, {report.commits} commit"
          f"{'' if report.commits == 1 else 's'}"
          f"{'; resumed an interrupted run' if report.resumed else ''})", flush=True)
    return status


def cmd_search(args) -> int:
    if args.k < 1:
        raise RagError("-k must be at least 1")
    hits = _pipeline(args).search(args.query, args.k, documents=args.doc)
    if args.json:
        print(json.dumps({"query": args.query, "hits": [
            {"rank": h.rank, "score": round(h.score, 6), "dense": _round(h.dense),
             "lexical": _round(h.lexical), "doc": h.chunk.doc_id, "page": h.chunk.page,
             "location": h.chunk.location,
             "start": h.chunk.start, "end": h.chunk.end, "text": h.chunk.text} for h in hits]},
            ensure_ascii=False))
        return 0
    for h in hits:
        page = f" p.{h.chunk.page}" if h.chunk.page else f" ({h.chunk.location})" if h.chunk.location else ""
        print(f"{h.rank}. {h.chunk.doc_id}{page} [{h.chunk.start}:{h.chunk.end}] "
              f"score={h.score:.4f} dense={h.dense:.3f} bm25={h.lexical:.2f}")
        print("   " + " ".join(h.chunk.text.split()))
    return 0


def _round(x):
    return None if x is None else round(x, 4)


def cmd_ask(args) -> int:
    pipeline = _pipeline(args)
    if args.question == "-":
        status = 0
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer = pipeline.ask(line.strip(), documents=args.doc)
            except RagError as exc:
                print(f"rag: error: {exc}", file=sys.stderr)
                status = 2
                continue
            print(json.dumps(answer.to_dict(), ensure_ascii=False) if args.json else answer.text, flush=True)
        return status
    if args.json:
        print(json.dumps(pipeline.ask(args.question, documents=args.doc).to_dict(), ensure_ascii=False))
        return 0
    print_streamed(pipeline, args.question, [], args.doc)
    return 0


def _resume_collection(args, settings, saved: str) -> str:
    """The collection a resumed chat goes on in: the saved conversation's, when no collection was
    chosen (flag, $RAG_COLLECTION or the config) and it still exists; "" to stay as it is."""
    from .index.collections import check_name, collection_names, display_name

    if args.collection is not None or settings.collection:
        return ""
    try:
        name = check_name(saved)
    except RagError:
        return ""
    return name if name and display_name(name) in collection_names(settings) else ""


def cmd_summarize(args) -> int:
    from .whole.terminal import announce, print_summary, run_with_progress

    job = _pipeline(args).summarize(args.doc, args.length)
    announce(job)
    summary, interrupted = run_with_progress(job)
    print_summary(summary, args.json)
    return 130 if interrupted else 0


def cmd_compare(args) -> int:
    from .whole.terminal import compare_in_terminal

    return compare_in_terminal(_pipeline(args).compare(args.doc_a, args.doc_b, args.about, args.length), args.json)


def cmd_chat(args) -> int:
    from .history import History, collection_label, model_label, turns_count

    pipeline = _pipeline(args)
    settings = pipeline.settings
    saved = History.for_settings(settings)
    history: list[dict] = []
    conversation = latest = None
    switched = ""
    if args.resume:
        latest = saved.latest()
        if latest is None:
            raise RagError(f"no saved conversation to resume in {saved.path}")
        turns = saved.turns(latest.id)
        conversation = latest.id
        history = [m for t in turns for m in ({"role": "user", "content": t.question},
                                              {"role": "assistant", "content": t.answer.text})]
        switched = _resume_collection(args, settings, latest.collection)
        if switched:
            pipeline = _pipeline(argparse.Namespace(**{**vars(args), "collection": switched}))
            settings = pipeline.settings
    from .startup import start_warm

    print("Ask about your documents. An empty line or Ctrl-D quits; /clear forgets the history.")
    if latest:
        print(f"resuming: {latest.title} ({turns_count(len(turns))})"
              + (f", in collection {switched!r}" if switched else ""))
    start_warm(pipeline, sys.stdout)  # what an answer costs here, after what the chat is
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            print()
            return 0
        if not question:
            return 0
        if question == "/clear":
            history.clear()
            conversation = None
            continue
        try:
            answer = print_streamed(pipeline, question, history, args.doc)
        except RagError as exc:
            print(f"rag: error: {exc}", file=sys.stderr)
            continue
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
        if settings.save_history:
            try:
                conversation = saved.save_turn(conversation, answer, model_label(settings),
                                               collection_label(settings))
            except RagError as exc:
                print(f"rag: error: {exc}", file=sys.stderr)


def cmd_history(args) -> int:
    from .config import Settings
    from .history import History, turns_count, when

    saved = History.for_settings(Settings.load(args.config, index_dir=args.index_dir))
    if args.action == "export":
        text = saved.export_markdown(args.id)
        if args.out:
            try:
                args.out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise RagError(f"cannot write {args.out}: {exc.strerror or exc}") from None
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0
    conversations = saved.conversations()
    if not conversations:
        print(f"No saved conversations in {saved.path}.")
    for c in conversations:
        print(f"{c.id:>4}  {when(c.updated)}  {turns_count(c.turns):>8}  {c.collection}  {c.title}")
    return 0


def cmd_eval(args) -> int:
    from .evaluation.evaluate import run_eval

    return run_eval(_pipeline(args), args)


def cmd_calibrate(args) -> int:
    from .evaluation.calibrate import run_calibrate

    return run_calibrate(args)


def cmd_bench(args) -> int:
    if args.scale:
        from .bench.scale import run_scale

        return run_scale(args)
    from .bench.run import run_bench

    return run_bench(args)


def cmd_models(args) -> int:
    from .answer import models

    if args.action == "install":
        if args.all and args.name:
            raise RagError("give a tier name or --all, not both")
        tiers = models.TIERS if args.all else [models.get_tier(args.name or models.DEFAULT_TIER)]
        for tier in tiers:
            already = models.is_installed(tier) and not args.force
            path = models.install(tier.name, force=args.force, progress=sys.stderr.isatty())
            print(f"{tier.name}: {'already installed' if already else 'installed'} at {path}")
        from .index.quantized import Int8Embedder

        # The default embedder's int8 file is made from the bundled weights once per machine (about 30 s):
        # here, rather than in the first `rag index`.
        embedder = Int8Embedder()
        made = not embedder.model_path.is_file()
        embedder.session  # noqa: B018 (made and loaded once)
        print(f"embedder: {'made' if made else 'already made'} at {embedder.model_path}")
        return 0
    if args.action == "verify":
        names = [args.name] if args.name else [t.name for t in models.TIERS if models.is_installed(t)]
        for name in names:
            print(f"{name}: verified {models.verify(name)}")
        return 0
    if args.action == "bench":
        from .answer import speed
        from .config import Settings

        threads = Settings.load(args.config).threads
        for name in [args.name] if args.name else [t.name for t in models.TIERS if models.is_installed(t)]:
            figures = speed.measure_tier(name, threads)
            print(f"{name}: {figures['prompt_tok_s']:.1f} prompt / {figures['decode_tok_s']:.1f} decode tokens/s, "
                  f"about {speed.answer_seconds(figures):.1f} s an answer here")
        return 0
    rows = models.describe_tiers()
    if args.json:
        print(json.dumps({"default": models.DEFAULT_TIER, "models_dir": str(models.models_dir()),
                          "tiers": rows}))
        return 0
    print(f"{'tier':<21}{'parameters':<12}{'quant':<8}{'size':>9}  {'installed':<11}speed here")
    for row in rows:
        name = row["name"] + (" *" if row["default"] else "")
        print(f"{name:<21}{row['parameters']:<12}{row['quantization']:<8}{row['size_bytes'] / 1e6:>6.0f} MB  "
              f"{'yes' if row['installed'] else 'no':<11}{_speed(row['speed'])}")
    print(f"* default tier; models folder: {models.models_dir()}")
    return 0


def _speed(figures: dict | None) -> str:
    if not figures:
        return "not measured (rag bench)"
    return (f"{figures['decode_tok_s']:.1f} tok/s decode, {figures['prompt_tok_s']:.0f} tok/s prompt "
            f"({figures['measured']})")


def cmd_collections(args) -> int:
    from .config import Settings
    from .index import collections

    settings = Settings.load(args.config, index_dir=args.index_dir)
    if args.action == "remove":
        collections.remove_collection(settings, args.name)
        print(f"removed collection {collections.check_name(args.name)!r}")
        return 0
    rows = collections.list_collections(settings)
    if args.json:
        print(json.dumps({"collections": [r.to_dict() for r in rows]}))
        return 0
    print(f"{'collection':<24}{'documents':>10}{'chunks':>9}{'size':>11}  last indexed")
    for r in rows:
        print(f"{r.name:<24}{r.documents:>10}{r.chunks:>9}{_size(r.size_bytes):>11}  {r.last_indexed or '-'}")
    for r in rows:
        if r.watched:
            print(f"{r.name} watches {', '.join(r.watched)}: last sync {r.last_sync or '-'} "
                  f"({'watching now' if r.watching else 'not running'})")
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def cmd_mcp(args) -> int:
    from .mcp_server import run_mcp

    return run_mcp(_pipeline(args), "http" if args.http else "stdio", args.host, args.port, args.no_auth)


def cmd_serve(args) -> int:
    from .serve import run_server

    return run_server(_pipeline(args), args.host, args.port, args.no_auth)


COMMANDS = {"index": cmd_index, "search": cmd_search, "ask": cmd_ask, "summarize": cmd_summarize,
            "compare": cmd_compare, "chat": cmd_chat, "history": cmd_history,
            "eval": cmd_eval, "calibrate": cmd_calibrate, "bench": cmd_bench, "models": cmd_models,
            "collections": cmd_collections, "serve": cmd_serve, "mcp": cmd_mcp}

if __name__ == "__main__":
    sys.exit(main())
