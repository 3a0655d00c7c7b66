"""Evaluation: PNR and IR measures on one scored, labelled table, reported together.

:func:`evaluate` takes a frame with ``query_id, doc_id, label, score`` and a list of
measure names. ``pnr`` and ``pnr_macro`` come from the numba kernels in
:mod:`rerank.measures.pnr`; nDCG, AP, RR, P, R and ERR from those of
:mod:`rerank.measures.common` (trec_eval's conventions, the values of ir-measures); every
other name goes to ir-measures through :mod:`rerank.measures.ir`. The results are merged so
that PNR reads like any other measure (STYLE.md habit 5). TREC qrels and a run, where most
retrieved documents are unjudged, are evaluated by :mod:`rerank.measures.trec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rerank.errors import input_error
from rerank.measures.pnr import PNRResult, pnr
from rerank.measures.results import PNR_COUNTS, PNR_MEASURES, Evaluation, assemble

if TYPE_CHECKING:
    import polars as pl

# polars (and rerank.grouping, which needs it) are imported inside evaluate(): importing
# rerank.measures.pnr runs this file, and the PNR kernels alone should start fast.

__all__ = [
    "DEFAULT_MEASURES",
    "PNR_COUNTS",
    "PNR_MEASURES",
    "Evaluation",
    "PNRResult",
    "assemble",
    "check_names",
    "evaluate",
    "measure_values",
    "pnr",
]

DEFAULT_MEASURES: tuple[str, ...] = ("pnr", "pnr_macro", "ndcg@10", "map", "mrr")
_COLUMNS = ("query_id", "doc_id", "label", "score")


def evaluate(
    frame: pl.DataFrame,
    measures: Sequence[str] = DEFAULT_MEASURES,
    *,
    per_query: bool = False,
    check_duplicates: bool = True,
) -> Evaluation:
    """Evaluate scores against labels with PNR and ir-measures.

    Parameters
    ----------
    frame
        Columns ``query_id`` (str), ``doc_id`` (str), ``label`` (int), ``score`` (float);
        rows of a query need not be contiguous (they are grouped without sorting when
        they are).
    measures
        Names: ``pnr`` (micro: total concordant / total discordant), ``pnr_macro`` (mean
        per-query ratio over queries with a discordant pair), and any name accepted by
        :func:`rerank.measures.names.resolve` (``ndcg@10``, ``map``, ``mrr``, ``err@20``,
        ``p@10``, ``recall@100``, ``nDCG@10``, ``AP(rel=2)``, ``ndcg_cut_10``, ...). The
        keys of the result are the names as given.
    per_query
        Also return a per-query table.
    check_duplicates
        Check that no doc id repeats within a query (IR measures only); ``False`` skips the
        check for frames whose readers checked it already.

    Returns
    -------
    Evaluation
        ``aggregate`` (name -> value, plus PNR counts) and optionally ``per_query``.

    Raises
    ------
    RerankError
        On a missing column, nulls, non-integer labels, NaN scores, an unknown measure
        name, or a doc id repeated within a query.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({
    ...     "query_id": ["q1", "q1", "q1", "q2", "q2"],
    ...     "doc_id": ["a", "b", "c", "a", "d"],
    ...     "label": [2, 1, 0, 1, 0],
    ...     "score": [0.9, 0.3, 0.5, 0.2, 0.1],
    ... })
    >>> ev = evaluate(frame, ["pnr", "pnr_macro", "mrr"])
    >>> ev.aggregate
    {'pnr': 3.0, 'pnr_macro': 2.0, 'mrr': 1.0, 'concordant': 3, 'discordant': 1, 'ties': 0, 'queries': 2, 'queries_without_discordant': 1}
    """
    from rerank.grouping import group_queries

    names, ir_names = check_names(measures)
    _check_frame(frame)
    if ir_names and check_duplicates:
        _check_unique(frame)

    groups = group_queries(frame["query_id"])
    labels = frame["label"].to_numpy()
    scores = frame["score"].to_numpy()
    if groups.order is not None:
        labels, scores = labels[groups.order], scores[groups.order]
    result = None
    if len(ir_names) < len(names):
        try:
            result = pnr(groups.offsets, labels, scores)
        except ValueError as error:  # NaN scores: say it as a user error
            raise input_error(None, str(error), column="score") from None
    values: dict[str, np.ndarray] = {}
    if ir_names:
        doc_ids = frame["doc_id"]
        if groups.order is not None:
            doc_ids = doc_ids.gather(groups.order)
        values = measure_values(
            ir_names, groups.offsets, doc_ids, labels, scores, query_ids=groups.query_ids
        )
    return assemble(names, result, values, groups.query_ids, per_query=per_query)


def check_names(measures: Sequence[str]) -> tuple[list[str], list[str]]:
    """The distinct names asked for, and those of them that are not PNR; an unknown name
    fails here, before any work."""
    from rerank.measures.names import resolve

    names = list(dict.fromkeys(measures))
    if not names:
        raise input_error(None, "no measures requested")
    ir_names = [n for n in names if n not in PNR_MEASURES]
    for name in ir_names:
        resolve(name)
    return names, ir_names


def measure_values(
    names: Sequence[str],
    offsets: np.ndarray,
    doc_ids: pl.Series,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    query_ids: pl.Series | None = None,
    judged: tuple[np.ndarray, pl.Series, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-query values of IR measures (not PNR) on query-grouped rows.

    The measures :func:`rerank.measures.names.resolve` marks as fast come from the numba
    kernels of :mod:`rerank.measures.common`, all others from ir-measures
    (:func:`rerank.measures.ir.calc`); both follow trec_eval's conventions. ``judged`` is
    ``(offsets, doc_ids, labels)`` of the judgments grouped in the same query order, when
    they are not the ranked rows themselves (TREC qrels and a run).
    """
    from rerank.measures import ir
    from rerank.measures.common import common_measures
    from rerank.measures.names import resolve

    fast = {n: resolve(n).fast for n in names}
    fast_names = [
        n for n in names if fast[n] is not None and not _err_out_of_range(n, fast, labels, judged)
    ]
    slow_names = [n for n in names if n not in fast_names]
    values: dict[str, np.ndarray] = {}
    if fast_names:
        ideal = {} if judged is None else {"ideal_offsets": judged[0], "ideal_labels": judged[2]}
        matrix = common_measures(
            offsets, labels, scores, doc_ids, [fast[n] for n in fast_names], **ideal
        )
        values.update({n: matrix[:, i] for i, n in enumerate(fast_names)})
    if slow_names:
        ids = query_ids.cast(str).to_list() if query_ids is not None else None
        judged_lists = None if judged is None else (judged[0], judged[1].to_list(), judged[2])
        values.update(
            ir.calc(
                slow_names,
                offsets,
                doc_ids.to_list(),
                labels,
                scores,
                query_ids=ids,
                judged=judged_lists,
            )[1]
        )
    return values


def _check_unique(frame: pl.DataFrame) -> None:
    from rerank.tables.checks import first_repeat

    at = first_repeat(frame, ["query_id", "doc_id"])
    if at is not None:
        row = frame.row(at, named=True)
        raise input_error(
            None,
            f"doc_id '{row['doc_id']}' appears more than once in query '{row['query_id']}'",
        )


def _err_out_of_range(name, fast, labels, judged) -> bool:
    """ERR outside 0..4: let ir-measures (gdeval) say so."""
    if fast[name].kind != "err":
        return False
    grades = labels if judged is None else judged[2]
    return bool(len(grades)) and (int(grades.max()) > 4)


def _check_frame(frame: pl.DataFrame) -> None:
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise input_error(
            None, f"missing column(s) {', '.join(missing)}; expected {', '.join(_COLUMNS)}"
        )
    for column in _COLUMNS:
        nulls = frame[column].null_count()
        if nulls:
            row = int(frame[column].is_null().arg_max()) + 1
            raise input_error(None, f"{nulls} null value(s)", row=row, column=column)
    if not frame["label"].dtype.is_integer():
        raise input_error(
            None, f"expected integer grades, got {frame['label'].dtype}", column="label"
        )
    if not frame["score"].dtype.is_numeric():
        raise input_error(None, f"expected numbers, got {frame['score'].dtype}", column="score")
