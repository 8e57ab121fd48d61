"""What intermediate commits cost on the stdlib pydoc corpus: the writes of N commits against one.

Render the corpus first (rag/bench/run.py's render_pydoc), then, from the repository:
    python -c "from pathlib import Path; from rag.bench.run import render_pydoc
    render_pydoc(Path('/tmp/resume-pydoc'), None)"
    nice -n 10 python docs/bench/commit-cost.py
Figures in docs/performance.md ("What an intermediate commit costs").
"""
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from rag.documents.chunk import chunk_document
from rag.documents.ingest import read_document
from rag.index.embed import SentenceTransformerEmbedder
from rag.index.indexer import update_index
from rag.index.store import Store

corpus, work = Path("/tmp/resume-pydoc"), Path("/tmp/resume-m/runs")
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
CHUNKER = {"size": 500, "overlap": 100}


class HashEmbedder:
    """Unit vectors of the real dimension from a hash of the text: the writes see real-sized vectors."""
    name, dim = "hash-384", 384

    def embed(self, texts, progress=False):
        out = np.stack([np.random.default_rng(int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest()))
                        .standard_normal(self.dim) for t in texts]).astype(np.float32) if texts else \
            np.zeros((0, self.dim), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True) if len(out) else out


# The real embedder's rate now, on 768 of the corpus's chunks (after a warm-up batch that loads it).
texts = [c.text for p in sorted(corpus.glob("*.txt"))[:40] for c in chunk_document(read_document(p, p.name), **CHUNKER)]
real = SentenceTransformerEmbedder()
real.embed(texts[:256])
t = time.perf_counter()
real.embed(texts[256:1024])
rate = 768 / (time.perf_counter() - t)
print(f"real embedder: {rate:.1f} chunks/s", flush=True)

# Each commit's seconds, to see whether a commit costs more as the index grows.
durations = []
real_write = Store.write
def timed_write(self, *args, **kwargs):
    t = time.perf_counter()
    state = real_write(self, *args, **kwargs)
    durations.append(time.perf_counter() - t)
    return state
Store.write = timed_write

rows = []
for label, files in [("one commit", 0), ("every 35 files", 35), ("every 10 files", 10), ("every file", 1)]:
    t = time.perf_counter()
    r = update_index(Store(work / label.replace(" ", "-")), [corpus], HashEmbedder(), CHUNKER,
                     commit_files=files, commit_seconds=0)
    rows.append({"run": label, "commits": r.commits, "chunks": r.chunks, "seconds": round(time.perf_counter() - t, 2),
                 **{k: round(v, 2) for k, v in r.timings.items()}})
    print(json.dumps(rows[-1]), flush=True)
    if files == 1:
        print(f"every file: first 20 commits {sum(durations[:20]) / 20:.3f} s each, last 20 (index of "
              f"~10,000 chunks) {sum(durations[-21:-1]) / 20:.3f} s each", flush=True)
    durations.clear()
one = rows[0]
for row in rows:
    extra = row["write"] - one["write"]
    print(f"{row['run']:>15}: {row['commits']:>3} commits, write {row['write']:6.2f}s = "
          f"{row['write'] / one['write']:.2f}x one commit; +{extra:.2f}s = "
          f"{100 * extra / (row['chunks'] / rate):.1f}% of a run embedding {row['chunks']} chunks at {rate:.1f}/s")
