"""Which format a path names, by its extension (the one rule every reader and writer uses)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rerank.errors import input_error
from rerank.tables.columns import HEADER_WORDS
from rerank.tables.files import Source

__all__ = [
    "QRELS_SUFFIXES",
    "RUN_SUFFIXES",
    "TABLE_FORMATS",
    "TABLE_SUFFIXES",
    "file_format",
    "is_qrels",
    "is_run",
    "sniff",
    "table_kind",
    "table_source",
]

PathLike = str | os.PathLike[str]

TABLE_FORMATS = ("tsv", "jsonl", "parquet")
TABLE_SUFFIXES = (".tsv", ".jsonl", ".parquet", ".csv", ".tsv.gz", ".jsonl.gz", ".csv.gz")
RUN_SUFFIXES = (".run", ".trec")
QRELS_SUFFIXES = (".qrels", ".qrel")


def file_format(path: PathLike) -> str:
    """The format an extension names: ``tsv``, ``jsonl``, ``parquet``, ``run`` or ``qrels``.

    Examples
    --------
    >>> file_format("bm25.trec"), file_format("eval.tsv.gz")
    ('run', 'tsv')
    """
    if _suffix(path, RUN_SUFFIXES):
        return "run"
    if _suffix(path, QRELS_SUFFIXES):
        return "qrels"
    return table_kind(path)


def is_run(path: PathLike) -> bool:
    """A TREC run by its extension (``.run``/``.trec``, gzipped too)."""
    return _suffix(str(path).lower().removesuffix(".gz"), RUN_SUFFIXES)


def is_qrels(path: PathLike) -> bool:
    """TREC qrels by its extension (``.qrels``/``.qrel``, gzipped too)."""
    return _suffix(str(path).lower().removesuffix(".gz"), QRELS_SUFFIXES)


def _suffix(path: PathLike, suffixes: Sequence[str]) -> bool:
    return str(path).lower().endswith(tuple(suffixes))


def table_kind(path: PathLike) -> str:
    """``tsv``, ``jsonl``, ``parquet`` or ``csv``; any other extension is an error."""
    name = str(path).lower().removesuffix(".gz")
    for kind in ("tsv", "jsonl", "parquet", "csv"):
        if name.endswith(f".{kind}") and not (kind == "parquet" and str(path).endswith(".gz")):
            return kind
    supported = ", ".join((*TABLE_SUFFIXES, *RUN_SUFFIXES, *QRELS_SUFFIXES))
    raise input_error(path, f"unknown file extension; supported: {supported}")


def table_source(path: PathLike) -> Source:
    """The :class:`Source` of a table file (its kind from the extension)."""
    return Source(str(path), table_kind(path))


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes: ``parquet``, ``jsonl``, ``tsv``, ``run``,
    ``qrels``, or ``None``.

    Parquet by its ``PAR1`` magic, JSON lines by a first ``{``, a TSV by a tab-separated
    header naming ``query_id``; else a first line of 4 whitespace-separated fields, none a
    column name (:data:`rerank.tables.columns.HEADER_WORDS`), is TREC qrels and one of 6
    fields a TREC run.

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
    fields = first.split()
    if len(fields) == 4 and not HEADER_WORDS & {f.decode("utf-8", "replace") for f in fields}:
        return "qrels"
    return "run" if len(fields) == 6 else None
