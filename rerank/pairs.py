"""Unlabeled (query, document) pairs by BM25 retrieval: the work of ``rerank pairs``.

Knowledge rekindle needs many unlabeled pairs for the teacher to score. They come
from pairing a query log with a document collection through a first-stage
retriever, as in production re-ranking: every query gets its BM25 top-``k``
documents (:mod:`rerank.retrieval`). The result has the pairs columns
``query_id, doc_id, query, title, summary`` (no label).

The inputs (queries, a corpus, judged pairs to exclude) are read by
:func:`rerank.data.read_queries`, :func:`~rerank.data.read_documents` and
:func:`~rerank.data.read_judged` (:mod:`rerank.tables.texts`), re-exported here for
importers. The same inputs turn data as other tools ship it into rerank's query-grouped
tables: :func:`labeled_pairs` (TREC qrels + queries + corpus -> labeled lists) and
:func:`run_pairs` (a first-stage TREC run + queries + corpus -> the pairs to re-rank).
"""

from __future__ import annotations

import os

import polars as pl

from rerank.data import (
    TEACHER_SCORES,
    read_documents,
    read_judged,
    read_queries,
    read_training_jsonl,
    write_table,
)
from rerank.errors import RerankError, input_error
from rerank.retrieval import DEFAULT_B, DEFAULT_K1, Bm25Index
from rerank.tables.columns import PAIRS

__all__ = [
    "TEACHER_SCORES",
    "build_pairs",
    "judged_pool",
    "labeled_pairs",
    "read_documents",
    "read_judged",
    "read_queries",
    "read_training_jsonl",
    "run_pairs",
    "title_pairs",
    "write_pairs",
]

#: Kept for importers: pairs are written like any table (:func:`rerank.data.write_table`).
write_pairs = write_table


def build_pairs(
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    k: int,
    exclude: pl.DataFrame | None = None,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
    show_progress: bool | None = None,
    scores: bool = False,
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
    scores
        Add the BM25 ``score`` column (to write the retrieval as a TREC run).

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary`` (and ``score``), queries in input
        order, each query's documents in BM25 rank order.

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
        .select(*PAIRS, *(["score"] if scores else []))
    )


def labeled_pairs(
    qrels: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    qrels_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Labeled query lists from judgments and texts (TREC qrels + queries + corpus).

    Parameters
    ----------
    qrels
        ``query_id, doc_id, label`` (e.g. :func:`rerank.data.read_qrels`).
    queries, docs
        From :func:`read_queries` and :func:`read_documents`.
    qrels_path
        The judgments' file, to name it in errors.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary, label`` in qrels order: the
        query-grouped table ``rerank train`` and ``rerank evaluate`` read. A judged
        query or document missing from the texts is an error.

    Examples
    --------
    >>> qrels = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["a", "b"], "label": [2, 0]})
    >>> queries = pl.DataFrame({"query_id": ["1"], "query": ["wing lift"]})
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["", ""],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> labeled_pairs(qrels, queries, docs).rows()[0]
    ('1', 'a', 'wing lift', '', 'lift of a wing', 2)
    """
    frame = _with_texts(qrels, queries, docs, qrels_path, "judgments")
    return frame.select(*PAIRS, pl.col("label").cast(pl.Int64))


def run_pairs(
    run: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    depth: int | None = None,
    run_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """The pairs to re-rank from a first-stage run: each query's top ``depth`` documents.

    Parameters
    ----------
    run
        ``query_id, doc_id, score`` (e.g. :func:`rerank.data.read_scores` of a TREC run).
    queries, docs
        From :func:`read_queries` and :func:`read_documents`.
    depth
        Documents kept per query, best first stage score first; ``None``: all.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary``, queries in run order, each
        query's documents in first-stage rank order (ties: file order).

    Examples
    --------
    >>> run = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["b", "a"],
    ...                     "score": [1.0, 2.0]})
    >>> queries = pl.DataFrame({"query_id": ["1"], "query": ["wing lift"]})
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["", ""],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> run_pairs(run, queries, docs, depth=1).rows()
    [('1', 'a', 'wing lift', '', 'lift of a wing')]
    """
    if depth is not None and depth < 1:
        raise RerankError(f"depth: expected a positive integer, got {depth}")
    first = pl.col("_i").min().over("query_id")
    ranked = (
        run.select(
            pl.col("query_id").cast(pl.String),
            pl.col("doc_id").cast(pl.String),
            pl.col("score").cast(pl.Float64),
        )
        .with_row_index("_i")
        .sort([first, pl.col("score")], descending=[False, True], maintain_order=True)
    )
    if depth is not None:
        ranked = ranked.filter(pl.int_range(pl.len()).over("query_id") < depth)
    return _with_texts(ranked, queries, docs, run_path, "run").select(PAIRS)


def _with_texts(
    pairs: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    path: str | os.PathLike[str] | None,
    what: str,
) -> pl.DataFrame:
    """``pairs`` (query_id, doc_id, ...) joined with query and document texts, in order."""
    frame = (
        pairs.with_columns(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String))
        .join(
            queries.select(pl.col("query_id").cast(pl.String), "query"),
            on="query_id",
            how="left",
            maintain_order="left",
        )
        .join(
            docs.select(pl.col("doc_id").cast(pl.String), "title", "summary"),
            on="doc_id",
            how="left",
            maintain_order="left",
        )
    )
    for column, id_column, texts in (
        ("query", "query_id", "queries"),
        ("title", "doc_id", "corpus"),
    ):
        missing = frame.get_column(column).is_null()
        if missing.any():
            n = frame.filter(missing).get_column(id_column).n_unique()
            example = frame[int(missing.arg_max() or 0), id_column]
            raise input_error(
                path,
                f"{n} {id_column}(s) of the {what} are not in the {texts}; the first is "
                f"{example!r}",
            )
    return frame


def judged_pool(
    retrieved: pl.DataFrame, qrels: pl.DataFrame, queries: pl.DataFrame, docs: pl.DataFrame
) -> pl.DataFrame:
    """Query-grouped rows: each query's retrieved documents, then its judged ones.

    ``query_id, doc_id, query, title, summary, label``; an unjudged candidate gets label
    0. Rows in pool order (the caller sorts).
    """
    keys = ["query_id", "doc_id"]
    pool = pl.concat([retrieved.select(keys), qrels.select(keys)]).unique(maintain_order=True)
    return (
        pool.join(qrels, on=keys, how="left")
        .with_columns(pl.col("label").fill_null(0))
        .join(queries, on="query_id")
        .join(docs, on="doc_id")
        .select(*keys, "query", "title", "summary", "label")
    )


def title_pairs(index: Bm25Index, titled: pl.DataFrame, docs: pl.DataFrame, k: int) -> pl.DataFrame:
    """Unlabeled rekindle pairs: the titles of ``titled`` as pseudo-queries (``title-<doc_id>``,
    in its row order), each with its BM25 top-``k`` of ``docs``."""
    pseudo = titled.select(
        pl.format("title-{}", "doc_id").alias("query_id"), pl.col("title").alias("query")
    )
    return (
        index.retrieve(pseudo, k, show_progress=False)
        .join(pseudo, on="query_id", maintain_order="left")
        .join(docs, on="doc_id", maintain_order="left")
        .select("query_id", "doc_id", "query", "title", "summary")
    )
