"""A folder with one file of each kind, indexed with the real embedder; questions cite slide, sheet or heading."""

from __future__ import annotations

import json

import pytest
from format_files import make_all

from rag.cli import main
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.integration

# (question, document, location, words the retrieved passage holds)
FINDS = [
    ("When does the Zephyr lander launch?", "zephyr.pptx", "slide 4", "12 March 2032"),
    ("What was the revenue in Q3?", "sales.xlsx", "Revenue!A1:C5", "Q3 | 47.5"),
    ("How many divers did the harbor team hire?", "report.docx", "Chapter 3: Staffing", "fourteen commercial divers"),
    ("How much cargo did the harbor handle in Q3?", "report.docx", "Quarterly cargo", "Q3 | 1,044"),
    ("How far did the Tarvik glacier retreat?", "fieldnotes.odt", "Glacier survey", "312 metres"),
    ("What destroyed the north pier of Port Elnar?", "chronicle.epub", "Chapter 3: The Storm", "storm of 1887"),
    ("Who manages District 30?", "sales.xlsx", "Regions!A25:C35", "District 30 | Manager 30"),
    ("How heavy is the drill payload?", "zephyr.pptx", "slide 5", "Drill | 22.7"),
    ("When does the ferry to Osmund Island sail?", "ferry.rtf", None, "7:40 every Tuesday"),
]


@pytest.fixture(scope="module")
def formats_pipeline(tmp_path_factory, real_embedder, real_generator):
    root = tmp_path_factory.mktemp("formats")
    make_all(root / "docs")
    pipeline = Pipeline(Settings.load(index_dir=root / "index"), embedder=real_embedder, generator=real_generator)
    report = pipeline.index([root / "docs"])
    assert report.skipped == () and len(report.added) == 6
    return pipeline


@pytest.mark.parametrize("question, doc, location, words", FINDS, ids=[f[1] + ":" + str(f[2]) for f in FINDS])
def test_the_top_passage_for_a_question_is_in_its_file_at_its_location(formats_pipeline, question, doc, location,
                                                                          words):
    [hit, *_] = formats_pipeline.search(question, 3)
    assert (hit.chunk.doc_id, hit.chunk.location) == (doc, location)
    assert words in hit.chunk.text


@pytest.mark.parametrize("question, doc, location, answer", [
    ("When does the Zephyr lander launch?", "zephyr.pptx", "slide 4", "12 March 2032"),
    ("What was the revenue in Q3?", "sales.xlsx", "Revenue!A1:C5", "47.5"),
], ids=["slide", "sheet"])
def test_the_default_model_answers_from_a_slide_and_a_sheet_and_cites_the_location(formats_pipeline, question, doc,
                                                                                    location, answer):
    result = formats_pipeline.ask(question)
    assert not result.abstained and answer in result.text
    assert (doc, location) in {(c.doc, c.location) for c in result.citations}


def test_rag_search_json_and_text_name_the_slide(formats_pipeline, capsys, monkeypatch):
    monkeypatch.setattr("rag.cli._pipeline", lambda args: formats_pipeline)
    assert main(["search", "When does the Zephyr lander launch?", "-k", "1", "--json"]) == 0
    [hit] = json.loads(capsys.readouterr().out)["hits"]
    assert (hit["doc"], hit["location"]) == ("zephyr.pptx", "slide 4")
    assert main(["search", "When does the Zephyr lander launch?", "-k", "1"]) == 0
    assert capsys.readouterr().out.startswith("1. zephyr.pptx (slide 4) [")
