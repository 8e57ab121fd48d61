"""The wiring: question -> retrieval -> generation -> verification -> Answer. Every front end uses it."""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path

from .answer import prompt
from .answer.cite import INSTRUCTION, blank_instructions
from .answer.context import Receipt, fit_to_budget, sentence_windows, whole_chunks
from .answer.reader import ABSTAIN_WORD, Reader, Reading, answer_mode, load_calibration, verdict
from .answer.which import answer_which
from .config import PROJECT_ROOT, Settings
from .errors import BadInput
from .records import Answer, Chunk, Citation, Hit, render_answer
from .text import content_terms

ABSTAIN = "I can't find that in the documents."
MAX_QUESTION_CHARS = 2000
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")

_FOLLOW_UP = re.compile(r"\b(it|its|it's|they|them|their|this|that|these|those|he|she|his|her|there|"
                        r"then|the same|the former|the latter)\b|^(and|also|what about|how about)\b",
                        re.IGNORECASE)


class Pipeline:
    """Loads the models and the index lazily, and answers questions with verified citations."""

    def __init__(self, settings: Settings, embedder=None, generator=None):
        self.settings = settings
        self._embedder = embedder
        self._chosen_embedder = embedder is None  # chosen here (from the settings and the index), not given
        self._generator = generator
        self._retriever = None
        self._reader = None
        # The first requests of a served app arrive together; each part is loaded once, by one of them.
        self._loading = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides) -> Pipeline:
        """A pipeline from `Settings.load()` plus keyword overrides, e.g. `index_dir="my-index"`."""
        settings = settings.replace(**overrides) if settings else Settings.load(**overrides)
        return cls(settings)

    # --- the parts, loaded on first use -------------------------------------------------------
    @property
    def embedder(self):
        with self._loading:
            if self._embedder is None:
                from .index.embedders import open_embedder

                self._embedder = open_embedder(self.settings.embed_model, self.recorded_embedder(),
                                               self.settings.embed_threads)
        return self._embedder

    def recorded_embedder(self) -> str | None:
        """The name of the embedder the index was built with; None when there is no readable index."""
        from .errors import RagError

        try:
            store = self.store
            return store.read_manifest()[1].get("embedder") if store.exists() else None
        except RagError:
            return None  # a damaged index: loading it reports why

    @property
    def generator(self):
        with self._loading:
            if self._generator is None:
                from .answer.generate import LlamaGenerator
                from .answer.remote import RemoteGenerator

                s = self.settings
                self._generator = (RemoteGenerator.from_settings(s) if s.llm_url else
                                   LlamaGenerator(s.model, s.n_ctx, s.threads, s.temperature, s.seed))
        return self._generator

    @property
    def store(self):
        """The collection's store: files in its folder (FAISS), or its schema in PostgreSQL at `pg_url`."""
        from .index.collections import open_store

        return open_store(self.settings)

    @property
    def retriever(self):
        with self._loading:
            if self._retriever is None:
                from .index.retrieve import LocalIndex, Retriever
                from .index.store import check_compatible

                loaded = self.store.load()
                check_compatible(loaded.manifest, self.embedder.name, self.chunker)
                index = loaded if self.settings.vector_store == "postgres" else LocalIndex(loaded)
                self._retriever = Retriever(index, self.embedder, self.settings.dense_weight)
            return self._retriever

    @property
    def chunker(self) -> dict:
        return {"size": self.settings.chunk_size, "overlap": self.settings.chunk_overlap}

    # --- indexing and search ------------------------------------------------------------------
    def index(self, roots: list[Path] | None = None, rebuild: bool = False, progress: bool = False,
              exclude: set[str] = frozenset()):
        """Bring the index up to date with the roots; returns an IndexReport.

        The default roots are `corpus/` and, when it exists, the folder of documents added in the UI.
        """
        from .index.indexer import update_index

        if rebuild and self._chosen_embedder and not self.settings.embed_model:
            from .index.embedders import DEFAULT_EMBEDDER, open_embedder

            if self.embedder.name != DEFAULT_EMBEDDER:
                # A rebuilt index gets the default, not the old index's.
                self._embedder = open_embedder(threads=self.settings.embed_threads)
        uploads = [self.uploads_dir] if self.uploads_dir.is_dir() else []
        roots = [Path(r) for r in roots] if roots else [PROJECT_ROOT / "corpus", *uploads]
        report = update_index(self.store, roots, self.embedder, self.chunker, rebuild, progress, exclude,
                              limits=self.read_limits, commit_files=self.settings.commit_files,
                              commit_seconds=self.settings.commit_seconds)
        self._retriever = self._reader = None
        return report

    @property
    def read_limits(self):
        """What reading one file may cost (`ReadLimits`), from the settings."""
        from .documents.ingest import ReadLimits

        s = self.settings
        return ReadLimits(max_pdf_pages=s.max_pdf_pages, max_pdf_chars=s.max_pdf_chars,
                          seconds=s.parse_timeout, memory_mb=s.parse_memory_mb, ocr=s.ocr,
                          ocr_seconds=s.ocr_page_timeout, ocr_file_seconds=s.ocr_file_timeout,
                          ocr_cache=str(Path(s.index_dir) / "ocr-cache"), max_ocr_pages=s.max_ocr_pages)

    @property
    def upload_limits(self):
        """What reading one uploaded file may cost: fewer OCR pages, and text bounded by the file's size."""
        s = self.settings
        return replace(self.read_limits, max_ocr_pages=s.max_upload_ocr_pages, max_text_ratio=s.upload_text_ratio)

    @property
    def uploads_dir(self) -> Path:
        from .index.collections import collection_dir

        return collection_dir(self.settings) / "uploads"

    def indexed_roots(self) -> list[Path]:
        """The folders the index was last built from; before the first build, `corpus/` for the default
        collection and nothing for a named one (it starts from its own uploads alone)."""
        roots = self.store.read_manifest()[1].get("roots", []) if self.store.exists() else []
        return [Path(r) for r in roots] or ([] if self.settings.collection else [PROJECT_ROOT / "corpus"])

    def documents(self) -> list[dict]:
        """The indexed documents: id, path, sha256, chunk count, pages."""
        if not self.store.exists():
            return []
        return [{"id": doc_id, **info} for doc_id, info in self.store.read_manifest()[1]["documents"].items()]

    def add_documents(self, files: list[tuple[str, bytes]], progress: bool = False, ocr_progress=None):
        """Save uploaded (name, bytes) pairs under the index's uploads folder and index them.

        Every file is checked first (type, size, readable text); one bad file refuses the batch
        with BadInput and saves nothing. `ocr_progress(path, done, total)` hears of each scanned
        page as OCR reads it during the check (the index then finds its text in the OCR cache).
        """
        from .documents.ingest import SUFFIXES
        from .documents.isolation import IsolatedReader
        from .errors import UnreadableDocument

        saved, chars = [], 0
        with IsolatedReader(self.upload_limits, ocr_progress) as reader:
            for name, data in files:
                safe = upload_name(name)
                if not safe or safe.startswith(".") or Path(safe).suffix.lower() not in SUFFIXES:
                    raise BadInput(f"{name!r}: only {', '.join(sorted(SUFFIXES))} files can be added")
                if len(data) > self.settings.max_upload_mb * 1024 * 1024:
                    raise BadInput(f"{safe}: larger than the {self.settings.max_upload_mb} MB upload limit")
                try:
                    chars += len(reader.read(Path(safe), safe, data).text)
                except UnreadableDocument as exc:
                    raise BadInput(str(exc)) from None
                if chars > self.settings.max_upload_chars:
                    raise BadInput(f"{safe}: the files of this upload hold more than "
                                   f"{self.settings.max_upload_chars:,} characters of text together "
                                   "(max_upload_chars); add them in smaller batches")
                saved.append((safe, data))
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        for safe, data in saved:
            tmp = self.uploads_dir / f".{safe}.part"
            tmp.write_bytes(data)
            tmp.replace(self.uploads_dir / safe)
        roots = list(dict.fromkeys([*self.indexed_roots(), self.uploads_dir.resolve()]))
        return self.index(roots, progress=progress)

    def remove_document(self, doc_id: str):
        """Take a document out of the index (an uploaded copy is deleted; a corpus file is excluded)."""
        if doc_id not in {d["id"] for d in self.documents()}:
            raise BadInput(f"no indexed document {doc_id!r}")
        upload = self.uploads_dir / doc_id
        if upload.is_file() and upload.resolve().parent == self.uploads_dir.resolve():
            upload.unlink()
            return self.index(self.indexed_roots())
        return self.index(self.indexed_roots(), exclude={doc_id})

    def search(self, query: str, k: int | None = None, documents: list[str] | None = None) -> list[Hit]:
        """The top-k chunks for a query, fused from dense and lexical rankings (of `documents` only, when given)."""
        query = clean_question(query)
        chosen = self.select_documents(documents)
        return self.retriever.search(query, k or self.settings.top_k, documents=chosen)

    def select_documents(self, patterns: list[str] | None) -> frozenset[str] | None:
        """The ids of the indexed documents that names or glob patterns pick ("report.pdf", "notes/*.md");
        None when no pattern is given (every document). BadInput for a pattern that picks none."""
        if not patterns:
            return None
        ids = [d["id"] for d in self.documents()]
        chosen: set[str] = set()
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise BadInput("a document name must be non-empty text")
            pattern = pattern.strip()
            picked = {i for i in ids if fnmatchcase(i, pattern) or fnmatchcase(i.rsplit("/", 1)[-1], pattern)}
            if not picked:
                raise BadInput(f"no indexed document matches {pattern!r} ({len(ids)} documents are indexed)")
            chosen |= picked
        return frozenset(chosen)

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        """An indexed document's chunks in text order; BadInput for an id that is not indexed."""
        chunks = self.retriever.index.document_chunks(doc_id)
        if not chunks:
            raise BadInput(f"no indexed document {doc_id!r}")
        return chunks

    # --- whole documents (rag/whole/) ---------------------------------------------------------
    def source(self, name: str):
        """An indexed document read again as its passages in order (`whole.source.Source`); BadInput if unknown."""
        from .whole.source import find_document, read_source

        return read_source(find_document(self.documents(), name), self.chunker, self.read_limits)

    def summarize(self, name: str, length: str = "short", passages=None):
        """A `SummaryJob` for an indexed document: `run()` streams the verified summary (see rag/whole/)."""
        from .answer.models import read_speeds
        from .index.collections import collection_dir
        from .whole.cache import PartCache
        from .whole.summarize import SummaryJob

        source = name if hasattr(name, "passages") else self.source(name)
        return SummaryJob(source, self.generator, length, self.settings.support_threshold,
                          PartCache(collection_dir(self.settings) / "summary-cache"),
                          read_speeds().get(self.tier), passages)

    def compare(self, name_a: str, name_b: str, about: str = "", length: str = "long"):
        """A `CompareJob` for two indexed documents: agree, differ and only-one points, each side cited."""
        from .whole.compare import CompareJob, about_passages

        sources = [self.source(name) for name in (name_a, name_b)]
        if sources[0].doc == sources[1].doc:
            raise BadInput(f"compare needs two different documents, not {sources[0].doc!r} twice")
        about = clean_question(about) if about else ""
        jobs = [self.summarize(s, length, about_passages(s, about, self.relevance) if about else None)
                for s in sources]
        return CompareJob(*jobs, self.embedder.embed, about, self.settings.support_threshold)

    # --- answering ----------------------------------------------------------------------------
    def ask(self, question: str, history: list[dict] | None = None, top_k: int | None = None,
            documents: list[str] | None = None) -> Answer:
        """Answer a question; see `stream` for the steps."""
        for item in self.stream(question, history, top_k, documents):
            if isinstance(item, Answer):
                return item
        raise AssertionError("stream() ended without an Answer")

    def stream(self, question: str, history: list[dict] | None = None, top_k: int | None = None,
               documents: list[str] | None = None) -> Iterator[str | Answer]:
        """Yield the model's tokens as they come, then the grounded Answer (or an abstention) last.

        `documents` (names or glob patterns, see `select_documents`) restricts retrieval to those documents.
        """
        began = time.perf_counter()
        timings: dict[str, float] = {}
        question = clean_question(question)
        chosen = self.select_documents(documents)
        which = answer_which(self.ask, question, chosen, ABSTAIN) if chosen and not history else None
        if which is not None:
            yield which
            return
        standalone = self.rewrite_follow_up(question, bounded_history(history or []))
        if INSTRUCTION.search(question):
            yield self._abstain(question, standalone, timings, began, "refused")
            return
        t0 = time.perf_counter()
        hits = self.retriever.search(standalone, top_k or self.settings.top_k, documents=chosen)
        timings["retrieve"] = _ms(t0)
        if not hits or max(h.dense or 0.0 for h in hits) < self.settings.min_relevance:
            yield self._abstain(question, standalone, timings, began, "low relevance")
            return
        mode = answer_mode(standalone)
        if mode == "yesno" and not self.spans:
            mode = "short"
        explain = mode == "sentence"
        passages, receipt = self.build_context(hits, standalone, mode)
        messages = self.messages(passages, standalone, mode)
        t0 = time.perf_counter()
        pieces = []
        gen = self.generator
        for piece in gen.stream(messages, self.settings.max_tokens, stop_at_newline=not explain,
                                abstain_word=ABSTAIN.split()[0] if explain else ABSTAIN_WORD,
                                **self.decoding(mode, passages, len(messages) - 1)):
            pieces.append(piece)
            timings.setdefault("first_token", _ms(began))
            yield piece
        raw = "".join(pieces)
        timings["generate"] = _ms(t0)
        receipt = replace(receipt, prompt_evaluated=getattr(gen, "last_evaluated", None),
                          prompt_cached=getattr(gen, "last_cached", None))
        t0 = time.perf_counter()
        reading = self.reader.read(standalone, raw, passages, max(h.dense or 0.0 for h in hits),
                                   getattr(gen, "last_scores", None), self.support_check(messages, raw),
                                   asked=question, choice=mode == "yesno")
        timings["check"] = _ms(t0)
        receipt = replace(receipt, check_evaluated=getattr(gen, "last_check_evaluated", None))
        if not reading.answer:
            yield self._abstain(question, standalone, timings, began, reading.mode, raw, receipt, passages, reading)
            return
        citations = tuple(_with_highlight(p, reading.evidence.get(p.id)) for p in passages if p.id in reading.evidence)
        timings["total"] = _ms(began)
        text = render_answer(reading.sentences)
        yield Answer(question=question, text=text, abstained=False, sentences=reading.sentences,
                     citations=citations, raw=raw, timings_ms=timings, mode=reading.mode,
                     standalone_question=standalone, left_out=receipt.chunks_left_out, passages=tuple(passages),
                     confidence=reading.confidence, signals=reading.signals, receipt=receipt.to_dict(),
                     candidate=text, verdict=verdict(reading.confidence, False))

    def support_check(self, messages: list[dict], raw: str):
        """The model's P(yes) that a passage says a statement, asked after its own answer (so the KV cache
        holds everything but the question); None for a generator that gives no probabilities."""
        gen = self.generator
        if not hasattr(gen, "p_yes"):
            return None

        def check(statement: str, passage: Citation) -> float:
            turn = prompt.render("check.txt", statement=prompt.as_data(statement), id=passage.id)
            return round(gen.p_yes([*messages, {"role": "assistant", "content": raw.strip()},
                                    {"role": "user", "content": turn}]), 4)

        return check

    def _abstain(self, question, standalone, timings, began, mode, raw="", receipt=None, passages=(),
                 reading: Reading | None = None) -> Answer:
        timings.setdefault("retrieve", 0.0)
        timings.setdefault("generate", 0.0)
        timings["total"] = _ms(began)
        candidate = render_answer(reading.sentences) if reading and reading.sentences else ""
        return Answer(question=question, text=ABSTAIN, abstained=True, sentences=(), citations=(), raw=raw,
                      timings_ms=timings, mode=f"abstained: {mode}", standalone_question=standalone,
                      left_out=receipt.chunks_left_out if receipt else (), passages=tuple(passages),
                      confidence=reading.confidence if reading else 0.0,
                      signals=reading.signals if reading else {}, receipt=receipt.to_dict() if receipt else {},
                      candidate=candidate, verdict=verdict(0.0, True))

    def rewrite_follow_up(self, question: str, history: list[dict]) -> str:
        """A standalone version of a follow-up question, for retrieval and for the model."""
        earlier = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
        if not earlier or not _FOLLOW_UP.search(question):
            return question
        if self.settings.rewrite_with_model:
            gen = self.generator
            options = {"keep": 1} if hasattr(gen, "remember") else {}
            rewritten = "".join(gen.stream(self.rewrite_messages(history, question), 48, **options)).strip()
            if 0 < len(rewritten) < 300 and set(content_terms(question)) <= set(content_terms(rewritten)):
                return rewritten
        # The standalone question has the question's limit: the earlier turn gives what room is left.
        room = MAX_QUESTION_CHARS - len(question) - 3
        return f"{question} ({earlier[-1][:room].rstrip()})" if room > 0 else question

    @staticmethod
    def rewrite_messages(history: list[dict], question: str) -> list[dict]:
        """The chat that asks the model for a standalone question: the fixed instruction (a kept prefix),
        then the last turns and the question."""
        return [{"role": "system", "content": prompt.read("rewrite.txt")},
                {"role": "user", "content": prompt.render("rewrite_turn.txt", history=history[-4:],
                                                          question=question)}]

    def messages(self, passages: list[Citation], question: str, mode: str = "short") -> list[dict]:
        """The chat the model reads: the mode's fixed prompt first (its KV state is kept, see `decoding`),
        then the passages and the question.

        A question that asks for a thing gets the short-answer prompt (a phrase copied from the passages,
        or NONE), a yes/no question the yes/no prompt, a why/how question the sentence prompt and examples.
        """
        return [*self.fixed_messages(mode),
                {"role": "user", "content": prompt.render(
                    "answer.txt", passages=[{"id": p.id, "text": prompt.as_data(p.text)} for p in passages],
                    question=prompt.as_data(question))}]

    @staticmethod
    def fixed_messages(mode: str) -> list[dict]:
        """The messages every question of a mode starts with."""
        if mode == "sentence":
            return [{"role": "system", "content": prompt.read("system.txt")}, *prompt.turns("examples.txt")]
        return [{"role": "system", "content": prompt.read("yesno.txt" if mode == "yesno" else "short.txt")}]

    @property
    def spans(self) -> bool:
        """Whether short answers are decoded as spans: the setting is on and the generator can constrain
        its tokens (a local model; a server decodes freely, exactly as with the setting off)."""
        return self.settings.span_answers and hasattr(self.generator, "span_vocabulary")

    def decoding(self, mode: str, passages: list[Citation], fixed: int) -> dict:
        """How the generator decodes a mode's reply: a short answer only as a span of the passages, a
        yes/no answer only as Yes, No or NONE (with the tier's calibrated bias), a why/how answer only as
        a whole sentence of the passages; the first `fixed` messages kept as a cached prefix.
        A generator without a vocabulary (a server) decodes freely and the reader grounds its reply."""
        gen = self.generator
        options = {"keep": fixed} if hasattr(gen, "remember") else {}
        if not self.spans or (mode == "sentence" and not self.settings.copy_sentences):
            return options
        from .answer.spans import ChoiceConstraint, SentenceConstraint, SpanConstraint

        if mode == "sentence":  # one whole sentence of the passages, or "I can't find that…"
            texts = [blank_instructions(p.text) for p in passages]
            return {**options, "constraint": SentenceConstraint(texts, gen.span_vocabulary, ABSTAIN.split()[0])}
        if mode == "yesno":
            bias = (self.reader.weights or {}).get("choice_bias")
            return {**options, "constraint": ChoiceConstraint(("Yes", "No", ABSTAIN_WORD), gen.span_vocabulary, bias)}
        texts = [blank_instructions(p.text) for p in passages]
        return {**options, "constraint": SpanConstraint(texts, gen.span_vocabulary, ABSTAIN_WORD)}

    def warm(self, in_background: bool = False) -> None:
        """Load the models and keep the fixed prefixes evaluated (the default mode's first), so the first
        question pays neither. `in_background`: give way to the first question as soon as it is asked."""
        gen = self.generator
        if hasattr(gen, "remember"):
            since = gen.asked if in_background else None
            for messages in self.fixed_prefixes():
                gen.remember(messages, since)
            if hasattr(gen, "span_vocabulary"):
                gen.span_vocabulary  # noqa: B018 - built once, off the first question's path
        self.retriever  # noqa: B018

    def warm_in_background(self) -> threading.Thread:
        """Start `warm` in a daemon thread (front ends, at start-up): a question asked meanwhile goes first,
        and a problem (no model, no index) is left for that question to report."""
        from .answer.speed import measure_at_start
        from .errors import RagError

        def run() -> None:
            with contextlib.suppress(RagError, OSError):
                since = getattr(self.generator, "asked", 0)
                self.warm(in_background=True)
                measure_at_start(self.generator, since)

        thread = threading.Thread(target=run, daemon=True, name="rag-warm")
        thread.start()
        return thread

    def fixed_prefixes(self) -> list[list[dict]]:
        """Every fixed prefix a question may start with, the default (short answer) mode's first."""
        prefixes = [self.fixed_messages(mode) for mode in ("short", "yesno", "sentence")]
        return prefixes + ([self.rewrite_messages([], "")[:1]] if self.settings.rewrite_with_model else [])

    def build_context(self, hits: list[Hit], question: str,
                      mode: str = "short") -> tuple[list[Citation], Receipt]:
        """The passages the model reads (sentence windows or whole chunks), fitted to its context."""
        if self.settings.context == "chunks":
            windows, sent, left = whole_chunks(hits)
        else:
            windows, sent, left = sentence_windows(hits, lambda texts: self.relevance(question, texts))
        gen = self.generator
        empty = self.messages([], question, mode)
        budget = (gen.n_ctx - self.settings.max_tokens - gen.chat_overhead(empty)
                  - sum(gen.count_tokens(m["content"]) for m in empty))
        passages, left_out = fit_to_budget(windows, budget, gen.count_tokens)
        messages = self.messages(passages, question, mode)
        tokens = sum(gen.count_tokens(m["content"]) for m in messages) + gen.chat_overhead(messages)
        return passages, Receipt(tokens, len(passages), sent, left, tuple(left_out))

    @property
    def reader(self) -> Reader:
        with self._loading:
            if self._reader is None:
                bm25 = self.retriever.bm25
                self._reader = Reader(lambda t: _idf(bm25, t), _idf_of_df(bm25.n, 0),
                                      load_calibration(self.tier), self.settings.support_threshold,
                                      self.settings.min_coverage, self.settings.measure_all_signals)
            return self._reader

    @property
    def tier(self) -> str:
        """The generation model's tier name when its file is a tier's, else its name (the calibration key)."""
        from .answer.models import tier_of

        return tier_of(getattr(self.generator, "path", None)) or self.generator.name

    def relevance(self, question: str, texts: list[str]):
        """How well each text speaks to the question: cosine similarity and IDF-weighted word overlap."""
        import numpy as np

        if not texts:
            return np.zeros(0)
        vectors = self.embedder.embed([question, *texts])
        reader = self.reader
        return 0.5 * (vectors[1:] @ vectors[0]) + 0.5 * np.array([reader.coverage(question, t) for t in texts])


def upload_name(name: str) -> str:
    """The file name an upload is saved under: no folders (so no `../`), no control characters, and no
    invisible formatting (bidi overrides such as U+202E would show "report‮fdp.txt" as "reporttxt.pdf")."""
    name = "".join(" " if unicodedata.category(ch) == "Cc" else "" if unicodedata.category(ch) == "Cf" else ch
                   for ch in Path(name.replace("\\", "/")).name)
    return " ".join(name.split())


def _idf(bm25, term: str) -> float:
    return bm25.idf(term)


def _idf_of_df(n: int, df: int) -> float:
    return math.log1p((n - df + 0.5) / (df + 0.5))


def clean_question(question: str) -> str:
    """The question with terminal escape sequences removed and other control characters turned to
    spaces; BadInput if empty or too long."""
    if not isinstance(question, str):
        raise BadInput("the question must be text")
    # A pasted colour code ("\x1b[31m") would otherwise leave "[31m", and "31" would count as a
    # number the answer's passage must hold.
    text = _ESCAPE_SEQUENCE.sub(" ", question)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = " ".join(text.split())
    if not text:
        raise BadInput("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise BadInput(f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}")
    return text


def bounded_history(history: list[dict]) -> list[dict]:
    """Earlier turns cleaned as a question is and cut to the question's limit: they become part of
    the standalone question and of the rewrite prompt, so a 400 KB turn must not."""
    out = []
    for turn in history:
        text = turn.get("content") or ""
        text = " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch
                                for ch in _ESCAPE_SEQUENCE.sub(" ", text[:4 * MAX_QUESTION_CHARS])).split())
        out.append({**turn, "content": text[:MAX_QUESTION_CHARS]})
    return out


def _with_highlight(passage: Citation, span: tuple[int, int] | None) -> Citation:
    return Citation(passage.id, passage.doc, passage.page, passage.start, passage.end, passage.text, span,
                    location=passage.location)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
