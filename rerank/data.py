"""Query-grouped tables, scores and TREC files: reading, validation, writing, joining.

A *query-grouped table* has one row per (query, document) pair with the columns
``query_id, doc_id, query, title, summary, label`` (``label`` is absent for
unlabeled rekindle data); a *score table* has ``query_id, doc_id, score``. Ids are
strings (integer ids are cast), ``label`` is Int64, ``score`` Float64.

The format follows the file extension: ``.tsv`` (a header line, no quoting: texts
may contain quotes), ``.jsonl``, ``.parquet`` (``.tsv.gz``/``.jsonl.gz`` too), TREC
runs ``.run``/``.trec`` (``qid Q0 docid rank score tag``) and TREC qrels ``.qrels``
(``qid 0 docid rel``). Everything is read and validated with vectorised polars
expressions; Python loops run only after a problem was found, to name its file line.

A user mistake raises :class:`rerank.errors.RerankError` naming the file, the first
offending row (1-based file line for TSV, JSONL and TREC files, ``row N`` for
Parquet), the column, what was expected and what was found. Writers go through
:func:`rerank.atomic.atomic_path`, so a failed write leaves no file behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from rerank import _data_checks as checks
from rerank import _data_io as files
from rerank._data_io import Source
from rerank.atomic import atomic_path
from rerank.errors import input_error

__all__ = [
    "DEFAULT_LABEL_RANGE",
    "PAIR_COLUMNS",
    "Attached",
    "as_polars",
    "attach_scores",
    "file_format",
    "read_labels",
    "read_pairs",
    "read_qrels",
    "read_scores",
    "write_table",
    "write_trec_qrels",
    "write_trec_run",
]

ID_COLUMNS = ("query_id", "doc_id")
TEXT_COLUMNS = ("query", "title", "summary")
PAIR_COLUMNS = (*ID_COLUMNS, *TEXT_COLUMNS, "label")
SCORE_COLUMNS = (*ID_COLUMNS, "score")
DEFAULT_LABEL_RANGE = (0, 4)
TABLE_FORMATS = ("tsv", "jsonl", "parquet")

TABLE_SUFFIXES = (".tsv", ".jsonl", ".parquet", ".csv", ".tsv.gz", ".jsonl.gz", ".csv.gz")
RUN_SUFFIXES = (".run", ".trec")
QRELS_SUFFIXES = (".qrels",)

PathLike = str | os.PathLike[str]
LabelRange = tuple[int, int] | None


def as_polars(frame: Any, name: str = "input") -> pl.DataFrame:
    """A polars frame from a polars or pandas DataFrame (a pandas index is dropped).

    Raises :class:`RerankError` for anything else, naming ``name``.

    Examples
    --------
    >>> as_polars(pl.DataFrame({"a": [1]})).shape
    (1, 1)
    >>> as_polars([("q", "d")], "pairs")
    Traceback (most recent call last):
    rerank.errors.RerankError: pairs: expected a polars or pandas DataFrame, got list
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if type(frame).__module__.split(".")[0] == "pandas" and hasattr(frame, "columns"):
        try:
            return pl.from_pandas(frame, include_index=False)
        except Exception as err:  # pandas and pyarrow raise many kinds
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise input_error(None, f"{name}: cannot read the pandas frame: {first}") from None
    raise input_error(
        None, f"{name}: expected a polars or pandas DataFrame, got {type(frame).__name__}"
    )


def read_pairs(
    path: PathLike | pl.DataFrame | Any,
    *,
    labels: Literal["optional", "required", "forbidden"] = "optional",
    label_range: LabelRange = DEFAULT_LABEL_RANGE,
    text: bool = True,
) -> pl.DataFrame:
    """Read and validate a query-grouped table.

    Parameters
    ----------
    path
        A ``.tsv``, ``.jsonl`` or ``.parquet`` file (``.tsv.gz``/``.jsonl.gz`` too), or a
        polars or pandas DataFrame with those columns (checked the same way; integer
        ids become strings).
    labels
        ``"required"``: a ``label`` column must be present; ``"optional"``: it is read
        when present; ``"forbidden"``: the file must be unlabeled (rekindle pairs).
    label_range
        Inclusive ``(low, high)`` range of the integer grades; ``None`` accepts any integer.
    text
        Read the text columns ``query, title, summary``. ``False`` reads only the ids and
        the label (enough for evaluation, and much faster on large files).

    A sentence-transformers / FlagEmbedding training JSONL (``query``, ``pos``, ``neg``,
    optional ``pos_scores``/``neg_scores``; no ``query_id``) is read as labeled lists by
    :func:`rerank.pairs.read_training_jsonl` (label 1 for ``pos``, 0 for ``neg``; teacher
    scores in a ``teacher:scores`` column).

    Returns
    -------
    polars.DataFrame
        The columns of :data:`PAIR_COLUMNS` that apply, in that order, rows in file order.
        Missing titles and summaries become ``""``; every query text is non-blank and
        every (query_id, doc_id) is unique.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "eval.tsv"
    >>> _ = path.write_text(
    ...     "query_id\\tdoc_id\\tquery\\ttitle\\tsummary\\tlabel\\n"
    ...     'q1\\td1\\t"wing flutter"\\tFlutter\\tOn wings.\\t3\\n'
    ... )
    >>> read_pairs(path).row(0)
    ('q1', 'd1', '"wing flutter"', 'Flutter', 'On wings.', 3)
    >>> read_pairs(path, text=False).columns
    ['query_id', 'doc_id', 'label']
    """
    if labels not in ("optional", "required", "forbidden"):
        raise ValueError(f"labels must be 'optional', 'required' or 'forbidden', got {labels!r}")
    given = None if isinstance(path, (str, os.PathLike)) else as_polars(path, "pairs")
    source = Source.of(None, "pairs") if given is not None else _table_source(path)
    wanted = [*ID_COLUMNS, *(TEXT_COLUMNS if text else ())]
    found = given.columns if given is not None else files.columns(source)
    if source.kind == "jsonl" and "query_id" not in found and {"pos", "positive"} & set(found):
        return _training_jsonl(path, labels, text)
    if "label" in found and labels == "forbidden":
        raise input_error(source.label, "unexpected column 'label': this input must be unlabeled")
    if "label" in found or labels == "required":
        wanted.append("label")
    if given is None:
        raw = files.read_columns(source, wanted, found)
    else:
        checks.require_columns(given, wanted, source.label, "query-grouped pairs")
        if given.height == 0:
            raise input_error(source.label, "no rows")
        raw = given.select(wanted)
    typed = {c: checks.as_id(raw, c, source) for c in ID_COLUMNS}
    if text:
        typed["query"] = checks.as_query_text(raw, source)
        typed.update({c: checks.as_text(raw, c, source) for c in ("title", "summary")})
    if "label" in wanted:
        typed["label"] = checks.as_label(raw, "label", source, label_range)
    frame = checks.validated(raw, typed, source)
    checks.require_unique(frame, ID_COLUMNS, source)
    return frame


def _training_jsonl(path: PathLike, labels: str, text: bool) -> pl.DataFrame:
    from rerank.pairs import read_training_jsonl

    if labels == "forbidden":
        raise input_error(
            path, "a training JSONL has labels (pos/neg); this input must be unlabeled"
        )
    frame = read_training_jsonl(path)
    return frame if text else frame.drop(TEXT_COLUMNS)


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
    if _suffix(str(path).lower().removesuffix(".gz"), RUN_SUFFIXES):  # .run.gz too
        source, raw = files.read_trec(
            path,
            ("query_id", "q0", "doc_id", "rank", "score", "tag"),
            "qid Q0 docid rank score tag",
        )
    else:
        source = _table_source(path)
        raw = files.read_columns(source, list(SCORE_COLUMNS), files.columns(source))
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


def read_labels(path: PathLike, *, label_range: LabelRange = DEFAULT_LABEL_RANGE) -> pl.DataFrame:
    """Read judgments as ``query_id, doc_id, label`` from TREC qrels or a labeled table.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "eval.jsonl"
    >>> _ = path.write_text('{"query_id": 1, "doc_id": "d1", "query": "q", "label": 2}\\n')
    >>> read_labels(path).rows()
    [('1', 'd1', 2)]
    """
    if _suffix(str(path).lower().removesuffix(".gz"), QRELS_SUFFIXES):  # .qrels.gz too
        return read_qrels(path, label_range=label_range)
    return read_pairs(path, labels="required", label_range=label_range, text=False)


def write_table(frame: pl.DataFrame, path: PathLike, *, tag: str = "rerank") -> None:
    """Write ``frame`` atomically in the format its extension names.

    ``.tsv`` (with header; fails if a text holds a tab or newline), ``.jsonl``,
    ``.parquet`` (``.tsv.gz``/``.jsonl.gz`` too), ``.run``/``.trec`` (see
    :func:`write_trec_run`) and ``.qrels`` (see :func:`write_trec_qrels`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.tsv"
    >>> write_table(pl.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "score": [0.5]}), path)
    >>> path.read_text()
    'query_id\\tdoc_id\\tscore\\nq1\\td1\\t0.5\\n'
    """
    if _suffix(path, RUN_SUFFIXES):
        write_trec_run(frame, path, tag=tag)
    elif _suffix(path, QRELS_SUFFIXES):
        write_trec_qrels(frame, path)
    else:
        kind = _table_kind(path)
        if kind == "tsv":
            checks.require_tsv_safe(frame, path)
        with atomic_path(path) as tmp:
            files.write(frame, tmp, kind, gz=str(path).lower().endswith(".gz"))


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
    checks.require_columns(frame, SCORE_COLUMNS, path, "a TREC run")
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


@dataclass(frozen=True)
class Attached:
    """Labeled rows with their scores, and how the two inputs matched.

    Attributes
    ----------
    frame
        The labeled rows that have a score, in labeled order, with a ``score`` column.
    judged
        Rows in the labeled input.
    scored
        Rows in the score input.
    unscored
        Judged rows without a score (left out of ``frame``).
    unmatched
        Scored rows without a judged (query_id, doc_id) (dropped).
    """

    frame: pl.DataFrame
    judged: int
    scored: int
    unscored: int
    unmatched: int

    def counts(self) -> dict[str, int]:
        """The row counts as a dict: ``judged_rows``, ``scored_rows``, ``evaluated_rows``, ..."""
        return {
            "judged_rows": self.judged,
            "scored_rows": self.scored,
            "evaluated_rows": self.frame.height,
            "unscored_rows": self.unscored,
            "unmatched_rows": self.unmatched,
        }


def attach_scores(
    labeled: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    unmatched: Literal["error", "drop"] = "error",
    labeled_path: PathLike | None = None,
    scores_path: PathLike | None = None,
    check_duplicates: bool = True,
) -> Attached:
    """Join ``scores`` onto ``labeled`` by (query_id, doc_id).

    Judged rows without a score are left out and counted (``Attached.unscored``).
    Scored rows without a judged pair are an error (``unmatched="error"``) or are
    dropped and counted (``unmatched="drop"``).

    Parameters
    ----------
    labeled
        Judgments with ``query_id``, ``doc_id`` (and usually ``label``), e.g. from
        :func:`read_labels`.
    scores
        ``query_id, doc_id, score``, e.g. from :func:`read_scores`.
    unmatched
        What to do with scored rows that have no judgment.
    labeled_path, scores_path
        The files the frames were read from (unchanged), to name rows in errors.
    check_duplicates
        Check that neither side repeats a (query_id, doc_id); ``False`` skips the check
        for frames straight from this module's readers, which check it already.

    Examples
    --------
    >>> labeled = pl.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"],
    ...                         "label": [2, 0, 1]})
    >>> scores = pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["b", "a"],
    ...                        "score": [0.5, 3.0]})
    >>> out = attach_scores(labeled, scores)
    >>> out.frame.rows(), out.unscored
    ([('q1', 'a', 2, 3.0), ('q1', 'b', 0, 0.5)], 1)
    """
    if unmatched not in ("error", "drop"):
        raise ValueError(f"unmatched must be 'error' or 'drop', got {unmatched!r}")
    lsrc = Source.of(labeled_path, "labeled")
    ssrc = Source.of(scores_path, "scores")
    checks.require_columns(labeled, ID_COLUMNS, labeled_path, "labeled pairs")
    checks.require_columns(scores, SCORE_COLUMNS, scores_path, "scores")
    position = checks.match_rows(
        labeled, scores, ID_COLUMNS, lsrc, ssrc, check_duplicates=check_duplicates
    )
    if position is None:  # same pairs in the same order: the common case, no join
        score = scores.get_column("score").cast(pl.Float64)
        return Attached(labeled.with_columns(score), labeled.height, scores.height, 0, 0)
    matched = position >= 0
    n_matched = int(matched.sum())
    n_unmatched = scores.height - n_matched
    if n_unmatched and unmatched == "error":
        first = checks.first_unmatched(position, scores.height)
        qid, did = scores[first, "query_id"], scores[first, "doc_id"]
        raise ssrc.error(
            first,
            f"{n_unmatched} scored row(s) have no judged (query_id, doc_id) in "
            f"{lsrc.label}; the first is ({qid!r}, {did!r}); "
            "set unmatched to 'drop' to ignore them",
        )
    values = scores.get_column("score").cast(pl.Float64).to_numpy()
    if n_matched == labeled.height:  # every judged row scored: no filter (copies strings)
        frame = labeled.with_columns(pl.Series("score", values[position]))
    else:
        kept = labeled.filter(pl.Series(matched))
        frame = kept.with_columns(pl.Series("score", values[position[matched]]))
    return Attached(frame, labeled.height, scores.height, labeled.height - n_matched, n_unmatched)


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
    return _table_kind(path)


def _suffix(path: PathLike, suffixes: Sequence[str]) -> bool:
    return str(path).lower().endswith(tuple(suffixes))


def _table_kind(path: PathLike) -> str:
    name = str(path).lower().removesuffix(".gz")
    for kind in ("tsv", "jsonl", "parquet", "csv"):
        if name.endswith(f".{kind}") and not (kind == "parquet" and str(path).endswith(".gz")):
            return kind
    supported = ", ".join((*TABLE_SUFFIXES, *RUN_SUFFIXES, *QRELS_SUFFIXES))
    raise input_error(path, f"unknown file extension; supported: {supported}")


def _table_source(path: PathLike) -> Source:
    return Source(str(path), _table_kind(path))
