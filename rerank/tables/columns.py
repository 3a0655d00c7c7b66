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
    "DOC_ALIASES",
    "HEADER_WORDS",
    "ID_COLUMNS",
    "LABELED",
    "PAIRS",
    "QUERY_ALIASES",
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
#: Accepted spellings of the query and document columns of collections (queries, corpora).
QUERY_ALIASES = {"query_id": ("query_id", "qid"), "query": ("query", "text")}
DOC_ALIASES = {"doc_id": ("doc_id", "docid"), "summary": ("summary", "abstract", "text")}
#: Words that make a first line a header, not data (headerless files are sniffed by them).
HEADER_WORDS = frozenset(
    {a for v in (*QUERY_ALIASES.values(), *DOC_ALIASES.values()) for a in v}
    | {*ID_COLUMNS, "label"}
)


def teacher_column(name: str) -> str:
    """The column holding teacher ``name``'s scores: ``teacher:<name>``."""
    return f"{TEACHER_PREFIX}{name}"
