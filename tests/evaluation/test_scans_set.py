"""The scans eval set: every gold quote is found in the text OCR reads from its scanned PDF."""

import pytest

from rag.documents.ingest import ReadLimits
from rag.evaluation.evaluate import EVAL_SETS, gold_spans, load_jsonl


@pytest.mark.integration
def test_every_scans_quote_is_found_in_the_ocr_text_of_its_pdf(tmp_path):
    corpus, dataset = EVAL_SETS["scans"]
    items = load_jsonl(dataset)
    limits = ReadLimits(ocr_cache=str(tmp_path / "ocr-cache"))
    # gold_spans raises BadInput naming the item whose quote the OCR text does not hold.
    spans = [span for item in items for span in gold_spans(item, corpus, limits)]
    assert len(spans) == sum(item["answerable"] for item in items) >= 5
    assert {doc for doc, _, _ in spans} == {"field-notes.pdf"}
    assert len(list((tmp_path / "ocr-cache").iterdir())) == 1  # its pages, cached under its sha256
