"""One Settings object: defaults, then an optional TOML file, then RAG_* variables, then overrides."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import BadInput

# Nothing may reach a model hub at run time: these are forced, not defaulted.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning. On a laptop doing other work (or while the
# embedder runs), spinning llama.cpp threads made generation three times slower in our runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Every knob of the pipeline. Empty model names mean the bundled models."""

    index_dir: Path = Path("index")
    # A named collection: its own index under index_dir/collections/NAME. Empty means the default
    # collection, which is index_dir itself (today's layout).
    collection: str = ""
    # Keep every answered question in index_dir/history.sqlite3 (rag/history.py); off stores nothing.
    save_history: bool = True
    embed_model: str = ""
    model: str = ""
    models: tuple[str, ...] = ()
    chunk_size: int = 500
    chunk_overlap: int = 100
    top_k: int = 4
    n_ctx: int = 2048
    n_threads: int = 0
    # ONNX Runtime's threads for the int8 embedder; 0 means the cores this process may use. Its threads
    # spin while they wait, so more threads than free cores halve its speed (docs/performance.md).
    embed_threads: int = 0
    temperature: float = 0.0
    max_tokens: int = 128
    seed: int = 7
    min_relevance: float = 0.30
    min_coverage: float = 0.05
    support_threshold: float = 0.55
    dense_weight: float = 0.5
    rewrite_with_model: bool = False
    # Short answers decoded as spans of the passages and yes/no questions as Yes/No (rag/answer/spans.py);
    # False decodes freely and grounds the reply afterwards (the reader before the span decoder).
    span_answers: bool = True
    # Why/how questions answered with a whole sentence of the passages, chosen by the model (spans.py
    # SentenceConstraint); False lets it write its sentence, which the verifier must then back.
    copy_sentences: bool = True
    context: str = "sentences"
    max_upload_mb: int = 20
    # Read every confidence signal, even those the tier's calibration does not use (the eval does, so
    # `rag calibrate` can weigh them all); otherwise an unused check is skipped.
    measure_all_signals: bool = False
    # What one file may cost to read: a PDF's pages and characters of text; the seconds and memory
    # of the child process that parses PDF and HTML. A file past a limit is skipped with the reason.
    max_pdf_pages: int = 10_000
    max_pdf_chars: int = 20_000_000
    parse_timeout: float = 60.0
    parse_memory_mb: int = 1024
    # Scanned PDF pages are read by OCR (tesseract), each within ocr_page_timeout seconds and one file's
    # pages within ocr_file_timeout (a file past it is skipped; its pages read so far stay cached, so the
    # next run goes on from there); their text is cached in index_dir/ocr-cache by the file's sha256.
    # `rag index --no-ocr` turns it off for a run.
    ocr: bool = True
    ocr_page_timeout: float = 120.0
    ocr_file_timeout: float = 1800.0
    # Distinct scanned pages one file may send to OCR, in `rag index` and in an upload (a file with
    # more is skipped); an upload's text may be at most upload_text_ratio characters per byte of the
    # file (100,000 always allowed), and one upload's files together max_upload_chars.
    max_ocr_pages: int = 1000
    max_upload_ocr_pages: int = 50
    upload_text_ratio: int = 20
    max_upload_chars: int = 2_000_000
    # A long `rag index` commits after this many changed files or seconds, whichever comes first, so
    # a killed run resumes from its last commit (0 turns either off).
    commit_files: int = 200
    commit_seconds: float = 60.0
    # A generation server speaking OpenAI's /v1/chat/completions; empty means the in-process model.
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key_env: str = "RAG_LLM_API_KEY"
    llm_n_ctx: int = 2048
    llm_tokenizer: str = ""
    llm_connect_timeout: float = 5.0
    llm_read_timeout: float = 120.0
    llm_llama_sampling: bool = True
    llm_concurrency: int = 8
    # Where the index lives: "faiss" (files in index_dir) or "postgres" (pgvector, at pg_url, a libpq URI).
    vector_store: str = "faiss"
    pg_url: str = ""

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides) -> Settings:
        """Build settings from defaults, a TOML file (`RAG_CONFIG`), `RAG_*` variables and overrides."""
        values: dict = {}
        path = config_file or os.environ.get("RAG_CONFIG")
        if path:
            try:
                values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise BadInput(f"cannot read config file {path}: {exc}") from None
        for f in fields(cls):
            env = os.environ.get(f"RAG_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    @property
    def threads(self) -> int:
        return self.n_threads or usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (`taskset` and cpusets narrow them), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cache_dir() -> Path:
    """Where derived files are kept (the int8 embedder, prefix states): $RAG_CACHE_DIR, else
    $XDG_CACHE_HOME/rag, else ~/.cache/rag."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag"


def _coerce(name: str, value):
    types = {f.name: f.type for f in fields(Settings)}
    if name not in types:
        raise BadInput(f"unknown setting: {name}")
    kind = types[name]
    try:
        if kind == "Path":
            return Path(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("tuple"):
            return tuple(value.split(os.pathsep) if isinstance(value, str) else value)
        return str(value)
    except (TypeError, ValueError):
        raise BadInput(f"setting {name} must be {kind}, got {value!r}") from None
