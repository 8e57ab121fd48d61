"""`rag chat` saves its conversation, `rag chat --resume` continues the last one, `rag history` lists and exports."""

# ruff: noqa: F811 (the fixtures imported from test_cli are parameters here)
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from test_cli import chat_spy, fake_cli  # noqa: F401 (fixtures)

from rag import cli
from rag.history import History

BLETCHLEY = "How many nations signed the Bletchley Declaration?"
GROUNDED = "The Bletchley Declaration was signed by 28 nations [1]."


def chat(monkeypatch, capsys, *lines: str, flags: tuple[str, ...] = ()) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    status = cli.main(["chat", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def test_rag_chat_saves_each_answered_turn_and_clear_starts_another_conversation(fake_cli, monkeypatch, capsys):
    fake_cli.generator.replies += [GROUNDED, "I can't find that in the documents.", GROUNDED]
    status, _, err = chat(monkeypatch, capsys, BLETCHLEY, "When was it signed?", "", )
    assert status == 0 and err == ""
    saved = History.for_settings(fake_cli.settings)
    [conversation] = saved.conversations()
    assert conversation.title == BLETCHLEY and conversation.collection == "default"
    turns = saved.turns(conversation.id)
    assert [t.question for t in turns] == [BLETCHLEY, "When was it signed?"]
    assert "[1]" in turns[0].answer.text and turns[0].answer.citations[0].doc.endswith(".txt")
    assert turns[1].answer.abstained

    chat(monkeypatch, capsys, "First of a new one?", "/clear", BLETCHLEY, "")
    assert [c.title for c in saved.conversations()] == [BLETCHLEY, "First of a new one?", BLETCHLEY]


def test_rag_chat_resume_continues_the_last_conversation_with_its_turns_as_history(chat_spy, fake_cli, monkeypatch,
                                                                                   capsys):
    fake_cli.generator.replies += [GROUNDED, GROUNDED]
    chat(monkeypatch, capsys, "Which nations signed?", BLETCHLEY)
    saved = History.for_settings(fake_cli.settings)
    first_answers = [t.answer.text for t in saved.turns(saved.latest().id)]

    status, out, err = chat(monkeypatch, capsys, "When was it signed?", flags=("--resume",))
    assert status == 0 and err == ""
    assert out.splitlines()[1] == "resuming: Which nations signed? (2 turns)"
    question, history = chat_spy["asked"][-1]
    assert question == "When was it signed?"
    assert history == [{"role": "user", "content": "Which nations signed?"},
                       {"role": "assistant", "content": first_answers[0]},
                       {"role": "user", "content": BLETCHLEY},
                       {"role": "assistant", "content": first_answers[1]}]
    [conversation] = saved.conversations()
    assert conversation.turns == 3


def test_rag_chat_resume_goes_on_in_the_conversations_collection_unless_one_is_chosen(fake_pipeline, monkeypatch,
                                                                                      capsys, tmp_path):
    from test_collections import ASK_ZORBLAX, ZORBLAX, folder_with

    from rag.index.collections import remove_collection
    from rag.pipeline import Pipeline

    built = []

    def pipeline_for(args):
        built.append(args.collection)
        return Pipeline(fake_pipeline.settings.replace(collection=args.collection or ""),
                        embedder=fake_pipeline.embedder, generator=fake_pipeline.generator)

    monkeypatch.setattr(cli, "_pipeline", pipeline_for)
    pipeline_for(SimpleNamespace(collection="alpha")).index([folder_with(tmp_path, "zorblax.txt", ZORBLAX)])
    fake_pipeline.generator.replies += ["Edna Pocklington"] * 3
    chat(monkeypatch, capsys, ASK_ZORBLAX, flags=("--collection", "alpha"))
    saved = History.for_settings(fake_pipeline.settings)
    assert saved.latest().collection == "alpha"

    built.clear()
    status, out, err = chat(monkeypatch, capsys, "Who founded it?", flags=("--resume",))
    assert status == 0 and err == "" and built == [None, "alpha"]
    assert out.splitlines()[1] == f"resuming: {ASK_ZORBLAX} (1 turn), in collection 'alpha'"
    assert [t.collection for t in saved.turns(saved.latest().id)] == ["alpha", "alpha"]

    # A collection chosen on the command line wins; a removed one is not switched to.
    built.clear()
    chat(monkeypatch, capsys, "And when?", flags=("--resume", "--collection", "default"))
    assert built == ["default"]
    remove_collection(fake_pipeline.settings, "alpha")
    built.clear()
    status, out, _ = chat(monkeypatch, capsys, "", flags=("--resume",))
    assert status == 0 and built == [None] and "in collection" not in out


def test_rag_chat_resume_with_nothing_saved_is_a_one_line_error_with_exit_2(fake_cli, monkeypatch, capsys):
    status, out, err = chat(monkeypatch, capsys, BLETCHLEY, flags=("--resume",))
    assert status == 2 and out == ""
    assert err.startswith("rag: error: no saved conversation to resume") and err.count("\n") == 1


def test_rag_chat_with_history_off_stores_nothing(fake_cli, monkeypatch, capsys):
    monkeypatch.setenv("RAG_SAVE_HISTORY", "off")
    from rag.config import Settings

    fake_cli.settings = fake_cli.settings.replace(save_history=Settings.load().save_history)
    assert fake_cli.settings.save_history is False
    fake_cli.generator.replies += [GROUNDED]
    status, out, _ = chat(monkeypatch, capsys, BLETCHLEY, "When?")
    assert status == 0 and "[1]" in out
    saved = History.for_settings(fake_cli.settings)
    assert not saved.path.exists() and saved.conversations() == []


def test_rag_history_lists_the_newest_first_and_exports_one_as_markdown(fake_cli, monkeypatch, capsys, tmp_path):
    fake_cli.generator.replies += [GROUNDED, GROUNDED]
    chat(monkeypatch, capsys, "An older question?", "/clear", BLETCHLEY)
    index = ["--index-dir", str(fake_cli.settings.index_dir)]

    assert cli.main(["history", *index]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith(f" 1 turn  default  {BLETCHLEY}")
    assert lines[1].endswith("An older question?")
    newest = int(lines[0].split()[0])

    assert cli.main(["history", *index, "export", str(newest)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# {BLETCHLEY}\n") and "**Answer:** " in text and "- [1] " in text

    out = tmp_path / "chat.md"
    assert cli.main(["history", "export", str(newest), "-o", str(out), *index]) == 0
    assert out.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("args, message", [(["export", "99"], "no saved conversation 99"),
                                           (["export", "x"], "invalid int value")])
def test_rag_history_export_of_a_bad_number_is_a_one_line_error_with_exit_2(args, message, capsys):
    try:
        status = cli.main(["history", *args])
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1


def test_rag_history_with_nothing_saved_says_so(capsys):
    assert cli.main(["history"]) == 0
    assert capsys.readouterr().out.startswith("No saved conversations in ")


def test_rag_chat_goes_on_answering_when_the_history_cannot_be_saved(fake_cli, monkeypatch, capsys):
    path = History.for_settings(fake_cli.settings).path
    path.write_bytes(b"not a database" * 200)
    fake_cli.generator.replies += [GROUNDED, GROUNDED]
    status, out, err = chat(monkeypatch, capsys, BLETCHLEY, "Which nations signed?")
    assert status == 0 and out.count("28 nations [1]") == 2
    assert err.count("not a readable conversation store") == 2 and err.count("\n") == 2
    assert path.read_bytes() == b"not a database" * 200
