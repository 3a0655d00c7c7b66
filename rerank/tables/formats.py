"""Which format a path names, by its extension (the one rule every reader and writer uses)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rerank.errors import input_error
from rerank.tables.files import Source

__all__ = [
    "QRELS_SUFFIXES",
    "RUN_SUFFIXES",
    "TABLE_FORMATS",
    "TABLE_SUFFIXES",
    "file_format",
    "is_qrels",
    "is_run",
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
