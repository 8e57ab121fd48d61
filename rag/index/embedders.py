"""Which embedder a pipeline uses: the one its index was built with, else the default for a new index.

An index records its embedder's name in the manifest, and its vectors are only comparable with that
embedder's. So with no `embed_model` set, an index built with one of the bundled embedders keeps it
(an index built before int8 became the default keeps fp32, with no re-index), and a new index, or a
rebuild, gets the default. An `embed_model` that names another embedder than the index's is refused
with the rebuild hint (`check_compatible`).
"""

from __future__ import annotations

from .embed import BUNDLED_EMBEDDER, Embedder, SentenceTransformerEmbedder
from .quantized import BUNDLED_INT8, Int8Embedder

# Chosen by measurement: `rag bench`'s embedder table, written up in docs/performance.md.
DEFAULT_EMBEDDER = BUNDLED_INT8
# What `embed_model` may say to pick a bundled embedder by name; anything else is a model folder or name.
ALIASES = {"minilm-int8": BUNDLED_INT8, "minilm-fp32": BUNDLED_EMBEDDER,
           BUNDLED_INT8: BUNDLED_INT8, BUNDLED_EMBEDDER: BUNDLED_EMBEDDER}


def open_embedder(model: str = "", recorded: str | None = None, threads: int = 0) -> Embedder:
    """The embedder for the setting `model`; with none set, the bundled one `recorded` by the index, if any.

    >>> open_embedder("", recorded="all-MiniLM-L6-v2 (bundled)").name   # an index from before int8
    'all-MiniLM-L6-v2 (bundled)'
    """
    name = ALIASES.get(model, model) if model else recorded if recorded in ALIASES else DEFAULT_EMBEDDER
    if name == BUNDLED_INT8:
        return Int8Embedder(threads=threads)
    if name == BUNDLED_EMBEDDER:
        return SentenceTransformerEmbedder()
    return SentenceTransformerEmbedder(name)
