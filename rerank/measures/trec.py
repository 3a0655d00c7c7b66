"""Evaluation of a TREC run against TREC qrels, with trec_eval's semantics.

A run retrieves documents per query, and the qrels judge a pool, most of which one run
never retrieved. trec_eval (and ir-measures, pytrec_eval) then

- count a retrieved document without a judgment as non-relevant (label 0);
- build the ideal ranking (nDCG) and count the relevant documents (AP, R) from every
  judged document of the query, retrieved or not;
- evaluate the queries that are both judged and retrieved, ignore run queries without
  judgments, and with ``-c`` (``complete=True`` here) count judged queries missing from
  the run as zero;
- rank by score, descending, then by doc id, descending.

:func:`evaluate_trec` does the same, so its values equal ir-measures' on the same files
(tests/test_trec_eval.py). PNR has no trec_eval counterpart: here it counts the pairs of
*judged* retrieved documents, or with ``pnr_unjudged="zero"`` treats the unjudged retrieved
documents as grade 0 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from rerank.errors import input_error
from rerank.measures import (
    DEFAULT_MEASURES,
    Evaluation,
    assemble,
    check_names,
    measure_values,
)
from rerank.measures.pnr import pnr

__all__ = ["evaluate_trec"]


def evaluate_trec(
    qrels: pl.DataFrame,
    run: pl.DataFrame,
    measures: Sequence[str] = DEFAULT_MEASURES,
    *,
    complete: bool = False,
    pnr_unjudged: Literal["skip", "zero"] = "skip",
    per_query: bool = False,
) -> tuple[Evaluation, dict[str, int]]:
    """Evaluate a run against qrels as trec_eval does.

    Parameters
    ----------
    qrels
        ``query_id, doc_id, label``: every judgment (each pair once).
    run
        ``query_id, doc_id, score``: the retrieved documents (each pair once).
    measures
        Names (see :func:`rerank.measures.names.resolve`), ``pnr`` and ``pnr_macro``.
    complete
        Also evaluate judged queries the run does not retrieve for, as zero (trec_eval
        ``-c``). PNR leaves them out (they have no pairs).
    pnr_unjudged
        PNR over the judged retrieved documents only (``"skip"``) or with the unjudged ones
        as grade 0 (``"zero"``).
    per_query
        Also return one row per evaluated query.

    Returns
    -------
    (Evaluation, dict)
        The measures (keys as asked) and the counts ``evaluated_queries``,
        ``missing_queries`` (judged, not in the run), ``unjudged_queries`` (in the run, not
        judged: ignored), ``judged_rows``, ``retrieved_rows`` (of the evaluated queries) and
        ``unjudged_retrieved_rows`` (scored as non-relevant).

    Examples
    --------
    >>> qrels = pl.DataFrame({"query_id": ["1", "1", "1"], "doc_id": ["a", "b", "z"],
    ...                       "label": [1, 0, 1]})
    >>> run = pl.DataFrame({"query_id": ["1", "1", "1"], "doc_id": ["a", "x", "b"],
    ...                     "score": [3.0, 2.0, 1.0]})
    >>> ev, counts = evaluate_trec(qrels, run, ["map", "p@2", "r@2"])
    >>> ev.aggregate  # z, judged relevant but not retrieved, counts in AP and recall
    {'map': 0.5, 'p@2': 0.5, 'r@2': 0.5}
    >>> counts["unjudged_retrieved_rows"]
    1
    """
    names, ir_names = check_names(measures)
    if pnr_unjudged not in ("skip", "zero"):
        raise ValueError(f"pnr_unjudged must be 'skip' or 'zero', got {pnr_unjudged!r}")
    qrels, run = _columns(qrels, run)
    ranking = _rank(qrels, run, complete=complete)
    values = (
        measure_values(
            ir_names,
            ranking.offsets,
            ranking.rows["doc_id"],
            ranking.labels,
            ranking.scores,
            query_ids=ranking.query_ids,
            judged=_judgments(qrels, ranking.query_ids),
        )
        if ir_names
        else {}
    )
    result = None
    if len(ir_names) < len(names):
        n = len(ranking.labels)
        keep = ranking.judged_mask if pnr_unjudged == "skip" else np.ones(n, dtype=bool)
        kept_before = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
        result = pnr(kept_before[ranking.offsets], ranking.labels[keep], ranking.scores[keep])
    evaluation = assemble(names, result, values, ranking.query_ids, per_query=per_query)
    return evaluation, ranking.counts(qrels)


def _columns(qrels: pl.DataFrame, run: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The columns evaluation reads, ids as strings, scores as Float64."""
    qrels = qrels.select(
        pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String), "label"
    )
    run = run.select(
        pl.col("query_id").cast(pl.String),
        pl.col("doc_id").cast(pl.String),
        pl.col("score").cast(pl.Float64),
    )
    return qrels, run


@dataclass(frozen=True)
class _Ranking:
    """The run's rows of the judged queries, grouped by query, with their judgments."""

    rows: pl.DataFrame  # query_id, doc_id, score, label (null: unjudged)
    query_ids: pl.Series  # the evaluated queries (missing ones last with complete=True)
    offsets: np.ndarray
    missing: pl.Series  # judged queries the run does not retrieve for
    unjudged_queries: int  # run queries without judgments (ignored)
    judged_mask: np.ndarray  # per row: has a judgment
    labels: np.ndarray  # int64, unjudged as 0
    scores: np.ndarray

    def counts(self, qrels: pl.DataFrame) -> dict[str, int]:
        return {
            "evaluated_queries": len(self.query_ids),
            "missing_queries": len(self.missing),
            "unjudged_queries": self.unjudged_queries,
            "judged_rows": qrels.height,
            "retrieved_rows": self.rows.height,
            "unjudged_retrieved_rows": int((~self.judged_mask).sum()),
        }


def _rank(qrels: pl.DataFrame, run: pl.DataFrame, *, complete: bool) -> _Ranking:
    """The run restricted to judged queries, joined with the qrels, grouped by query."""
    from rerank.grouping import group_queries

    judged_ids = qrels["query_id"].unique(maintain_order=True)
    run_ids = run["query_id"].unique(maintain_order=True)
    in_run = run.filter(pl.col("query_id").is_in(judged_ids.implode()))
    missing = judged_ids.filter(~judged_ids.is_in(run_ids.implode()))
    if in_run.height == 0:
        sample = ", ".join(repr(q) for q in run_ids.head(3).to_list())
        judged_sample = ", ".join(repr(q) for q in judged_ids.head(3).to_list())
        raise input_error(
            None,
            f"no query of the run is judged in the qrels (run queries {sample} ...; judged "
            f"queries {judged_sample} ...): are they the same collection and id scheme?",
        )
    ranked = in_run.join(qrels, on=["query_id", "doc_id"], how="left", maintain_order="left")
    groups = group_queries(ranked["query_id"])
    if groups.order is not None:
        ranked = ranked[groups.order]
    query_ids = groups.query_ids.cast(pl.String)
    offsets = groups.offsets
    if complete and len(missing):
        query_ids = pl.concat([query_ids, missing])
        offsets = np.concatenate([offsets, np.full(len(missing), offsets[-1])])
    unjudged = int((~run_ids.is_in(judged_ids.implode())).sum())
    judged_mask = ranked["label"].is_not_null().to_numpy()
    labels = ranked["label"].fill_null(0).to_numpy().astype(np.int64)
    scores = ranked["score"].to_numpy()
    return _Ranking(ranked, query_ids, offsets, missing, unjudged, judged_mask, labels, scores)


def _judgments(
    qrels: pl.DataFrame, query_ids: pl.Series
) -> tuple[np.ndarray, pl.Series, np.ndarray]:
    """``(offsets, doc_ids, labels)`` of every judgment of ``query_ids``, in their order
    (the ideal ranking and the relevant documents count all of them, retrieved or not)."""
    position = pl.DataFrame({"query_id": query_ids, "_q": np.arange(len(query_ids))})
    ideal = qrels.join(position, on="query_id", how="inner").sort("_q", maintain_order=True)
    ideal_offsets = np.searchsorted(
        ideal["_q"].to_numpy(), np.arange(len(query_ids) + 1), side="left"
    ).astype(np.int64)
    return ideal_offsets, ideal["doc_id"], ideal["label"].to_numpy().astype(np.int64)
