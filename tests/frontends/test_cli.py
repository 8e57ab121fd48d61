import io
import json
import os
import subprocess
import sys

import pytest
from test_embed_fast import LOADED_MODULES

from rag import cli


@pytest.fixture
def fake_cli(monkeypatch, fake_pipeline):
    monkeypatch.setattr(cli, "_pipeline", lambda args: fake_pipeline)
    return fake_pipeline


def test_search_json_has_the_documented_shape(fake_cli, capsys):
    assert cli.main(["search", "Bletchley Declaration nations", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "Bletchley Declaration nations" and len(out["hits"]) == 3
    hit = out["hits"][0]
    assert {"rank", "score", "doc", "page", "start", "end", "text"} <= set(hit)
    assert hit["rank"] == 1 and hit["doc"].endswith(".txt")


def test_ask_json_has_the_documented_shape(fake_cli, capsys):
    fake_cli.generator.replies.append("The Bletchley Declaration was signed by 28 nations [1].")
    assert cli.main(["ask", "How many nations signed the Bletchley Declaration?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"question", "answer", "abstained", "sentences", "citations", "raw", "timings_ms"} <= set(out)
    assert set(out["timings_ms"]) >= {"retrieve", "generate", "total"}
    assert {"id", "doc", "page", "start", "end", "text"} <= set(out["citations"][0])


def test_missing_index_is_a_one_line_error_with_exit_2(tmp_path, capsys):
    assert cli.main(["search", "anything", "--index-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rag index" in err and "Traceback" not in err


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["search"])
    assert exc.value.code == 2


def test_erasing_a_wrapped_draft_moves_up_over_every_row(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda: os.terminal_size((10, 5)))
    assert cli.erase_lines("x" * 25) == "\r\033[2A\033[J"
    assert cli.erase_lines("short") == "\r\033[J"
    assert cli.erase_lines("a\nb\n" + "c" * 11) == "\r\033[3A\033[J"


# --- rag chat ------------------------------------------------------------------------------------
@pytest.fixture
def chat_spy(fake_cli, monkeypatch):
    """The fake pipeline, recording what each question retrieved with and which history it came with."""
    seen = {"searched": [], "asked": []}
    stream, search = fake_cli.stream, fake_cli.retriever.search

    def recorded_stream(question, history=None, top_k=None, documents=None):
        seen["asked"].append((question, list(history or [])))
        yield from stream(question, history, top_k, documents)

    def recorded_search(query, k=5, **options):
        seen["searched"].append(query)
        return search(query, k, **options)

    monkeypatch.setattr(fake_cli, "stream", recorded_stream)
    monkeypatch.setattr(fake_cli.retriever, "search", recorded_search)
    return seen


def chat(monkeypatch, capsys, *lines: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    status = cli.main(["chat"])
    out, err = capsys.readouterr()
    return status, out, err


def test_chat_keeps_the_history_rewrites_a_follow_up_and_forgets_both_after_clear(chat_spy, monkeypatch, capsys):
    first = "What did China regulate in August 2023?"
    status, out, err = chat(monkeypatch, capsys, first, "When was it enacted?", "/clear", "When was it enacted?", "",
                            "Never asked: the empty line before quits.")

    assert status == 0 and err == ""
    assert out.startswith("Ask about your documents. An empty line or Ctrl-D quits; /clear forgets the history.\n")
    asked = chat_spy["asked"]
    assert [q for q, _ in asked] == [first, "When was it enacted?", "When was it enacted?"]
    answer = asked[1][1][1]["content"]  # the first answer, as shown, is the assistant's turn
    assert asked[0][1] == [] and asked[1][1] == [{"role": "user", "content": first},
                                                 {"role": "assistant", "content": answer}]
    assert f"> {answer}\n" in out
    assert asked[2][1] == []  # /clear
    # Retrieval searches the follow-up with the earlier question in it, and after /clear without it.
    searched = chat_spy["searched"]
    assert searched[0] == first and first in searched[1] and "When was it enacted?" in searched[1]
    assert searched[2] == "When was it enacted?"


def test_chat_quits_at_end_of_input_and_goes_on_after_a_bad_question(chat_spy, monkeypatch, capsys):
    status, out, err = chat(monkeypatch, capsys, "x" * 3000, "How many nations signed the Bletchley Declaration?")

    assert status == 0
    assert err.startswith("rag: error: ") and err.count("\n") == 1
    assert [q for q, _ in chat_spy["asked"]] == ["x" * 3000, "How many nations signed the Bletchley Declaration?"]
    assert chat_spy["asked"][1][1] == []  # a question that failed leaves no turn in the history
    assert out.endswith("> \n")  # Ctrl-D at the prompt: a newline, then exit 0


# --- settings: defaults, then the TOML file, then RAG_* variables, then command-line flags ---------
def test_each_settings_source_overrides_the_one_before(tmp_path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text("top_k = 5\ntemperature = 0.3\nmax_tokens = 64\nindex_dir = 'from-file'\n")
    monkeypatch.setenv("RAG_TOP_K", "6")
    monkeypatch.setenv("RAG_TEMPERATURE", "0.5")
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "from-env"))

    args = cli.build_parser().parse_args(["--config", str(config), "ask", "x", "-k", "7",
                                          "--index-dir", str(tmp_path / "from-flag")])
    s = cli._pipeline(args).settings

    assert s.chunk_overlap == 100  # default only
    assert s.max_tokens == 64  # the file over the default (128)
    assert s.temperature == 0.5  # the environment over the file
    assert s.top_k == 7 and s.index_dir == tmp_path / "from-flag"  # the flag over the environment


def test_the_config_file_comes_from_rag_config_when_no_flag_names_one(tmp_path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text("max_tokens = 64\n")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    assert cli._pipeline(cli.build_parser().parse_args(["search", "x"])).settings.max_tokens == 64


@pytest.mark.parametrize("toml, message", [
    ("top_k = \n", "rag: error: cannot read config file {path}: "),
    ("top_k = 'many'\n", "rag: error: setting top_k must be int, got 'many'"),
    ("topk = 5\n", "rag: error: unknown setting: topk"),
])
def test_a_bad_config_file_is_a_one_line_error_with_exit_2(tmp_path, capsys, toml, message):
    config = tmp_path / "rag.toml"
    config.write_text(toml)
    for argv in (["--config", str(config), "search", "x"], ["--config", str(config), "ask", "x"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(message.format(path=config)) and err.count("\n") == 1, err


# --- the question path stays light -----------------------------------------------------------------
@pytest.mark.integration
def test_rag_ask_and_rag_chat_in_a_new_process_never_import_torch(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "treaty.txt").write_text("The Bletchley Declaration was signed by twenty-eight nations in 2023.\n\n"
                                     "Lisbon has mild winters and warm summers.\n", encoding="utf-8")
    # The in-process model (the smallest tier), as `rag ask` runs by default.
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_MODEL": "smollm2-135m"}

    def rag(*args, stdin=""):
        return subprocess.run([sys.executable, "-c", LOADED_MODULES, *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)

    assert rag("index", str(docs)).returncode == 0
    asked = rag("ask", "How many nations signed the Bletchley Declaration?")
    chatted = rag("chat", stdin="How many nations signed the Bletchley Declaration?\nWhen was it signed?\n")

    for run in (asked, chatted):
        assert run.returncode == 0, run.stderr
        heavy = run.stdout.splitlines()[-1].split()
        assert heavy[-2:] == ["STATUS", "0"] and "llama_cpp" in heavy, run.stdout  # it answered in-process
        assert not {"torch", "transformers", "sentence_transformers"} & set(heavy), heavy
    assert chatted.stdout.count("> ") == 3  # two questions answered, then end of input
