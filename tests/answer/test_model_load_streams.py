"""Loading a model leaves the process's stdout and stderr alone, for every other thread.

llama-cpp-python's verbose=False swaps sys.stdout for a /dev/null file and points descriptors 1 and 2 at
/dev/null while a model loads. `rag mcp` loads its models in a background thread as the stdio transport
starts; when the transport looked at sys.stdout during that swap, it wrote every reply to /dev/null and
the client waited for ever (a CI run hung on the MCP stdio test).
"""

import os
import threading

import pytest


def fd_target(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


@pytest.mark.integration
def test_a_model_loading_in_another_thread_never_takes_stdout_or_stderr_away():
    import sys

    from rag.answer.generate import LlamaGenerator

    before = (sys.stdout, sys.stderr, fd_target(1), fd_target(2))
    seen: list[tuple] = []
    loaded = threading.Event()

    def load():
        try:
            LlamaGenerator("smollm2-135m", n_ctx=512, n_threads=1)
        finally:
            loaded.set()

    thread = threading.Thread(target=load)
    thread.start()
    while not loaded.is_set():
        seen.append((sys.stdout, sys.stderr, fd_target(1), fd_target(2)))
    thread.join()
    assert len(seen) > 10  # the load was watched while it ran
    changed = [s for s in seen if s != before]
    assert not changed, f"{len(changed)} of {len(seen)} looks saw the standard streams swapped"
