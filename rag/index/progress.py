"""What a `rag index` run shows while it works, and where its time went."""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import contextmanager

STAGES = ("read", "chunk", "embed", "write")


class Stopwatch:
    """Seconds spent in each stage of indexing: `with watch("embed"): ...`."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - began


class IndexProgress:
    """A tqdm bar on stderr (only on a terminal): files and chunks done, chunks/s, and the time left.

    The bar and its estimate count the bytes of the files that must be read (those whose size and
    modification time changed), so unchanged files neither fill it nor skew the estimate.
    """

    def __init__(self, files: int, to_read: int, enabled: bool):
        self.files, self.done, self.chunks = files, 0, 0
        self.began = time.perf_counter()
        self.bar = None
        if enabled and to_read and sys.stderr.isatty():
            from tqdm import tqdm

            # A terminal that reports no size (a pty nobody sized) would get no bar at all.
            size = shutil.get_terminal_size()
            self.bar = tqdm(total=to_read, file=sys.stderr, unit="B", unit_scale=True,
                            ncols=min(size.columns or 100, 120), nrows=size.lines or 24,
                            desc=f"0/{files:,} files, 0 chunks, 0.0 chunks/s",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def advance(self, files: int = 0, chunks: int = 0, read: int = 0) -> None:
        """Count files finished, chunks embedded and bytes read since the last call."""
        self.done += files
        self.chunks += chunks
        if self.bar is not None:
            self._show()
            self.bar.update(read)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _show(self) -> None:
        rate = self.chunks / max(time.perf_counter() - self.began, 1e-9)
        self.bar.set_description_str(f"{self.done:,}/{self.files:,} files, {self.chunks:,} chunks, "
                                     f"{rate:.1f} chunks/s", refresh=False)
