"""Inputs of ``rerank evaluate``/``compare``: files recognised by content, stdin, frames.

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
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rerank import data
from rerank.errors import RerankError, input_error
from rerank.tables.checks import first_repeat
from rerank.tables.formats import sniff

__all__ = [
    "STDIN",
    "frame_of",
    "is_path",
    "labels_of",
    "read_judgments",
    "read_scores",
    "readable",
    "scores_of",
    "sniff",
]

PathLike = str | os.PathLike[str]
LabelRange = tuple[int, int] | None

STDIN = "-"
_KNOWN = (".tsv", ".jsonl", ".parquet", ".csv", ".run", ".trec", ".qrels")
_KNOWN += tuple(f"{suffix}.gz" for suffix in (".tsv", ".jsonl", ".csv", ".run", ".trec", ".qrels"))
_EXTENSION = {"parquet": ".parquet", "jsonl": ".jsonl", "tsv": ".tsv", "run": ".run"}
_EXTENSION["qrels"] = ".qrels"
# Extensions naming a format we do not read: leave them to the readers' error.
_OTHER = (".json", ".xls", ".xlsx", ".pkl", ".arrow", ".feather", ".ipc", ".npy", ".npz")


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


def read_judgments(
    value: PathLike | Any, label_range: LabelRange, role: str = "judgments"
) -> pl.DataFrame:
    """Checked ``query_id, doc_id, label`` from a path (any format) or a polars/pandas frame."""
    if is_path(value):
        with readable(value, role) as path:
            return data.read_labels(path, label_range=label_range)
    return labels_of(value, label_range)


def read_scores(value: PathLike | Any, role: str = "run") -> pl.DataFrame:
    """Checked ``query_id, doc_id, score`` from a path (any format) or a polars/pandas frame."""
    if is_path(value):
        with readable(value, role) as path:
            return data.read_scores(path)
    return scores_of(value)


def is_path(value: Any) -> bool:
    import os

    return isinstance(value, (str, os.PathLike))


def frame_of(frame: Any, name: str, columns: Sequence[str]) -> pl.DataFrame:
    """A polars frame from a polars or pandas one, with ``columns`` present."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, pl.DataFrame):
        if type(frame).__module__.split(".")[0] == "pandas" and hasattr(frame, "columns"):
            frame = pl.from_pandas(frame, include_index=False)
        else:
            raise input_error(
                None,
                f"{name}: expected a path or a polars or pandas DataFrame, "
                f"got {type(frame).__name__}",
            )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise input_error(
            None,
            f"{name}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}",
        )
    return frame


def labels_of(frame: Any, label_range: LabelRange) -> pl.DataFrame:
    table = frame_of(frame, "judgments", ("query_id", "doc_id", "label"))
    if not table["label"].dtype.is_integer():
        raise input_error(
            None, f"judgments: column 'label': expected integer grades, got {table['label'].dtype}"
        )
    table = table.select(
        pl.col("query_id").cast(pl.String),
        pl.col("doc_id").cast(pl.String),
        pl.col("label").cast(pl.Int64),
    )
    _check_nulls(table, "judgments")
    if label_range is not None:
        low, high = label_range
        bad = table.filter((pl.col("label") < low) | (pl.col("label") > high))
        if bad.height:
            raise input_error(
                None,
                f"judgments: column 'label': expected an integer grade in {low}..{high}, "
                f"got {bad['label'][0]}",
            )
    _check_unique(table, "judgments")
    return table


def scores_of(frame: Any) -> pl.DataFrame:
    table = frame_of(frame, "scores", ("query_id", "doc_id", "score"))
    if not table["score"].dtype.is_numeric():
        raise input_error(
            None, f"scores: column 'score': expected numbers, got {table['score'].dtype}"
        )
    table = table.select(
        pl.col("query_id").cast(pl.String),
        pl.col("doc_id").cast(pl.String),
        pl.col("score").cast(pl.Float64),
    )
    _check_nulls(table, "scores")
    if not table["score"].is_finite().all():
        raise input_error(None, "scores: column 'score': expected finite numbers (no NaN or inf)")
    _check_unique(table, "scores")
    return table


def _check_nulls(table: pl.DataFrame, name: str) -> None:
    for column in table.columns:
        if table[column].null_count():
            row = int(table[column].is_null().arg_max()) + 1
            raise input_error(None, f"{name}: row {row}: column '{column}': missing value")


def _check_unique(table: pl.DataFrame, name: str) -> None:
    row = first_repeat(table, ["query_id", "doc_id"])
    if row is not None:
        qid, did = table[row, "query_id"], table[row, "doc_id"]
        raise input_error(None, f"{name}: row {row + 1}: ({qid!r}, {did!r}) appears more than once")
