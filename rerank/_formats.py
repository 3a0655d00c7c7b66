"""Input files whose extension says nothing: recognise the format by content; ``-`` is stdin.

:mod:`rerank.data` picks a reader by extension (``.tsv``, ``.jsonl``, ``.parquet``,
``.run``/``.trec``, ``.qrels``). Judgments and runs often come as ``qrels.txt``, ``run``,
``run.gz`` or on a pipe, so :func:`readable` looks at the first bytes (Parquet's ``PAR1``
magic, a JSON object, a tab-separated header naming ``query_id``, or the number of
whitespace-separated fields of the first line: 4 for qrels, 6 for a run), and hands the
reader a path with the matching extension: a symlink, or for gzip and stdin a temporary
copy. Error messages name the file as the user gave it.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rerank.errors import RerankError, input_error

__all__ = ["STDIN", "readable", "sniff"]

STDIN = "-"
_KNOWN = (".tsv", ".jsonl", ".parquet", ".csv", ".run", ".trec", ".qrels")
_KNOWN += tuple(f"{suffix}.gz" for suffix in (".tsv", ".jsonl", ".csv", ".run", ".trec", ".qrels"))
_EXTENSION = {"parquet": ".parquet", "jsonl": ".jsonl", "tsv": ".tsv", "run": ".run"}
_EXTENSION["qrels"] = ".qrels"
# Extensions naming a format we do not read: leave them to the readers' error.
_OTHER = (".json", ".xls", ".xlsx", ".pkl", ".arrow", ".feather", ".ipc", ".npy", ".npz")


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes: ``parquet``, ``jsonl``, ``tsv``, ``run``,
    ``qrels``, or ``None``.

    Examples
    --------
    >>> sniff(b"301 0 FBIS3-10082 1\\n"), sniff(b"301 Q0 FBIS3-10082 1 12.5 bm25\\n")
    ('qrels', 'run')
    >>> sniff(b"query_id\\tdoc_id\\tlabel\\n1\\t2\\t0\\n"), sniff(b'{"query_id": 1}\\n')
    ('tsv', 'jsonl')
    """
    if head.startswith(b"PAR1"):
        return "parquet"
    lines = [line for line in head.splitlines() if line.strip()]
    if not lines:
        return None
    first = lines[0].lstrip(b"\xef\xbb\xbf")
    if first.lstrip().startswith(b"{"):
        return "jsonl"
    if b"\t" in first and b"query_id" in first.split(b"\t"):
        return "tsv"
    return {4: "qrels", 6: "run"}.get(len(first.split()))


@contextlib.contextmanager
def readable(path: str | Path, role: str) -> Iterator[Path]:
    """A path the readers of :mod:`rerank.data` accept, for the file the user named.

    ``path`` with a known extension is yielded as it is (and so is one naming a format we
    do not read, such as ``.xlsx``, for the readers to refuse). ``-`` reads stdin; other
    paths (``.txt``, no extension, ``.gz`` of a TREC file, ``qrels.robust04``) are
    recognised by content. A
    :class:`RerankError` raised inside the block names ``path`` as given, not the
    temporary file. ``role`` (``"qrels"``, ``"run"``) names the input in messages.
    """
    name = str(path)
    plain = name.lower().removesuffix(".gz")
    if name != STDIN and (name.lower().endswith(_KNOWN) or plain.endswith(_OTHER)):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="rerank-input-") as tmp:
        if name == STDIN:
            raw = Path(tmp) / "stdin"
            with open(raw, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out)
            source, shown = raw, "<stdin>"
        else:
            source, shown = Path(path), name
            if not source.exists():
                raise input_error(name, "no such file")
            if not source.is_file():
                raise input_error(name, "not a file")
        with open(source, "rb") as handle:
            magic = handle.read(2)
        gz = magic == b"\x1f\x8b"
        opener = gzip.open if gz else open
        try:
            with opener(source, "rb") as handle:
                head = handle.read(1 << 16)
        except OSError as err:
            raise input_error(shown, f"cannot read: {err}") from None
        kind = sniff(head)
        if kind is None:
            raise input_error(
                shown,
                f"cannot tell the format of this {role} file from its content: expected TREC "
                "qrels (qid 0 docid rel), a TREC run (qid Q0 docid rank score tag), a TSV "
                "with a query_id header, JSON lines or Parquet; or name it by extension "
                "(.qrels, .run, .tsv, .jsonl, .parquet)",
            )
        stem = "stdin" if name == STDIN else (Path(name).name.split(".")[0] or "input")
        wrong = {"qrels": "run", "judgments": "run", "run": "qrels", "scores": "qrels"}
        if wrong.get(role) == kind:
            found = {"run": "a TREC run (6 fields a line)", "qrels": "TREC qrels (4 fields a line)"}
            expected = {"qrels": "TREC qrels", "judgments": "judgments", "run": "a run"}
            expected["scores"] = "scores"
            raise input_error(shown, f"looks like {found[kind]}, expected {expected[role]}")
        target = Path(tmp) / f"{stem}{_EXTENSION[kind]}"
        if gz:
            with gzip.open(source, "rb") as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
        elif name == STDIN:
            raw.rename(target)
        else:
            target.symlink_to(source.resolve())
        try:
            yield target
        except RerankError as err:
            raise RerankError(str(err).replace(str(target), shown)) from None
