"""Pairs read in chunks, for scoring files larger than memory (``rerank score``).

:func:`scan_pairs` checks the columns and scans the file lazily as
:func:`rerank.tables.pairs.read_pairs` reads it (a TSV as untyped strings, no quoting);
:func:`iter_chunks` types and validates each chunk with the same checks
(:mod:`rerank.tables.checks`), naming the file line of a bad row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import polars as pl

from rerank.errors import input_error
from rerank.tables import checks, files
from rerank.tables.columns import ID_COLUMNS, PAIRS
from rerank.tables.files import Source

__all__ = ["count_rows", "iter_chunks", "scan_pairs"]

_INPUTS = (".parquet", ".tsv", ".jsonl", ".csv", ".tsv.gz", ".jsonl.gz", ".csv.gz")


def scan_pairs(path: str | os.PathLike[str]) -> tuple[pl.LazyFrame, Source]:
    """A lazy scan of a pairs table (``.parquet``, ``.tsv``, ``.jsonl``, ``.csv``; ``.tsv.gz``,
    ``.jsonl.gz``, ``.csv.gz``) with its columns checked."""
    if not str(path).lower().endswith(_INPUTS):
        raise input_error(
            path, "unknown input format; use .parquet, .tsv, .jsonl or .csv (also .gz)"
        )
    source = Source.of(path, "pairs")
    files.require_columns(source, PAIRS, files.columns(source))  # no such file, empty ...
    return files._scan(source).select(PAIRS), source


def count_rows(lazy: pl.LazyFrame, source: Source) -> int:
    """Data rows of the table (a TSV's trailing blank lines are not rows)."""
    try:
        rows = int(lazy.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as err:
        raise files._read_failure(source, err) from None
    if source.kind == "tsv":
        rows -= _trailing_blank_lines(source.name or "")
    if rows <= 0:
        raise input_error(source.name, "empty file: no data rows")
    return rows


def _trailing_blank_lines(path: str) -> int:
    tail = files._tail(path)  # gzip-aware
    return max(tail[len(tail.rstrip(b" \t\r\n")) :].count(b"\n") - 1, 0)


def iter_chunks(
    lazy: pl.LazyFrame, source: Source, start: int, stop: int, chunk_rows: int
) -> Iterator[tuple[int, pl.DataFrame]]:
    """Yield ``(offset, chunk)`` for rows ``start:stop``, each chunk checked and typed.

    A chunk has ``query_id, doc_id`` (non-empty strings), ``query`` (non-blank) and
    ``title, summary`` (missing -> ``""``); ``offset`` is the 0-based index of its first
    row, used to name the file line of a bad row.
    """
    if stop <= start:
        return
    offset = start
    try:
        for batch in lazy.slice(start, stop - start).collect_batches(chunk_size=chunk_rows):
            # collect_batches may hand out smaller or larger pieces; regroup to chunk_rows
            for piece in batch.iter_slices(chunk_rows):
                yield offset, _typed(piece, source, offset)
                offset += piece.height
    except (pl.exceptions.PolarsError, OSError) as err:
        raise files._read_failure(source, err) from None


def _typed(raw: pl.DataFrame, source: Source, offset: int) -> pl.DataFrame:
    typed = {c: checks.as_id(raw, c, source) for c in ID_COLUMNS}
    typed["query"] = checks.as_query_text(raw, source)
    typed.update({c: checks.as_text(raw, c, source) for c in ("title", "summary")})
    return checks.validated(raw, typed, source, offset=offset)
