"""Build the shipped Chinese text sample from Debian's ``debian-faq-zh-cn`` package.

The Debian GNU/Linux FAQ in Simplified Chinese (package ``debian-faq-zh-cn`` 11.1, Debian 12
"bookworm") is real, modern Chinese prose written by people: questions a user would type
("如何安装 Debian？"), chapter titles and answers, mixed with the English technical terms
and command names that real Chinese search logs contain. See PROVENANCE.md for the
licence and README.md for what you should get.

Run from the repository root, either on the installed package::

    apt-get install debian-faq-zh-cn
    .venv/bin/python data/zh_sample/prepare.py

or on the downloaded ``.deb`` (no installation needed)::

    apt-get download debian-faq-zh-cn
    .venv/bin/python data/zh_sample/prepare.py --deb debian-faq-zh-cn_11.1_all.deb

Every paragraph of an FAQ entry (an ``<h2>`` question with its answer, sub-sections
included) becomes one row ``query_id, doc_id, query, title, summary`` (entry anchor,
anchor-N, question, chapter title, paragraph): a query with its passages. Every question
and paragraph also becomes one line of plain text. Entries whose
``zlib.crc32(query_id) % 5 == 0`` are held out (about a fifth). The output is
deterministic: re-running gives byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALLED = Path("/usr/share/doc/debian/FAQ/zh-cn")
FAQ_IN_DEB = Path("usr/share/doc/debian/FAQ/zh-cn")
HELD_OUT_MODULUS = 5
COLUMNS = ["query_id", "doc_id", "query", "title", "summary"]

BLOCKS = {"p", "li", "dt", "dd", "td", "th", "h1", "h2", "h3", "h4", "title", "br"}
SKIP_CLASSES = {"navheader", "navfooter", "toc", "footnotes"}
# Characters whose neighbours are glued without a space when a source line break falls
# between them: CJK ideographs, CJK punctuation and full-width forms.
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")


def clean(text: str) -> str:
    """Join the source's line breaks the way a reader sees them; squeeze whitespace."""
    text = _CJK_BREAK.sub("", text)
    return " ".join(text.split())


@dataclass
class Entry:
    """One FAQ entry: an ``<h2>`` question and the paragraphs under it."""

    anchor: str
    question: str
    chapter: str
    paragraphs: list[str] = field(default_factory=list)


class FaqPage(HTMLParser):
    """Collect the chapter title, the entries and their paragraphs of one DocBook page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chapter = ""
        self.entries: list[Entry] = []
        self._buf: list[str] = []
        self._tag_stack: list[tuple[str, bool]] = []
        self._skip = 0
        self._heading: str | None = None
        self._anchor = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        skipping = tag == "pre" or (
            tag == "div" and bool(SKIP_CLASSES & set((a.get("class") or "").split()))
        )
        if tag not in ("br", "img", "hr", "meta", "link"):
            self._tag_stack.append((tag, skipping))
            self._skip += skipping
        if tag == "a" and a.get("id") and self._heading is not None:
            self._anchor = self._anchor or str(a["id"])
        if tag in BLOCKS:
            self._flush()
            if tag in ("h1", "h2", "h3", "h4"):
                self._heading = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self._flush(tag)
        while self._tag_stack:
            name, skipping = self._tag_stack.pop()
            self._skip -= skipping
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buf.append(data)

    def _flush(self, closing: str | None = None) -> None:
        text = clean("".join(self._buf))
        self._buf = []
        heading, self._heading = self._heading, None if closing else self._heading
        if not text:
            return
        if heading == "h1":
            self.chapter = re.sub(r"^第\s*\d+\s*章\s*", "", text)
            self._anchor = ""
        elif heading == "h2":
            question = re.sub(r"^\d+(\.\d+)*\.\s*", "", text)
            self.entries.append(Entry(self._anchor or question, question, self.chapter))
            self._anchor = ""
        elif heading in ("h3", "h4"):
            if self.entries:
                self.entries[-1].paragraphs.append(re.sub(r"^\d+(\.\d+)*\.\s*", "", text))
            self._anchor = ""
        elif self.entries:
            self.entries[-1].paragraphs.append(text)


def read_faq(folder: Path) -> list[Entry]:
    """All entries of the FAQ's chapter pages, in the book's order (the index page is the TOC)."""
    index = (folder / "index.zh-cn.html").read_text(encoding="utf-8")
    order = list(dict.fromkeys(re.findall(r'href="([a-z-]+\.zh-cn\.html)"', index)))
    entries: list[Entry] = []
    for name in order:
        if name == "index.zh-cn.html":
            continue
        page = FaqPage()
        page.feed((folder / name).read_text(encoding="utf-8"))
        page.close()
        entries.extend(page.entries)
    return entries


def is_held_out(anchor: str) -> bool:
    return zlib.crc32(anchor.encode("utf-8")) % HELD_OUT_MODULUS == 0


def _tsv_field(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def write(entries: Sequence[Entry], out: Path) -> dict[str, tuple[int, int, int, int]]:
    """Write ``{train,heldout}.tsv`` and ``{train,heldout}.txt``; return counts per split."""
    counts = {}
    for split in ("train", "heldout"):
        chosen = [e for e in entries if is_held_out(e.anchor) == (split == "heldout")]
        rows = ["\t".join(COLUMNS)]
        lines: list[str] = []
        for e in chosen:
            for k, paragraph in enumerate(e.paragraphs, start=1):
                fields = (e.anchor, f"{e.anchor}-{k}", e.question, e.chapter, paragraph)
                rows.append("\t".join(_tsv_field(f) for f in fields))
            lines.extend([e.question, *e.paragraphs])
        (out / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        chars = sum(len(line) for line in lines)
        counts[split] = (len(chosen), len(rows) - 1, len(lines), chars)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=INSTALLED, help="installed FAQ folder")
    parser.add_argument("--deb", type=Path, help="debian-faq-zh-cn_*.deb to extract instead")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.source
        if args.deb is not None:
            subprocess.run(["dpkg-deb", "-x", str(args.deb), tmp], check=True)
            folder = Path(tmp) / FAQ_IN_DEB
        if not (folder / "index.zh-cn.html").is_file():
            print(
                f"prepare.py: {folder}: no index.zh-cn.html; install debian-faq-zh-cn "
                "or pass --deb FILE",
                file=sys.stderr,
            )
            return 2
        entries = read_faq(folder)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, (n, rows, lines, chars) in write(entries, args.out).items():
        print(f"{split}: {n} entries, {rows} passages, {lines} lines, {chars} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
