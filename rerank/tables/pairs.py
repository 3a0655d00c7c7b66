"""Query-grouped pairs: read, validated, from a file or a frame (:func:`read_pairs`).

Everything is read and validated with vectorised polars expressions
(:mod:`rerank.tables.checks`); Python loops run only after a problem was found, to name
its file line (:class:`rerank.tables.files.Source`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import polars as pl

from rerank.errors import first_line, input_error
from rerank.tables import checks, files
from rerank.tables.columns import DEFAULT_LABEL_RANGE, ID_COLUMNS, TEXT_COLUMNS
from rerank.tables.files import Source
from rerank.tables.formats import is_qrels, table_source
from rerank.tables.trec import read_qrels

__all__ = ["as_polars", "check_targets", "read_labels", "read_pairs"]

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
            first = first_line(err)
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
    targets: Sequence[str] = (),
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
    targets
        Numeric columns to read along (teacher scores such as ``teacher:t1``, the targets
        of distillation): each must be present and every value a finite number (Float64;
        a list column, such as a classification teacher's logits, holds finite numbers).

    A sentence-transformers / FlagEmbedding training JSONL (``query``, ``pos``, ``neg``,
    optional ``pos_scores``/``neg_scores``; no ``query_id``) is read as labeled lists by
    :func:`rerank.tables.training_jsonl.read_training_jsonl` (label 1 for ``pos``, 0 for
    ``neg``; teacher scores in a ``teacher:scores`` column).

    Returns
    -------
    polars.DataFrame
        The columns of :data:`rerank.tables.columns.LABELED` that apply, in that order,
        then ``targets``; rows in file order. Missing titles and summaries become ``""``;
        every query text is non-blank and every (query_id, doc_id) is unique.

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
    targets = list(dict.fromkeys(targets))
    if set(targets) & {*ID_COLUMNS, *TEXT_COLUMNS, "label"}:
        raise ValueError(f"targets are score columns, not ids, texts or 'label': {targets}")
    given = None if isinstance(path, (str, os.PathLike)) else as_polars(path, "pairs")
    source = Source.of(None, "pairs") if given is not None else table_source(path)
    wanted = [*ID_COLUMNS, *(TEXT_COLUMNS if text else ())]
    found = given.columns if given is not None else files.columns(source)
    if source.kind == "jsonl" and "query_id" not in found and {"pos", "positive"} & set(found):
        return _training_jsonl(path, labels, text, targets)
    if "label" in found and labels == "forbidden":
        raise input_error(source.label, "unexpected column 'label': this input must be unlabeled")
    if "label" in found or labels == "required":
        wanted.append("label")
    wanted += targets
    if given is None:
        raw = files.read_columns(source, wanted, found)
    else:
        checks.require_columns(given, wanted, source.label, "query-grouped pairs")
        if given.height == 0:
            raise input_error(source.label, "no rows")
        raw = given.select(wanted)
    frame = checks.validated(raw, _typed(raw, source, label_range, targets), source)
    checks.require_unique(frame, ID_COLUMNS, source)
    return frame


def _typed(
    raw: pl.DataFrame, source: Source, label_range: LabelRange, targets: Sequence[str]
) -> dict[str, checks.Typed]:
    """The typed columns (and their checks) of the columns read."""
    typed = {c: checks.as_id(raw, c, source) for c in ID_COLUMNS}
    if "query" in raw.columns:
        typed["query"] = checks.as_query_text(raw, source)
        typed.update({c: checks.as_text(raw, c, source) for c in ("title", "summary")})
    if "label" in raw.columns:
        typed["label"] = checks.as_label(raw, "label", source, label_range)
    typed.update({c: checks.as_target(raw, c, source) for c in targets})
    return typed


def _training_jsonl(
    path: PathLike, labels: str, text: bool, targets: Sequence[str]
) -> pl.DataFrame:
    from rerank.tables.training_jsonl import read_training_jsonl  # it validates its scores

    if labels == "forbidden":
        raise input_error(
            path, "a training JSONL has labels (pos/neg); this input must be unlabeled"
        )
    frame = read_training_jsonl(path)
    missing = [c for c in targets if c not in frame.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise input_error(path, f"missing column {names}; found columns: {frame.columns}")
    return frame if text else frame.drop(TEXT_COLUMNS)


def check_targets(frame: pl.DataFrame, names: Sequence[str], what: str) -> None:
    """Check a frame given in memory as :func:`read_pairs` checks ``targets``.

    ``what`` names the frame in errors (``"training frame: row 6: column ..."``).

    Examples
    --------
    >>> check_targets(pl.DataFrame({"teacher:t1": [0.5, float("nan")]}), ["teacher:t1"], "pairs")
    Traceback (most recent call last):
    rerank.errors.RerankError: pairs: row 2: column 'teacher:t1': expected a finite number, got nan
    """
    missing = [c for c in names if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing)
        raise input_error(None, f"{what}: missing column {shown}; found columns: {frame.columns}")
    if names:
        source = Source(what, "frame")
        typed = {c: checks.as_target(frame, c, source) for c in names}
        checks.validated(frame.select(names), typed, source)


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
    if is_qrels(path):  # .qrels.gz too
        return read_qrels(path, label_range=label_range)
    return read_pairs(path, labels="required", label_range=label_range, text=False)
