"""Queries, documents and judged pairs as collections ship them (``rerank pairs``' inputs).

Read by extension (``.tsv``, ``.csv``, ``.jsonl``, ``.parquet``; ``.gz`` too):

- queries: ``query_id`` and ``query`` (``qid`` and ``text`` are accepted as aliases); a
  TSV without a header line and two fields per line is read as ``query_id<TAB>query``
  (the MS MARCO topics layout).
- documents: ``doc_id``, ``title`` and ``summary`` (``abstract`` or ``text`` as aliases
  of ``summary``; a missing ``title`` means empty titles, for collections whose title is
  merged into the text); a headerless two-field TSV is read as ``doc_id<TAB>summary``
  (the NFCorpus and MS MARCO collection layout).
- judged pairs: TREC qrels (``.qrels``/``.qrel``, or a text file whose first line is four
  fields and no column name: ``query_id 0 doc_id label``), read by the one qrels reader
  (:func:`rerank.tables.trec.read_qrels`), or any table with ``query_id`` and ``doc_id``
  (:func:`rerank.tables.pairs.read_pairs`).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import polars as pl

from rerank.errors import RerankError, first_line, input_error
from rerank.tables import checks
from rerank.tables.columns import DOC_ALIASES, HEADER_WORDS, ID_COLUMNS, QUERY_ALIASES
from rerank.tables.files import BOM, Source, damaged_gzip, utf8_error
from rerank.tables.formats import is_qrels, sniff

__all__ = ["read_documents", "read_judged", "read_queries"]


def read_queries(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read queries into ``query_id, query`` (strings; null text becomes ``""``).

    Raises :class:`RerankError` naming file, row and column for a missing column,
    a missing ``query_id`` or a ``query_id`` seen twice.
    """
    frame, source = _read_table(path, headerless=("query_id", "query"), header_words=("query",))
    frame = _rename(frame, QUERY_ALIASES, path)
    frame = frame.select(pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String))
    _check_ids(frame, "query_id", source)
    return frame.with_columns(pl.col("query").fill_null(""))


def read_documents(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read documents into ``doc_id, title, summary`` (strings; nulls become ``""``).

    Same checks as :func:`read_queries`, for ``doc_id``.
    """
    frame, source = _read_table(path, headerless=("doc_id", "summary"), header_words=("title",))
    frame = _rename(frame, DOC_ALIASES, path)
    if "title" not in frame.columns:
        frame = frame.with_columns(title=pl.lit(""))
    frame = frame.select(
        pl.col("doc_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.col("summary").cast(pl.String).fill_null(""),
    )
    _check_ids(frame, "doc_id", source)
    return frame


def read_judged(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read judged pairs (TREC qrels or a table) into ``query_id, doc_id``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "judged.tsv"
    >>> _ = path.write_text("q1\\t0\\td1\\t2\\n")
    >>> read_judged(path).rows()
    [('q1', 'd1')]
    """
    from rerank.tables.pairs import read_pairs
    from rerank.tables.trec import read_qrels

    if is_qrels(path) or _headerless_qrels(path):
        frame = read_qrels(path, label_range=None)
    else:
        frame = read_pairs(path, text=False, label_range=None)
    return frame.select(ID_COLUMNS)


def _headerless_qrels(path: str | os.PathLike[str]) -> bool:
    """A text table whose first line is TREC qrels (:func:`rerank.tables.formats.sniff`)."""
    name = str(path).lower().removesuffix(".gz")
    if not name.endswith((".tsv", ".txt")) or not Path(path).is_file():
        return False
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as handle, damaged_gzip(path):
        first = handle.readline().removeprefix(BOM)
    return sniff(first) == "qrels"


# --- reading -------------------------------------------------------------------------------


def _read_table(
    path: str | os.PathLike[str],
    *,
    headerless: tuple[str, ...] | None = None,
    header_words: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, Source]:
    """Read a table by extension; return it and its :class:`~rerank.tables.files.Source`
    (which names a row's line in errors).

    A TSV is read without a header when ``headerless`` names its columns, its first line
    has that many fields and none of them is a known column name (``header_words`` or the
    alias lists).
    """
    p = Path(path)
    name = p.name.lower()
    if not p.is_file():
        raise input_error(path, "is a directory, not a file" if p.is_dir() else "no such file")
    stem = name[:-3] if name.endswith(".gz") else name
    raw: bytes | None = None
    try:
        if stem.endswith(".parquet"):
            return pl.read_parquet(p), Source(str(path), "parquet")
        with damaged_gzip(path):
            raw = gzip.decompress(p.read_bytes()) if name.endswith(".gz") else p.read_bytes()
        raw = raw.removeprefix(BOM)  # a UTF-8 byte-order mark is not part of the first field
        if stem.endswith(".jsonl"):
            if not raw.strip():
                raise input_error(path, "the file is empty")
            return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None), Source(
                str(path), "jsonl"
            )
        if stem.endswith(".csv"):
            if not raw.strip():
                raise input_error(path, "the file is empty")
            return pl.read_csv(io.BytesIO(raw), infer_schema=False), Source(str(path), "csv")
        if stem.endswith((".tsv", ".txt")):
            return _read_tsv(raw, path, headerless, header_words)
    except RerankError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        bad_text = raw is not None and utf8_error(path, raw.split(b"\n"))
        if bad_text:  # polars says only "invalid utf-8 sequence"
            raise bad_text from None
        first = first_line(err)
        raise input_error(path, f"cannot read {stem.rsplit('.', 1)[-1]}: {first}") from None
    raise input_error(path, "unknown format; use .tsv, .csv, .jsonl or .parquet (optionally .gz)")


def _read_tsv(
    raw: bytes,
    path: str | os.PathLike[str],
    headerless: tuple[str, ...] | None,
    header_words: tuple[str, ...],
) -> tuple[pl.DataFrame, Source]:
    first_line = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if not first_line.strip():
        raise input_error(path, "the file is empty", row=1)
    fields = first_line.split("\t")
    no_header = (
        headerless is not None
        and len(fields) == len(headerless)
        and not (HEADER_WORDS | set(header_words)) & set(fields)
    )
    twice = next((f for i, f in enumerate(fields) if f in fields[:i]), None)
    if twice is not None and not no_header:  # polars would rename it and read the first
        raise input_error(path, f"column {twice!r} appears twice in the header", row=1)
    frame = pl.read_csv(
        io.BytesIO(raw),
        separator="\t",
        has_header=not no_header,
        new_columns=list(headerless) if no_header and headerless else None,
        quote_char=None,
        infer_schema=False,
    )
    # headerless: data row i is line i + 1 ("trec" counts lines so); else the TSV layout
    return frame, Source(str(path), "trec" if no_header else "tsv")


def _rename(
    frame: pl.DataFrame,
    aliases: dict[str, tuple[str, ...]],
    path: str | os.PathLike[str],
) -> pl.DataFrame:
    renames = {}
    for column, names in aliases.items():
        found = next((n for n in names if n in frame.columns), None)
        if found is None:
            accepted = " or ".join(repr(n) for n in names)
            raise input_error(path, f"missing column {accepted}; have {frame.columns}")
        renames[found] = column
    return frame.rename({k: v for k, v in renames.items() if k != v})


def _check_ids(frame: pl.DataFrame, column: str, source: Source) -> None:
    """Ids as every table's ids (:func:`rerank.tables.checks.as_id`), each once."""
    if frame.height == 0:
        raise input_error(source.name, "no rows")
    checks.validated(frame.select(column), {column: checks.as_id(frame, column, source)}, source)
    at = checks.first_repeat(frame, [column])
    if at is not None:
        raise source.error(at, f"{frame[at, column]!r} occurs more than once", column=column)
