"""Scores and judgments: score tables and TREC runs, TREC qrels (read and written).

A TREC run line is ``qid Q0 docid rank score tag``, a qrels line ``qid iteration docid
rel``; fields are separated by spaces or tabs. Writers go through
:func:`rerank.atomic.atomic_path`.
"""

from __future__ import annotations

import os

import polars as pl

from rerank.atomic import atomic_path
from rerank.errors import input_error
from rerank.tables import checks, files
from rerank.tables.columns import DEFAULT_LABEL_RANGE, ID_COLUMNS, SCORES
from rerank.tables.formats import is_run, table_source

__all__ = ["read_qrels", "read_scores", "write_trec_qrels", "write_trec_run"]

PathLike = str | os.PathLike[str]
LabelRange = tuple[int, int] | None


def read_scores(path: PathLike) -> pl.DataFrame:
    """Read scores as ``query_id, doc_id, score`` from a table or a TREC run.

    Parameters
    ----------
    path
        A table (``.tsv``, ``.jsonl``, ``.parquet``) with at least the columns
        ``query_id, doc_id, score`` (others are ignored), or a TREC run (``.run``,
        ``.trec``: ``qid Q0 docid rank score tag``, separated by spaces or tabs; the rank
        and tag are ignored).

    Returns
    -------
    polars.DataFrame
        ``query_id`` and ``doc_id`` (String), ``score`` (Float64, finite), rows in file
        order, each (query_id, doc_id) once.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bm25.run"
    >>> _ = path.write_text("q1 Q0 d7 1 12.5 bm25\\nq1 Q0 d2 2 9.25 bm25\\n")
    >>> read_scores(path).rows()
    [('q1', 'd7', 12.5), ('q1', 'd2', 9.25)]
    """
    if is_run(path):  # .run.gz too
        source, raw = files.read_trec(
            path,
            ("query_id", "q0", "doc_id", "rank", "score", "tag"),
            "qid Q0 docid rank score tag",
        )
    else:
        source = table_source(path)
        raw = files.read_columns(source, list(SCORES), files.columns(source))
    typed = {c: checks.as_id(raw, c, source) for c in ID_COLUMNS}
    typed["score"] = checks.as_score(raw, "score", source)
    frame = checks.validated(raw, typed, source)
    checks.require_unique(frame, ID_COLUMNS, source)
    return frame


def read_qrels(path: PathLike, *, label_range: LabelRange = DEFAULT_LABEL_RANGE) -> pl.DataFrame:
    """Read TREC qrels (``qid iteration docid rel``) as ``query_id, doc_id, label``.

    Parameters
    ----------
    path
        The qrels file; fields are separated by spaces or tabs, the iteration is ignored.
    label_range
        Inclusive range of the grades; ``None`` accepts any integer (e.g. TREC's -2).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "test.qrels"
    >>> _ = path.write_text("q1 0 d7 2\\nq1 0 d2 0\\n")
    >>> read_qrels(path).rows()
    [('q1', 'd7', 2), ('q1', 'd2', 0)]
    """
    source, raw = files.read_trec(
        path, ("query_id", "iteration", "doc_id", "label"), "qid iteration docid rel"
    )
    typed = {c: checks.as_id(raw, c, source) for c in ID_COLUMNS}
    typed["label"] = checks.as_label(raw, "label", source, label_range)
    frame = checks.validated(raw, typed, source)
    checks.require_unique(frame, ID_COLUMNS, source)
    return frame


def write_trec_run(frame: pl.DataFrame, path: PathLike, *, tag: str = "rerank") -> None:
    """Write ``query_id, doc_id, score`` atomically as a TREC run.

    Queries keep the order of their first row; within a query rows are ranked by
    descending score (ties keep their input order) and numbered from 1. Scores are
    written in the shortest form that reads back to the same float64.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.run"
    >>> frame = pl.DataFrame({"query_id": ["q2", "q1", "q2"], "doc_id": ["a", "b", "c"],
    ...                       "score": [0.25, 1.0, 0.5]})
    >>> write_trec_run(frame, path, tag="demo")
    >>> print(path.read_text(), end="")
    q2 Q0 c 1 0.5 demo
    q2 Q0 a 2 0.25 demo
    q1 Q0 b 1 1.0 demo
    """
    checks.require_columns(frame, SCORES, path, "a TREC run")
    checks.require_trec_safe(frame, ID_COLUMNS, path, tag)
    first = pl.col("_i").min().over("query_id")
    ranked = (
        frame.select(*ID_COLUMNS, pl.col("score").cast(pl.Float64))
        .with_row_index("_i")
        .sort([first, pl.col("score")], descending=[False, True], maintain_order=True)
    )
    bad = ranked.select((~pl.col("score").is_finite()).fill_null(True).any()).item()
    if bad:
        raise input_error(path, "cannot write a TREC run: a score is missing, NaN or infinite")
    lines = ranked.select(
        "query_id",
        pl.lit("Q0").alias("q0"),
        "doc_id",
        (pl.int_range(pl.len()).over(first) + 1).alias("rank"),
        "score",
        pl.lit(tag).alias("tag"),
    )
    with atomic_path(path) as tmp:
        lines.write_csv(tmp, separator=" ", include_header=False, quote_style="never")


def write_trec_qrels(frame: pl.DataFrame, path: PathLike) -> None:
    """Write ``query_id, doc_id, label`` atomically as TREC qrels (``qid 0 docid rel``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "test.qrels"
    >>> write_trec_qrels(pl.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "label": [2]}), path)
    >>> path.read_text()
    'q1 0 d1 2\\n'
    """
    checks.require_columns(frame, (*ID_COLUMNS, "label"), path, "TREC qrels")
    checks.require_trec_safe(frame, ID_COLUMNS, path, "0")
    if frame.get_column("label").null_count():
        raise input_error(path, "cannot write TREC qrels: a label is missing")
    lines = frame.select("query_id", pl.lit(0).alias("iteration"), "doc_id", "label")
    with atomic_path(path) as tmp:
        lines.write_csv(tmp, separator=" ", include_header=False, quote_style="never")
