"""Writing any table in the format its extension names (:func:`write_table`)."""

from __future__ import annotations

import os

import polars as pl

from rerank.atomic import atomic_path
from rerank.tables import checks, files
from rerank.tables.formats import QRELS_SUFFIXES, RUN_SUFFIXES, table_kind
from rerank.tables.trec import write_trec_qrels, write_trec_run

__all__ = ["write_table"]


def write_table(frame: pl.DataFrame, path: str | os.PathLike[str], *, tag: str = "rerank") -> None:
    """Write ``frame`` atomically in the format its extension names.

    ``.tsv`` (with header; fails if a text holds a tab or newline), ``.jsonl``,
    ``.parquet`` (``.tsv.gz``/``.jsonl.gz`` too), ``.run``/``.trec`` (see
    :func:`rerank.data.write_trec_run`) and ``.qrels`` (see
    :func:`rerank.data.write_trec_qrels`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scores.tsv"
    >>> write_table(pl.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "score": [0.5]}), path)
    >>> path.read_text()
    'query_id\\tdoc_id\\tscore\\nq1\\td1\\t0.5\\n'
    """
    name = str(path).lower()
    if name.endswith(RUN_SUFFIXES):
        write_trec_run(frame, path, tag=tag)
    elif name.endswith(QRELS_SUFFIXES):
        write_trec_qrels(frame, path)
    else:
        kind = table_kind(path)
        if kind == "tsv":
            checks.require_tsv_safe(frame, path)
        with atomic_path(path) as tmp:
            files.write(frame, tmp, kind, gz=name.endswith(".gz"))
