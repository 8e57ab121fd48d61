"""Convert pages of the Debian python3.11-doc HTML into the plain-text eval corpus in corpus/.

Usage: python3 eval/pydocs/convert.py [HTML_ROOT]   (default /usr/share/doc/python3.11/html)
Only the page body (div.body) is kept: headings, paragraphs, list items, definitions, tables and code,
one block per paragraph. Navigation, sidebars, footers and the pilcrow header links are dropped.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

from pages import PAGES

BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "pre", "tr", "div", "section",
          "blockquote", "table", "ul", "ol", "dl", "caption", "figure"}
VOID = {"br", "img", "hr", "input", "meta", "link", "wbr"}


class BodyText(HTMLParser):
    """Collect the text of div.body as blocks separated by blank lines."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped) for every open element
        self.in_body = False
        self.pre = 0
        self.cells: list[str] | None = None
        self.bullet = False  # an <li> opened and its first block still has to carry the "- "

    def skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def flush(self):
        text = "".join(self.line)
        self.line = []
        if self.pre:
            text = text.strip("\n")
        else:
            text = re.sub(r"\s+", " ", text).strip()
        if not text:
            return
        if self.bullet:
            text, self.bullet = "- " + text, False
        if self.cells is not None:
            self.cells.append(text)
            return
        self.blocks.append(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if not self.in_body:
            self.in_body = tag == "div" and "body" in classes and attrs.get("role") == "main"
            return
        if tag in VOID:
            if tag == "br" and not self.skipping():
                self.line.append("\n" if self.pre else " ")
            return
        skip = tag in {"script", "style"} or "headerlink" in classes
        self.stack.append((tag, skip))
        if self.skipping():
            return
        if tag in {"td", "th"}:
            self.flush()
        elif tag in BLOCKS:
            self.flush()
            if tag == "pre":
                self.pre += 1
            elif tag == "tr":
                self.cells = []
            elif tag == "li":
                self.bullet = True

    def handle_endtag(self, tag):
        if not self.in_body or tag in VOID:
            return
        if tag == "div" and not self.stack:
            self.flush()
            self.in_body = False
            return
        if tag not in {open_tag for open_tag, _ in self.stack}:
            return
        while self.stack:
            open_tag, skip = self.stack.pop()
            if not (skip or self.skipping()):
                self.close_block(open_tag)
            if open_tag == tag:
                break

    def close_block(self, tag):
        if tag in {"td", "th"}:
            self.flush()
        elif tag in BLOCKS:
            self.flush()
            if tag == "pre":
                self.pre -= 1
            elif tag == "tr":
                cells, self.cells = self.cells or [], None
                if cells:
                    self.blocks.append(" | ".join(cells))

    def handle_data(self, data):
        if self.in_body and not self.skipping():
            self.line.append(data)


def page_text(html: str) -> str:
    """Plain text of one Sphinx page body: blocks separated by one blank line, ending in a newline."""
    parser = BodyText()
    parser.feed(html)
    parser.close()
    return "\n\n".join(parser.blocks) + "\n"


def main(root: Path, out: Path):
    out.mkdir(exist_ok=True)
    for rel in PAGES:
        html = (root / rel).read_text(encoding="utf-8")
        name = rel.replace("/", "_").removesuffix(".html") + ".txt"
        (out / name).write_text(page_text(html), encoding="utf-8")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/python3.11/html"), here / "corpus")
