"""Write eval/scans/dataset.jsonl: questions whose answers are on the scanned pages of field-notes.pdf.

Every `quote`, `short_answers` entry and distractor must be an exact substring of the text that
`rag index` reads from the PDF by OCR; `python eval/scans/make_dataset.py` checks that against a fresh
read (run it after make_scans.py, with Debian's tesseract installed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = "field-notes.pdf"
REFUSAL = "I can't find that in the documents."

# (question, answer, short answers, keywords, quote, type)
ANSWERABLE = [
    ("What was the camp beside the Harrow stream named?", "Basecamp Osprey.", ["Basecamp Osprey"], ["osprey"],
     "The camp was named Basecamp Osprey after the", "name"),
    ("Who led the Lindqvist survey expedition?", "Dr. Ingrid Halvorsen, a geologist.", ["Ingrid Halvorsen"],
     ["halvorsen"], "The leader of the expedition was Dr. Ingrid Halvorsen, a geologist from the", "name"),
    ("How high was the highest point of the ridge?", "1,482 metres above sea level.", ["1,482 metres"], ["1,482"],
     "The highest point of the ridge was measured at 1,482 metres above sea", "number"),
    ("How many rock samples did the survey team collect?", "214 samples.", ["214"], ["214"],
     "collected 214 samples, of which 37 were sent to the laboratory in Trondheim", "number"),
    ("In which city was the laboratory that dated the rock samples?", "Trondheim.", ["Trondheim"], ["trondheim"],
     "collected 214 samples, of which 37 were sent to the laboratory in Trondheim", "factoid"),
    ("How many pack horses carried the supplies up the valley?", "Eleven.", ["eleven"], ["eleven"],
     "Supplies were carried up the valley by a team of eleven pack horses hired", "number"),
    ("Who led the pack horses?", "Einar Brekke, a farmer.", ["Einar Brekke"], ["brekke"],
     "The horses were led by a farmer called Einar Brekke,", "name"),
    ("When did the survey team break camp?", "On the second of August.", ["second of August"], ["august"],
     "The team broke camp on the second of August, after a storm destroyed the", "date"),
    ("What was the main logbook of the survey bound in?", "Green oilcloth.", ["oilcloth"], ["oilcloth"],
     "She kept the main logbook, which was bound in green\noilcloth.", "factoid"),
    ("What temperature did the team record on the coldest night?", "Minus seven degrees.",
     ["minus seven degrees"], ["seven"], "The team recorded a temperature of minus seven degrees on the", "number"),
]
# (question, distractor quote): on topic, with a tempting wrong answer in the text.
UNANSWERABLE = [
    ("How many samples were sent to the laboratory in Bergen?",
     "of which 37 were sent to the laboratory in Trondheim"),
    ("What was the name of the survey's radio operator?", "after a storm destroyed the"),
]
# (question, "Yes" or "No", answer, deciding quote); a quote of None is an unanswerable yes/no question,
# whose answer field holds its distractor. Each answer alternates tune/report, so both halves get both.
YESNO = [
    ("Was the Lindqvist expedition led by a geologist?", "Yes", "Yes, Dr. Ingrid Halvorsen, a geologist.",
     "The leader of the expedition was Dr. Ingrid Halvorsen, a geologist from the\nUniversity of Bergen."),
    ("Were the rock samples dated at a laboratory in Bergen?", "No",
     "No, they were sent to the laboratory in Trondheim.",
     "collected 214 samples, of which 37 were sent to the laboratory in Trondheim\nfor dating."),
    ("Was the main logbook bound in green oilcloth?", "Yes", "Yes, it was bound in green oilcloth.",
     "She kept the main logbook, which was bound in green\noilcloth."),
    ("Did the survey team break camp in July?", "No", "No, the team broke camp on the second of August.",
     "The team broke camp on the second of August, after a storm destroyed the\nradio mast."),
    ("Did the temperature fall below freezing on the coldest night?", "Yes",
     "Yes, the team recorded minus seven degrees.",
     "The team recorded a temperature of minus seven degrees on the\ncoldest night, the nineteenth of June."),
    ("Were the supplies carried up the valley by mules?", "No", "No, by a team of eleven pack horses.",
     "Supplies were carried up the valley by a team of eleven pack horses hired\nfrom a farm at Solvik."),
    ("Was the survey camp set up beside the Harrow stream?", "Yes", "Yes, beside the Harrow stream.",
     "The survey team reached the northern ridge on the fourth of June and set up\ncamp beside the Harrow stream."),
    ("Was the highest point of the ridge above 1,500 metres?", "No", "No, it was measured at 1,482 metres.",
     "The highest point of the ridge was measured at 1,482 metres above sea\nlevel."),
    ("Was the survey paid for by the University of Bergen?", None, "a geologist from the\nUniversity of Bergen.",
     None),
    ("Was anyone in the team hurt by the storm?", None, "after a storm destroyed the\nradio mast.", None),
]


def items() -> list[dict]:
    out = []
    for n, (question, answer, short, keywords, quote, kind) in enumerate(ANSWERABLE):
        out.append({"id": f"s{n + 1:03d}", "question": question, "answerable": True, "answer": answer,
                    "short_answers": short, "keywords": keywords, "support": [{"doc": DOC, "quote": quote}],
                    "type": kind, "history": [], "split": "tune" if n % 2 == 0 else "report"})
    for n, (question, distractor) in enumerate(UNANSWERABLE):
        out.append({"id": f"s{len(ANSWERABLE) + n + 1:03d}", "question": question, "answerable": False,
                    "answer": REFUSAL, "short_answers": [], "keywords": [], "support": [], "type": "unanswerable",
                    "history": [], "distractor": {"doc": DOC, "quote": distractor},
                    "split": "tune" if n % 2 == 0 else "report"})
    seen: dict[str | None, int] = {}
    for question, yes_no, answer, quote in YESNO:
        split = ("tune", "report")[(seen.get(yes_no, 0) + (yes_no == "No")) % 2]
        seen[yes_no] = seen.get(yes_no, 0) + 1
        row = {"id": f"s{len(out) + 1:03d}", "question": question, "answerable": quote is not None}
        if quote is None:
            row |= {"answer": REFUSAL, "short_answers": [], "keywords": [], "support": [], "type": "yesno",
                    "history": [], "distractor": {"doc": DOC, "quote": answer}}
        else:
            row |= {"answer": answer, "short_answers": [yes_no], "keywords": [yes_no.lower()],
                    "support": [{"doc": DOC, "quote": quote}], "type": "yesno", "history": []}
        out.append(row | {"split": split})
    return out


def check(rows: list[dict], text: str) -> None:
    """Every quote and short answer is in the OCR text; exit 1 naming the first that is not."""
    for row in rows:
        # A yes/no item's short answer ("Yes", "No") is not a span; its deciding quote is.
        shorts = [] if row["type"] == "yesno" else row["short_answers"]
        wanted = [s["quote"] for s in row["support"]] + shorts
        wanted += [row["distractor"]["quote"]] if "distractor" in row else []
        for piece in wanted:
            if piece not in text:
                sys.exit(f"{row['id']}: {piece!r} is not in the OCR text of {DOC}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))
    from rag.documents.ingest import ReadLimits, read_document

    rows = items()
    check(rows, read_document(HERE / "corpus" / DOC, DOC, limits=ReadLimits()).text)
    with open(HERE / "dataset.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"wrote {HERE / 'dataset.jsonl'}: {len(rows)} items, every quote found in the OCR text")
