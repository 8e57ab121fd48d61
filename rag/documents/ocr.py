"""Text for the pages of a PDF that have none: scanned pages, read by OCR with Debian's tesseract.

A page needs OCR when its text layer holds almost nothing and it shows an image. Only those pages
are rendered (pypdfium2, whose wheel ships pdfium) and read by the `tesseract` command, one child
process per page, within `ReadLimits.ocr_seconds` and the reading process's memory limit (a child
inherits it). The text of each page is appended to a cache file named by the PDF's sha256 as soon
as it is read, so a re-index, a rebuild or a run resumed after Ctrl-C never reads a page twice.
docs/formats.md says why these tools and what accuracy to expect.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UnreadableDocument

# Fewer characters than this on a page that shows an image: a scan (perhaps with a stamped page number).
MIN_TEXT_CHARS = 16
# Tesseract reads best at about 300 dpi; a page larger than about A2 is rendered at less, not in more pixels.
RENDER_DPI = 300
MAX_PIXELS = 5000 * 7000
TESSERACT = "tesseract"
LANGUAGE = "eng"

Progress = Callable[[int, int], None]


def pages_needing_ocr(reader, pages: list[str], repeats: set[int] = frozenset()) -> list[int]:
    """0-based numbers of the pages whose text layer is (nearly) empty and that show an image.

    `repeats` are pages that repeat an earlier one (the same page object listed again): never read twice.
    """
    return [n for n, text in enumerate(pages)
            if n not in repeats and len("".join(text.split())) < MIN_TEXT_CHARS and _shows_image(reader.pages[n])]


def _shows_image(page, depth: int = 0) -> bool:
    """True when the page (or a form it draws, a few levels deep) has an image XObject."""
    try:
        objects = (page.get("/Resources") or {}).get_object().get("/XObject") or {}
        for ref in objects.get_object().values():
            obj = ref.get_object()
            if obj.get("/Subtype") == "/Image":
                return True
            if obj.get("/Subtype") == "/Form" and depth < 3 and _shows_image(obj, depth + 1):
                return True
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
    return False


def fill_scanned_pages(reader, data: bytes, pages: list[str], path: Path, limits,
                       progress: Progress | None = None, repeats: set[int] = frozenset()) -> list[str]:
    """`pages` with the text of the scanned ones read by OCR (or left empty when `limits.ocr` is off).

    `progress(done, total)` is called before each page that is read, and once when all are. A page
    that renders to the same image as one read before gets no text of its own (its text is not
    indexed twice), and costs no second OCR.
    """
    todo = pages_needing_ocr(reader, pages, repeats)
    if not todo:
        return pages
    if not limits.ocr:
        if all(not p.strip() for p in pages):
            raise UnreadableDocument(f"{path}: {len(todo)} scanned page{'s' * (len(todo) > 1)} without a "
                                     "text layer, and OCR is off (--no-ocr)")
        return pages
    if len(todo) > limits.max_ocr_pages:
        raise UnreadableDocument(f"{path}: {len(todo):,} scanned pages, more than the {limits.max_ocr_pages:,} "
                                 "that may be read by OCR (max_ocr_pages)")
    limit = limits.text_limit(len(data))[0]
    cache = OcrCache(Path(limits.ocr_cache)) if limits.ocr_cache else None
    sha256 = hashlib.sha256(data).hexdigest()
    known = cache.load(sha256) if cache else {}
    pages = list(pages)
    missing = [n for n in todo if n + 1 not in known]
    if missing and not shutil.which(TESSERACT):
        raise UnreadableDocument(f"{path}: scanned pages need OCR, and `tesseract` is not installed "
                                 "(`make` installs it; or index with --no-ocr)")
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data) if missing else None
    unread = set(missing)
    chars = sum(map(len, pages)) + sum(len(known[n + 1]) for n in todo if n not in unread)
    images: set[str] = set()  # the hashes of the images read so far
    started = time.monotonic()
    try:
        for done, n in enumerate(missing):
            spent = time.monotonic() - started
            if done and spent > limits.ocr_file_seconds:
                kept = ("; the pages read are cached, so the next run goes on from there" if cache else "")
                raise UnreadableDocument(f"{path}: OCR stopped after {spent:.0f} s with {done} of {len(missing)} "
                                         f"pages read (ocr_file_timeout){kept}")
            if progress:
                progress(done, len(missing))
            image = render_page(document, n)
            digest = hashlib.sha256(image).hexdigest()
            text = "" if digest in images else ocr_image(image, limits.ocr_seconds, path, n + 1)
            images.add(digest)
            known[n + 1] = text
            if cache:
                cache.append(sha256, n + 1, text)
            chars += len(text)
            if chars > limit:  # what OCR reads counts as the text layer does
                raise too_much_text(path, limits, len(data))
    finally:
        if document is not None:
            document.close()
    if missing and progress:
        progress(len(missing), len(missing))
    for n in todo:
        pages[n] = known[n + 1]
    if sum(map(len, pages)) > limit:  # with every page from the cache
        raise too_much_text(path, limits, len(data))
    return pages


def too_much_text(path: Path, limits, size: int) -> UnreadableDocument:
    """The error for a file of `size` bytes past its text limit (`ReadLimits.text_limit`)."""
    limit, setting = limits.text_limit(size)
    return UnreadableDocument(f"{path}: more than {limit:,} characters of text ({setting})")


def render_page(document, number: int) -> bytes:
    """Page `number` (0-based) of a pdfium document as a greyscale PGM image at RENDER_DPI (less for a huge page)."""
    page = document[number]
    try:
        return page_image(page)[0]
    finally:
        page.close()


def page_image(page) -> tuple[bytes, float]:
    """A pdfium page as the greyscale PGM image tesseract reads, and its scale (pixels per PDF point)."""
    width, height = page.get_size()  # points
    scale = min(RENDER_DPI / 72, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
    pixels = page.render(scale=scale, grayscale=True).to_numpy()
    if pixels.ndim == 3:  # pdfium may hand back BGR(x) even when asked for grey
        pixels = pixels[..., :3].mean(axis=2).astype("uint8")
    rows, columns = pixels.shape
    return b"P5\n%d %d\n255\n" % (columns, rows) + pixels.tobytes(), scale


def ocr_image(image: bytes, seconds: float, path: Path, page: int) -> str:
    """The text tesseract reads in an image, or UnreadableDocument when it fails or runs too long."""
    # One thread: OCR shares the machine with the embedder and the app, and pages are read in turn.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    die_with_parent = _die_with_parent()
    try:
        done = subprocess.run([TESSERACT, "stdin", "stdout", "-l", LANGUAGE, "--dpi", str(RENDER_DPI)],
                              input=image, capture_output=True, timeout=seconds, env=env,
                              preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired:
        raise UnreadableDocument(f"{path}: OCR of page {page} took longer than {seconds:g} s "
                                 "(ocr_page_timeout)") from None
    except OSError as exc:
        raise UnreadableDocument(f"{path}: cannot run tesseract ({exc.strerror or exc})") from None
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        raise UnreadableDocument(f"{path}: OCR of page {page} failed ({how})")
    text = done.stdout.decode("utf-8", "replace").replace("\f", "")
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def ocr_words(image: bytes, seconds: float) -> list[tuple[str, tuple[int, int, int, int], tuple[int, int, int]]]:
    """The words tesseract reads in an image, in reading order, with their boxes in the image's pixels
    (left, top, right, bottom) and their line (block, paragraph, line): the same recognition as
    `ocr_image` at the same DPI, so the words are the ones the index holds. UnreadableDocument on failure."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run([TESSERACT, "stdin", "stdout", "-l", LANGUAGE, "--dpi", str(RENDER_DPI), "tsv"],
                              input=image, capture_output=True, timeout=seconds, env=env,
                              preexec_fn=_die_with_parent())
    except subprocess.TimeoutExpired:
        raise UnreadableDocument(f"finding the cited words on the page took longer than {seconds:g} s") from None
    except OSError as exc:
        raise UnreadableDocument(f"cannot run tesseract ({exc.strerror or exc})") from None
    if done.returncode != 0:
        raise UnreadableDocument(f"tesseract failed on the page (exit code {done.returncode})")
    words = []
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue  # level 5 rows are words; the others are pages, blocks, paragraphs and lines
        left, top, width, height = (int(c) for c in cells[6:10])
        words.append((cells[11].strip(), (left, top, left + width, top + height),
                      (int(cells[2]), int(cells[3]), int(cells[4]))))
    return words


def _die_with_parent() -> Callable[[], None] | None:
    """For tesseract, run before exec: be killed when the reading process dies (a cancelled run, a timeout).

    The C function is looked up here, before the fork: between fork and exec nothing may import.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class OcrCache:
    """OCR text by the PDF's sha256: `<dir>/<sha256>.jsonl`, one `{"page", "text"}` line per page read.

    Lines are appended as pages are read, so an interrupted run keeps the pages it finished. The
    folder lives beside the index's generations (index_dir/ocr-cache) and no index write removes it.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def load(self, sha256: str) -> dict[int, str]:
        """The pages read before, by 1-based number; a damaged line (a crash mid-write) is ignored."""
        try:
            lines = (self.directory / f"{sha256}.jsonl").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return {}
        known = {}
        for line in lines:
            try:
                entry = json.loads(line)
                known[int(entry["page"])] = str(entry["text"])
            except (ValueError, KeyError, TypeError):
                continue
        return known

    def append(self, sha256: str, page: int, text: str) -> None:
        """Add one page's text; a cache that cannot be written costs a second OCR later, nothing more."""
        line = json.dumps({"page": page, "text": text}, ensure_ascii=False) + "\n"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / f"{sha256}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "surrogatepass"))
            finally:
                os.close(fd)
        except OSError:
            pass


def print_progress(path: Path, done: int, total: int) -> None:
    """`OCR page 3/12 of scan.pdf` on stderr: redrawn in place on a terminal, a line per page otherwise."""
    tty = sys.stderr.isatty()
    if done == total:
        if tty:
            print(f"\rOCR {total}/{total} pages of {path.name}: done\033[K", file=sys.stderr, flush=True)
        return
    line = f"OCR page {done + 1}/{total} of {path.name}"
    print(f"\r{line}\033[K" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
