"""What a file really is (by its first bytes), and a zip checked before any library opens it.

.docx, .pptx, .xlsx, .odt and .epub files are zip archives, and an archive is attacker-controlled:
a 10 KB file can declare, or really hold, gigabytes. `check_zip` refuses one whose central
directory declares too many members, too many bytes or too high a ratio, then inflates every
member in bounded pieces, so a header that lies about its size fails its CRC check here instead of
inside a library that trusts it.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnreadableDocument

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream an encrypted OOXML file keeps in its OLE container; directory names are UTF-16-LE.
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_READ_PIECE = 1 << 16

# What the zip must hold for its suffix: a member name, or (member, content it starts with).
EXPECTED_PARTS = {
    ".docx": ("word/document.xml", "a Word document"),
    ".pptx": ("ppt/presentation.xml", "a PowerPoint presentation"),
    ".xlsx": ("xl/workbook.xml", "an Excel workbook"),
    ".odt": (("mimetype", b"application/vnd.oasis.opendocument.text"), "an OpenDocument text"),
    ".epub": (("mimetype", b"application/epub+zip"), "an EPUB e-book"),
}


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may expand to before it is refused."""

    max_bytes: int = 256 * 2**20
    max_members: int = 10_000
    # Deflate tops out near 1,030:1; XML in a real Office file compresses 5 to 50 times.
    max_ratio: int = 200
    # Members smaller than this are never refused for their ratio (a tiny, repetitive XML part).
    ratio_floor: int = 2**20


def sniff(data: bytes) -> str:
    """What the first bytes say a file is: "zip", "ole", "pdf", "rtf" or "other"."""
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith(OLE_MAGIC):
        return "ole"
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if data.startswith(b"{\\rtf"):
        return "rtf"
    return "other"


def refuse_wrong_kind(data: bytes, path: Path) -> None:
    """Raise UnreadableDocument when the bytes are not what the suffix says (encrypted Office files included)."""
    suffix = path.suffix.lower()
    kind = sniff(data)
    if suffix == ".rtf":
        if kind != "rtf":
            raise UnreadableDocument(f"{path}: not an RTF file (it starts like {_describe(kind)}; its extension lies)")
        return
    _, name = EXPECTED_PARTS[suffix]
    if kind == "ole":
        if _ENCRYPTION_INFO in data:
            raise UnreadableDocument(f"{path}: password-protected (encrypted) Office file; save it without a password")
        raise UnreadableDocument(f"{path}: a legacy binary Office file (.doc/.ppt/.xls), not {name}; "
                                 "save it in the current format")
    if kind != "zip":
        raise UnreadableDocument(f"{path}: not {name} (it is {_describe(kind)}; its extension lies)")


def _describe(kind: str) -> str:
    return {"pdf": "a PDF", "rtf": "an RTF file", "zip": "a zip archive", "ole": "an OLE (legacy Office) file"}.get(
        kind, "text or an unknown format")


def check_zip(data: bytes, path: Path, limits: ZipLimits = ZipLimits()) -> None:
    """Refuse a zip that is corrupt, too big, too compressed, or not of its suffix's kind; else return."""
    suffix = path.suffix.lower()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise UnreadableDocument(f"{path}: corrupt or truncated file (not a readable zip archive)") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise UnreadableDocument(f"{path}: zip bomb refused: more than {limits.max_members:,} members")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_bytes:
            raise UnreadableDocument(f"{path}: zip bomb refused: it expands to {declared:,} bytes "
                                     f"(limit {limits.max_bytes:,})")
        for info in infos:
            if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise UnreadableDocument(f"{path}: zip bomb refused: {info.filename!r} is compressed "
                                         f"{info.file_size // max(info.compress_size, 1):,}:1 "
                                         f"(limit {limits.max_ratio}:1)")
        _expect_parts(archive, path, suffix)
        _inflate_all(archive, infos, path, limits)


def _expect_parts(archive: zipfile.ZipFile, path: Path, suffix: str) -> None:
    part, name = EXPECTED_PARTS[suffix]
    member, head = part if isinstance(part, tuple) else (part, b"")
    try:
        with archive.open(member) as stream:
            found = stream.read(len(head)) if head else b""
    except KeyError:
        raise UnreadableDocument(f"{path}: not {name} (the zip has no {member}; its extension lies, "
                                 "or the file is damaged)") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        raise UnreadableDocument(f"{path}: corrupt or truncated file ({member} cannot be read)") from None
    if head and found != head:
        raise UnreadableDocument(f"{path}: not {name} (its mimetype is {found[:60]!r})")


def _inflate_all(archive: zipfile.ZipFile, infos, path: Path, limits: ZipLimits) -> None:
    """Inflate every member in 64 KB pieces: memory stays bounded, and a lying size fails its CRC."""
    total = 0
    for info in infos:
        try:
            with archive.open(info) as stream:
                while piece := stream.read(_READ_PIECE):
                    total += len(piece)
                    if total > limits.max_bytes:
                        raise UnreadableDocument(f"{path}: zip bomb refused: it expands to more than "
                                                 f"{limits.max_bytes:,} bytes")
        except UnreadableDocument:
            raise
        except RuntimeError as exc:  # an encrypted member ("File ... is encrypted, password required")
            raise UnreadableDocument(f"{path}: encrypted zip member {info.filename!r} ({exc})") from None
        except NotImplementedError:
            raise UnreadableDocument(f"{path}: {info.filename!r} uses an unsupported compression method") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error):
            raise UnreadableDocument(f"{path}: corrupt or truncated file ({info.filename!r} does not inflate "
                                     "to what its header says)") from None
