"""The wiring: question -> retrieval -> generation -> verification -> Answer. Every front end uses it."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from . import prompt
from .chunk import split_sentences
from .cite import INSTRUCTION, blank_instructions, parse_claims, support_score, verify_sentence
from .config import PROJECT_ROOT, Settings
from .errors import BadInput
from .records import Answer, Citation, Hit, Sentence
from .text import content_terms

ABSTAIN = "I can't find that in the documents."
MAX_QUESTION_CHARS = 2000

_FOLLOW_UP = re.compile(r"\b(it|its|it's|they|them|their|this|that|these|those|he|she|his|her|there|"
                        r"then|the same|the former|the latter)\b|^(and|also|what about|how about)\b",
                        re.IGNORECASE)


class Pipeline:
    """Loads the models and the index lazily, and answers questions with verified citations."""

    def __init__(self, settings: Settings, embedder=None, generator=None):
        self.settings = settings
        self._embedder = embedder
        self._generator = generator
        self._retriever = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides) -> Pipeline:
        """A pipeline from `Settings.load()` plus keyword overrides, e.g. `index_dir="my-index"`."""
        settings = settings.replace(**overrides) if settings else Settings.load(**overrides)
        return cls(settings)

    # --- the parts, loaded on first use -------------------------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            from .embed import SentenceTransformerEmbedder

            self._embedder = SentenceTransformerEmbedder(self.settings.embed_model)
        return self._embedder

    @property
    def generator(self):
        if self._generator is None:
            from .generate import LlamaGenerator, RemoteGenerator

            s = self.settings
            self._generator = (RemoteGenerator.from_settings(s) if s.llm_url else
                               LlamaGenerator(s.model, s.n_ctx, s.threads, s.temperature, s.seed))
        return self._generator

    @property
    def store(self):
        from .store import Store

        return Store(self.settings.index_dir)

    @property
    def retriever(self):
        if self._retriever is None:
            from .retrieve import LocalIndex, Retriever
            from .store import check_compatible

            state = self.store.load()
            check_compatible(state.manifest, self.embedder.name, self.chunker)
            self._retriever = Retriever(LocalIndex(state), self.embedder, self.settings.dense_weight)
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
        from .indexer import update_index

        uploads = [self.uploads_dir] if self.uploads_dir.is_dir() else []
        roots = [Path(r) for r in roots] if roots else [PROJECT_ROOT / "corpus", *uploads]
        report = update_index(self.store, roots, self.embedder, self.chunker, rebuild, progress, exclude)
        self._retriever = None
        return report

    @property
    def uploads_dir(self) -> Path:
        return Path(self.settings.index_dir) / "uploads"

    def indexed_roots(self) -> list[Path]:
        """The folders the index was last built from (the corpus, and uploads when there are any)."""
        roots = self.store.read_manifest()[1].get("roots", []) if self.store.exists() else []
        return [Path(r) for r in roots] or [PROJECT_ROOT / "corpus"]

    def documents(self) -> list[dict]:
        """The indexed documents: id, path, sha256, chunk count, pages."""
        if not self.store.exists():
            return []
        return [{"id": doc_id, **info} for doc_id, info in self.store.read_manifest()[1]["documents"].items()]

    def add_documents(self, files: list[tuple[str, bytes]], progress: bool = False):
        """Save uploaded (name, bytes) pairs under the index's uploads folder and index them.

        Every file is checked first (type, size, readable text); one bad file refuses the batch
        with BadInput and saves nothing.
        """
        from .errors import UnreadableDocument
        from .ingest import SUFFIXES, read_document

        saved = []
        for name, data in files:
            safe = upload_name(name)
            if not safe or safe.startswith(".") or Path(safe).suffix.lower() not in SUFFIXES:
                raise BadInput(f"{name!r}: only {', '.join(sorted(SUFFIXES))} files can be added")
            if len(data) > self.settings.max_upload_mb * 1024 * 1024:
                raise BadInput(f"{safe}: larger than the {self.settings.max_upload_mb} MB upload limit")
            try:
                read_document(Path(safe), safe, data)
            except UnreadableDocument as exc:
                raise BadInput(str(exc)) from None
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

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The top-k chunks for a query, fused from dense and lexical rankings."""
        query = clean_question(query)
        return self.retriever.search(query, k or self.settings.top_k)

    # --- answering ----------------------------------------------------------------------------
    def ask(self, question: str, history: list[dict] | None = None, top_k: int | None = None) -> Answer:
        """Answer a question; see `stream` for the steps."""
        for item in self.stream(question, history, top_k):
            if isinstance(item, Answer):
                return item
        raise AssertionError("stream() ended without an Answer")

    def stream(self, question: str, history: list[dict] | None = None,
               top_k: int | None = None) -> Iterator[str | Answer]:
        """Yield the model's tokens as they come, then the verified Answer as the last item."""
        began = time.perf_counter()
        timings: dict[str, float] = {}
        question = clean_question(question)
        standalone = self.rewrite_follow_up(question, history or [])
        if INSTRUCTION.search(question):
            yield self._abstain(question, standalone, "", timings, began, "refused")
            return
        t0 = time.perf_counter()
        hits = self.retriever.search(standalone, top_k or self.settings.top_k)
        timings["retrieve"] = _ms(t0)
        if not hits or max(h.dense or 0.0 for h in hits) < self.settings.min_relevance:
            yield self._abstain(question, standalone, "", timings, began, "low relevance")
            return
        passages, left_out = self.fit_passages(hits, standalone)
        messages = [{"role": "system", "content": prompt.read("system.txt")},
                    {"role": "user", "content": prompt.render(
                        "answer.txt", passages=[{"id": p.id, "text": prompt.as_data(p.text)} for p in passages],
                        question=prompt.as_data(standalone))}]
        t0 = time.perf_counter()
        pieces = []
        for piece in self.generator.stream(messages, self.settings.max_tokens):
            pieces.append(piece)
            timings.setdefault("first_token", _ms(began))
            yield piece
        raw = "".join(pieces)
        timings["generate"] = _ms(t0)
        sentences, mode = self.choose_answer(standalone, self.verify(raw, passages), passages)
        if not self.answers_question(standalone, sentences, passages):
            yield self._abstain(question, standalone, raw, timings, began, "unsupported", left_out, passages)
            return
        cited = {i for s in sentences for i in s.citations}
        citations = tuple(highlight(p, sentences) for p in passages if p.id in cited)
        timings["total"] = _ms(began)
        yield Answer(question, render_answer(sentences), False, tuple(sentences), citations, raw,
                     timings, mode, standalone, tuple(left_out), tuple(passages))

    def _abstain(self, question, standalone, raw, timings, began, mode, left_out=(), passages=()) -> Answer:
        timings.setdefault("retrieve", 0.0)
        timings.setdefault("generate", 0.0)
        timings["total"] = _ms(began)
        return Answer(question, ABSTAIN, True, (), (), raw, timings, f"abstained: {mode}", standalone,
                      tuple(left_out), tuple(passages))

    def rewrite_follow_up(self, question: str, history: list[dict]) -> str:
        """A standalone version of a follow-up question, for retrieval and for the model."""
        earlier = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
        if not earlier or not _FOLLOW_UP.search(question):
            return question
        if self.settings.rewrite_with_model:
            rewritten = "".join(self.generator.stream([{"role": "user", "content": prompt.render(
                "rewrite.txt", history=history[-4:], question=question)}], 48)).strip()
            if 0 < len(rewritten) < 300 and set(content_terms(question)) <= set(content_terms(rewritten)):
                return rewritten
        return f"{question} ({earlier[-1]})"

    def fit_passages(self, hits: list[Hit], question: str) -> tuple[list[Citation], list[str]]:
        """Number the hits' passages [1]..[k] while they fit the context; return those left out."""
        gen = self.generator
        budget = (gen.n_ctx - self.settings.max_tokens - gen.count_tokens(prompt.read("system.txt"))
                  - gen.count_tokens(prompt.render("answer.txt", passages=[], question=question))
                  - gen.chat_overhead([{}, {}]))
        passages, left_out, seen = [], [], set()
        for hit in hits:
            chunk = hit.chunk
            if chunk.text in seen:
                continue
            cost = gen.count_tokens(chunk.text) + 6
            if cost > budget:
                left_out.append(chunk.id)
                continue
            budget -= cost
            seen.add(chunk.text)
            passages.append(Citation(len(passages) + 1, chunk.doc_id, chunk.page, chunk.start,
                                     chunk.end, chunk.text))
        return passages, left_out

    def verify(self, raw: str, passages: list[Citation]) -> list[Sentence]:
        """Keep the model's sentences that their citations back; give uncited ones the best backer."""
        evidence = {p.id: blank_instructions(p.text) for p in passages}
        threshold = self.settings.support_threshold
        kept = []
        for claim in parse_claims(raw):
            cited = [i for i in claim.cited if i in evidence]
            if cited and verify_sentence(claim.text, [evidence[i] for i in cited], threshold):
                kept.append(Sentence(claim.text, tuple(cited), True))
                continue
            backers = sorted(evidence, key=lambda i: -support_score(claim.text, evidence[i]))
            for i in backers[:3]:
                if verify_sentence(claim.text, [evidence[i]], threshold):
                    kept.append(Sentence(claim.text, (i,), True))
                    break
        return kept

    def extract(self, question: str, passages: list[Citation]) -> list[Sentence]:
        """The retrieved sentences that best answer the question, verbatim with their citation."""
        candidates = [(p, p.text[a:b]) for p in passages for a, b in split_sentences(p.text)]
        candidates = [(p, s) for p, s in candidates
                      if len(content_terms(s)) >= 3 and not INSTRUCTION.search(s)]
        if not candidates:
            return []
        vectors = self.embedder.embed([question] + [s for _, s in candidates])
        similarity = vectors[1:] @ vectors[0]
        scored = sorted(((0.5 * float(sim) + 0.5 * self.term_coverage(question, candidates[i][1]), i)
                         for i, sim in enumerate(similarity)), reverse=True)
        best, picked, seen = scored[0][0], [], set()
        for score, i in scored[:2]:
            p, text = candidates[i]
            if score >= 0.85 * best and text not in seen:
                seen.add(text)
                picked.append(Sentence(" ".join(text.split()), (p.id,), True))
        return picked

    def term_coverage(self, question: str, text: str) -> float:
        """IDF-weighted share of the question's content words found in `text`."""
        bm25 = self.retriever.bm25
        terms = set(content_terms(question))
        if not terms:
            return 0.0
        have = set(content_terms(text))
        weight = {t: _idf(bm25, t) for t in terms}
        return sum(w for t, w in weight.items() if t in have) / sum(weight.values())

    def choose_answer(self, question: str, generated: list[Sentence],
                      passages: list[Citation]) -> tuple[list[Sentence], str]:
        """The model's verified sentences, unless the extract's evidence speaks more to the question.

        A verified sentence can still be beside the point (true, cited, about another treaty);
        comparing how much of the question each answer's passages cover catches that.
        """
        extracted = self.extract(question, passages)
        if self.answers_question(question, generated, passages) and \
                self.evidence_coverage(question, generated, passages) >= \
                self.evidence_coverage(question, extracted, passages):
            return generated, "generated"
        return extracted, "extractive"

    def evidence_coverage(self, question: str, sentences: list[Sentence], passages: list[Citation]) -> float:
        """IDF-weighted share of the question's words found in the passages the sentences cite."""
        cited = {i for s in sentences for i in s.citations}
        return self.term_coverage(question, " ".join(blank_instructions(p.text) for p in passages
                                                     if p.id in cited))

    def answers_question(self, question: str, sentences: list[Sentence], passages: list[Citation]) -> bool:
        """The answer-level abstention test: the cited passages must speak to enough of the question,
        and the answer must hold the kind of thing asked for (a number for "how many", a date for
        "when", a name for "who")."""
        if not sentences or self.evidence_coverage(question, sentences, passages) < self.settings.min_coverage:
            return False
        return has_expected_answer_type(question, " ".join(s.text for s in sentences))


def upload_name(name: str) -> str:
    """The file name an upload is saved under: no folders (so no `../`), no line breaks."""
    return Path(name.replace("\\", "/")).name.replace("\n", " ").replace("\r", " ").strip()


def _idf(bm25, term: str) -> float:
    return bm25.idf(term)


_NUMBER_WORDS = r"\b(one|two|three|four|five|six|seven|eight|nine|ten|dozen|hundred|thousand|million|billion)\b"
_MONTHS = r"\b(january|february|march|april|may|june|july|august|september|october|november|december)\b"
_ASKS_NUMBER = re.compile(r"\bhow (many|much)\b|\bwhat (number|percentage|share|amount)\b", re.IGNORECASE)
_ASKS_DATE = re.compile(r"^\W*when\b|\b(what|which) (date|year|month|day)\b|\bin what year\b", re.IGNORECASE)
_ASKS_NAME = re.compile(r"^\W*who\b", re.IGNORECASE)


def has_expected_answer_type(question: str, answer: str) -> bool:
    """False when the question asks for a number, date or name and the answer has none.

    >>> has_expected_answer_type("How many nations signed?", "Many nations signed.")
    False
    """
    lowered = answer.lower()
    if _ASKS_NUMBER.search(question):
        return bool(re.search(r"\d", answer) or re.search(_NUMBER_WORDS, lowered))
    if _ASKS_DATE.search(question):
        return bool(re.search(r"\b(1[89]|20)\d\d\b", answer) or re.search(_MONTHS, lowered))
    if _ASKS_NAME.search(question):
        asked = {w.lower() for w in re.findall(r"\b[A-Z][\w’'-]+", question)}
        names = {w.lower() for w in re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'-]+", answer)}
        return bool(names - asked)
    return True


def clean_question(question: str) -> str:
    """The question with control characters turned to spaces; BadInput if empty or too long."""
    if not isinstance(question, str):
        raise BadInput("the question must be text")
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question)
    text = " ".join(text.split())
    if not text:
        raise BadInput("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise BadInput(f"the question is {len(text):,} characters long; the limit is {MAX_QUESTION_CHARS:,}")
    return text


def render_answer(sentences: list[Sentence]) -> str:
    """Sentences joined, each with its markers before the final full stop: "... 28 nations [2]."."""
    out = []
    for s in sentences:
        text = s.text.rstrip()
        end = text[-1] if text[-1] in ".!?" else "."
        body = text[:-1] if text[-1] in ".!?" else text
        out.append(f"{body} {''.join(f'[{i}]' for i in s.citations)}{end}")
    return " ".join(out)


def highlight(passage: Citation, sentences: list[Sentence]) -> Citation:
    """The passage with `highlight` set to the document span of its sentence that best backs the answer."""
    spans = split_sentences(passage.text, passage.start)
    claims = [s.text for s in sentences if passage.id in s.citations]
    if not spans or not claims:
        return passage
    doc_text_of = lambda a, b: passage.text[a - passage.start:b - passage.start]  # noqa: E731
    best = max(spans, key=lambda sp: max(support_score(c, doc_text_of(*sp)) for c in claims))
    return Citation(passage.id, passage.doc, passage.page, passage.start, passage.end, passage.text, best)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
