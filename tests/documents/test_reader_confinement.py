"""The process that parses hostile files holds no secrets, no working directory of the app's, no way to
gain privileges and, where the kernel allows, no network (issue 26, item 11)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest
from test_amplification import drawing_the_image, fake_tesseract, pdf_of_pages  # noqa: F401 (a fixture)

from rag.documents.ingest import ReadLimits
from rag.documents.isolation import IsolatedReader

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the confinement is Linux's")
SECRETS = {"RAG_API_KEY": "k" * 40, "RAG_UI_PASSWORD": "correct horse battery", "RAG_LLM_API_KEY": "s" * 40}


def test_the_reader_process_has_no_secrets_no_privileges_to_gain_no_network_and_an_empty_folder(
        tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    with IsolatedReader(ReadLimits()) as reader:
        doc = reader.read(Path("page.html"), "page.html", b"<p>The Zorblax festival.</p>")
        child = psutil.Process(reader._child.pid)
        environment, folder = child.environ(), Path(child.cwd())
        status = Path(f"/proc/{child.pid}/status").read_text()
        network = os.readlink(f"/proc/{child.pid}/ns/net")
    assert doc.text == "The Zorblax festival."
    assert not set(SECRETS) & set(environment) and set(environment) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE",
                                                                      "TMPDIR", "PYTHONPATH", "OMP_THREAD_LIMIT",
                                                                      "TESSDATA_PREFIX"}
    assert folder != tmp_path and folder.name.startswith("rag-reader-") and not folder.exists()  # removed after
    assert "NoNewPrivs:\t1" in status
    assert network != os.readlink("/proc/self/ns/net")  # the app's network before


def test_a_relative_ocr_cache_is_written_where_the_app_means_it(tmp_path, monkeypatch, fake_tesseract):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    data = pdf_of_pages([(0, 6)], [drawing_the_image(0)])
    with IsolatedReader(ReadLimits(ocr_cache="index/ocr-cache")) as reader:
        assert "Scanned Zorblax page." in reader.read(Path("scan.pdf"), "scan.pdf", data).text
    assert len(list((tmp_path / "index" / "ocr-cache").glob("*.jsonl"))) == 1
