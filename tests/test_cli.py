import json
import os

import pytest

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
