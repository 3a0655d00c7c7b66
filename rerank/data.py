"""Query-grouped tables, scores and TREC files: reading, validation, writing, joining.

A *query-grouped table* has one row per (query, document) pair with the columns
``query_id, doc_id, query, title, summary, label`` (``label`` is absent for
unlabeled rekindle data); a *score table* has ``query_id, doc_id, score``. Ids are
strings (integer ids are cast), ``label`` is Int64, ``score`` Float64; a teacher's
scores are a Float64 column :func:`teacher_column` names (``teacher:<name>``).

The format follows the file extension: ``.tsv`` (a header line, no quoting: texts
may contain quotes), ``.jsonl``, ``.parquet`` (``.tsv.gz``/``.jsonl.gz`` too), TREC
runs ``.run``/``.trec`` (``qid Q0 docid rank score tag``) and TREC qrels ``.qrels``
(``qid 0 docid rel``). Everything is read and validated with vectorised polars
expressions; Python loops run only after a problem was found, to name its file line.

A user mistake raises :class:`rerank.errors.RerankError` naming the file, the first
offending row (1-based file line for TSV, JSONL and TREC files, ``row N`` for
Parquet), the column, what was expected and what was found. Writers go through
:func:`rerank.atomic.atomic_path`, so a failed write leaves no file behind.

This module is the public face; the readers and writers live in :mod:`rerank.tables`.
"""

from __future__ import annotations

import os

from rerank.tables.attach import Attached, attach_scores
from rerank.tables.columns import (
    DEFAULT_LABEL_RANGE,
    ID_COLUMNS,
    LABELED,
    PAIRS,
    SCORES,
    TEXT_COLUMNS,
    teacher_column,
)
from rerank.tables.formats import TABLE_FORMATS, file_format
from rerank.tables.pairs import as_polars, check_targets, read_labels, read_pairs
from rerank.tables.texts import read_documents, read_judged, read_queries
from rerank.tables.training_jsonl import TEACHER_SCORES, read_training_jsonl
from rerank.tables.trec import read_qrels, read_scores, write_trec_qrels, write_trec_run
from rerank.tables.write import write_table

__all__ = [
    "DEFAULT_LABEL_RANGE",
    "ID_COLUMNS",
    "PAIRS",
    "PAIR_COLUMNS",
    "SCORE_COLUMNS",
    "TABLE_FORMATS",
    "TEACHER_SCORES",
    "TEXT_COLUMNS",
    "Attached",
    "as_polars",
    "attach_scores",
    "check_targets",
    "file_format",
    "read_documents",
    "read_judged",
    "read_labels",
    "read_pairs",
    "read_qrels",
    "read_queries",
    "read_scores",
    "read_training_jsonl",
    "teacher_column",
    "write_table",
    "write_trec_qrels",
    "write_trec_run",
]

PathLike = str | os.PathLike[str]
LabelRange = tuple[int, int] | None

#: A labeled query-grouped table's columns (:data:`PAIRS` + ``label``).
PAIR_COLUMNS = LABELED
#: A score table's columns.
SCORE_COLUMNS = SCORES
