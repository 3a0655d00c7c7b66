"""The column vocabulary of every table rerank reads and writes, defined once.

A *pairs* table has one row per (query, document): :data:`PAIRS` =
``query_id, doc_id, query, title, summary``; labeled data adds ``label``
(:data:`LABELED`), scores and runs add ``score`` (:data:`SCORES` is the ids plus
``score``). A teacher's scores, the targets of distillation, are a Float64 column named
by :func:`teacher_column`.

Examples
--------
>>> PAIRS
('query_id', 'doc_id', 'query', 'title', 'summary')
>>> teacher_column("t1")
'teacher:t1'
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LABEL_RANGE",
    "ID_COLUMNS",
    "LABELED",
    "PAIRS",
    "SCORES",
    "TEACHER_PREFIX",
    "TEXT_COLUMNS",
    "teacher_column",
]

ID_COLUMNS = ("query_id", "doc_id")
TEXT_COLUMNS = ("query", "title", "summary")
PAIRS = (*ID_COLUMNS, *TEXT_COLUMNS)
LABELED = (*PAIRS, "label")
SCORES = (*ID_COLUMNS, "score")
DEFAULT_LABEL_RANGE = (0, 4)
TEACHER_PREFIX = "teacher:"


def teacher_column(name: str) -> str:
    """The column holding teacher ``name``'s scores: ``teacher:<name>``."""
    return f"{TEACHER_PREFIX}{name}"
