"""Unlabeled (query, document) pairs by BM25 retrieval: the work of ``rerank pairs``.

Knowledge rekindle needs many unlabeled pairs for the teacher to score. They come
from pairing a query log with a document collection through a first-stage
retriever, as in production re-ranking: every query gets its BM25 top-``k``
documents (:mod:`rerank.retrieval`). The result has the query-grouped columns
``query_id, doc_id, query, title, summary`` (no label).

Inputs are read by extension (``.tsv``, ``.jsonl``, ``.parquet``; ``.tsv.gz`` and
``.jsonl.gz`` too):

- queries: ``query_id`` and ``query`` (``qid`` and ``text`` are accepted as
  aliases); a TSV without a header line and two fields per line is read as
  ``query_id<TAB>query`` (the MS MARCO topics layout).
- documents: ``doc_id``, ``title`` and ``summary`` (``abstract`` or ``text`` as
  aliases of ``summary``; a missing ``title`` means empty titles, for collections
  whose title is merged into the text); a headerless two-field TSV is read as
  ``doc_id<TAB>summary`` (the NFCorpus and MS MARCO collection layout).
- judged pairs to exclude: a TREC qrels file (``.qrels``/``.qrel``, or a TSV with
  four fields and no header: ``query_id 0 doc_id label``) or any table with
  ``query_id`` and ``doc_id``.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import polars as pl

from rerank.errors import RerankError, input_error
from rerank.retrieval import DEFAULT_B, DEFAULT_K1, Bm25Index

__all__ = ["build_pairs", "read_documents", "read_judged", "read_queries", "write_pairs"]

PAIR_COLUMNS = ("query_id", "doc_id", "query", "title", "summary")

_QUERY_ALIASES = {"query_id": ("query_id", "qid"), "query": ("query", "text")}
_DOC_ALIASES = {"doc_id": ("doc_id", "docid"), "summary": ("summary", "abstract", "text")}


def read_queries(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read queries into ``query_id, query`` (strings; null text becomes ``""``).

    Raises :class:`RerankError` naming file, row and column for a missing column,
    a missing ``query_id`` or a ``query_id`` seen twice.
    """
    frame, offset = _read_table(path, headerless=("query_id", "query"), header_words=("query",))
    frame = _rename(frame, _QUERY_ALIASES, path)
    frame = frame.select(pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String))
    _check_ids(frame, "query_id", path, offset)
    return frame.with_columns(pl.col("query").fill_null(""))


def read_documents(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read documents into ``doc_id, title, summary`` (strings; nulls become ``""``).

    Same checks as :func:`read_queries`, for ``doc_id``.
    """
    frame, offset = _read_table(path, headerless=("doc_id", "summary"), header_words=("title",))
    frame = _rename(frame, _DOC_ALIASES, path)
    if "title" not in frame.columns:
        frame = frame.with_columns(title=pl.lit(""))
    frame = frame.select(
        pl.col("doc_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.col("summary").cast(pl.String).fill_null(""),
    )
    _check_ids(frame, "doc_id", path, offset)
    return frame


def read_judged(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read judged pairs (TREC qrels or a table) into ``query_id, doc_id``."""
    name = Path(path).name.lower()
    trec = ("query_id", "iteration", "doc_id", "label")
    if name.endswith((".qrels", ".qrel", ".qrels.gz", ".qrel.gz")):
        frame, _ = _read_table(path, headerless=trec, force_headerless=True)
    else:
        frame, _ = _read_table(path, headerless=trec, header_words=("doc_id",))
    missing = [c for c in ("query_id", "doc_id") if c not in frame.columns]
    if missing:
        raise input_error(path, f"expected columns query_id and doc_id; have {frame.columns}")
    return frame.select(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String))


def build_pairs(
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    k: int,
    exclude: pl.DataFrame | None = None,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
    show_progress: bool | None = None,
) -> pl.DataFrame:
    """Pair every query with its BM25 top-``k`` documents.

    Parameters
    ----------
    queries
        ``query_id, query``.
    docs
        ``doc_id, title, summary``; the index is built over ``title + " " + summary``.
    k
        Documents per query (fewer when fewer documents share a term with the query).
    exclude
        ``query_id, doc_id`` pairs never to emit (e.g. already judged); the query
        then gets the next-best documents.
    k1, b
        BM25 parameters.
    show_progress
        Progress bar on stderr; ``None``: from 1,000 queries on.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary``, queries in input order, each
        query's documents in BM25 rank order.

    Examples
    --------
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["wing", "jet"],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> queries = pl.DataFrame({"query_id": ["q1"], "query": ["noisy jets"]})
    >>> build_pairs(queries, docs, k=5).rows()
    [('q1', 'b', 'noisy jets', 'jet', 'jet noise')]
    """
    index = Bm25Index.build(docs, k1=k1, b=b)
    run = index.retrieve(queries, k, exclude=exclude, show_progress=show_progress)
    texts = queries.select(pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String))
    fields = docs.select(
        pl.col("doc_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.col("summary").cast(pl.String).fill_null(""),
    )
    return (
        run.join(texts, on="query_id", how="left", maintain_order="left")
        .join(fields, on="doc_id", how="left", maintain_order="left")
        .select(PAIR_COLUMNS)
    )


def write_pairs(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a pairs table atomically, format by extension (see :func:`rerank.data.write_table`)."""
    from rerank.data import write_table

    write_table(frame, path)


# --- reading -------------------------------------------------------------------------------


def _read_table(
    path: str | os.PathLike[str],
    *,
    headerless: tuple[str, ...] | None = None,
    header_words: tuple[str, ...] = (),
    force_headerless: bool = False,
) -> tuple[pl.DataFrame, int]:
    """Read a table by extension; return it and the file line of its first row (0: Parquet).

    A TSV is read without a header when ``force_headerless``, or when ``headerless``
    names its columns, its first line has that many fields and none of them is a
    known column name (``header_words`` or the alias lists).
    """
    p = Path(path)
    name = p.name.lower()
    if not p.is_file():
        raise input_error(path, "no such file")
    stem = name[:-3] if name.endswith(".gz") else name
    try:
        if stem.endswith(".parquet"):
            return pl.read_parquet(p), 0
        raw = gzip.decompress(p.read_bytes()) if name.endswith(".gz") else p.read_bytes()
        if stem.endswith(".jsonl"):
            if not raw.strip():
                raise input_error(path, "the file is empty")
            return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None), 1
        if stem.endswith((".tsv", ".qrels", ".qrel", ".txt")):
            return _read_tsv(raw, path, headerless, header_words, force_headerless)
    except RerankError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise input_error(path, f"cannot read {stem.rsplit('.', 1)[-1]}: {first}") from None
    raise input_error(path, "unknown format; use .tsv, .jsonl or .parquet (optionally .gz)")


def _read_tsv(
    raw: bytes,
    path: str | os.PathLike[str],
    headerless: tuple[str, ...] | None,
    header_words: tuple[str, ...],
    force_headerless: bool,
) -> tuple[pl.DataFrame, int]:
    first_line = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if not first_line.strip():
        raise input_error(path, "the file is empty", row=1)
    fields = first_line.split("\t")
    known = set(header_words) | {
        a for v in (*_QUERY_ALIASES.values(), *_DOC_ALIASES.values()) for a in v
    }
    known |= {"query_id", "doc_id"}
    no_header = headerless is not None and (
        force_headerless or (len(fields) == len(headerless) and not known & set(fields))
    )
    if force_headerless:
        # TREC qrels may be separated by spaces as well as tabs
        lines = raw.decode("utf-8").splitlines()
        rows = [line.split() for line in lines if line.strip()]
        for i, row in enumerate(rows):
            if len(row) != len(headerless or ()):
                raise input_error(
                    path, f"expected {len(headerless or ())} fields, got {len(row)}", row=i + 1
                )
        return pl.DataFrame(rows, schema=list(headerless or ()), orient="row"), 1
    frame = pl.read_csv(
        io.BytesIO(raw),
        separator="\t",
        has_header=not no_header,
        new_columns=list(headerless) if no_header and headerless else None,
        quote_char=None,
        infer_schema=False,
    )
    return frame, 1 if no_header else 2


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


def _check_ids(frame: pl.DataFrame, column: str, path: str | os.PathLike[str], offset: int) -> None:
    if frame.height == 0:
        raise input_error(path, "no rows")
    ids = frame.get_column(column)
    bad = ids.is_null() | (ids.str.strip_chars() == "")
    if bad.any():
        at = int(bad.arg_max() or 0)
        raise input_error(path, "expected a non-empty id", row=_row(at, offset), column=column)
    duplicated = ids.is_duplicated() & ~ids.is_first_distinct()
    if duplicated.any():
        at = int(duplicated.arg_max() or 0)
        raise input_error(
            path, f"{ids[at]!r} occurs more than once", row=_row(at, offset), column=column
        )


def _row(index: int, offset: int) -> int:
    """File line (TSV, JSONL) or 1-based row number (Parquet, offset 0) of row ``index``."""
    return index + (offset if offset else 1)
