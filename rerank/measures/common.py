"""nDCG, AP, RR, P, R and ERR in numba, with trec_eval's conventions, on query-grouped arrays.

ir-measures computes these from per-query dictionaries (pytrec_eval, msmarco and gdeval
providers); on 11M rows that costs three times as long as the PNR kernel itself. This module
computes the common measures on the same flat arrays as :mod:`rerank.measures.pnr` (query
``offsets``, ``labels``, ``scores``), with the same score sort (:func:`pnr._sort_query`), and
gives the same values as ir-measures (tested to 1e-9 in tests/test_measures_common.py).
:mod:`rerank.measures.names` says which names it computes; ir-measures stays the path for
every other measure.

Conventions, those of trec_eval (and so of pytrec_eval and ir-measures):

- **Order.** Documents are ranked by score, descending; equal scores by doc id, descending
  (trec_eval's ``comp_sim_docno``; the rank field of a run is ignored). The kernel sorts by
  score only and flags the queries where a run of equal scores holds different labels, the
  only case where the tie-break changes a value; those queries are sorted again with their
  doc ids' string order, so the string ranking costs nothing when scores do not tie.
- **Ideal ranking and recall** use the query's judged labels (``ideal_labels``), which in a
  TREC evaluation include the judged documents the run did not retrieve. Unjudged retrieved
  documents carry label 0.
- **Gains.** nDCG's gain is the label (trec_eval's linear gain; negative labels gain 0), its
  discount ``log2(rank + 1)``; ERR's (gdeval) is ``(2**label - 1) / 16``.
- **Binary measures** (AP, RR, P, R) count labels ``>= rel`` as relevant. AP and R divide by
  the number of judged relevant documents (0 when there is none); P@k divides by ``k`` even
  when fewer documents were retrieved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from numba import njit, prange

from rerank.measures.names import FastSpec
from rerank.measures.pnr import _PARALLEL_MIN_ROWS, _chunk_bounds, _ordered_bits, _sort_query

__all__ = ["common_measures"]

_KINDS = {"ndcg": 0, "ap": 1, "rr": 2, "p": 3, "r": 4, "err": 5}


def common_measures(
    offsets: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    doc_ids: Sequence[str],
    specs: Sequence[FastSpec],
    *,
    ideal_offsets: np.ndarray | None = None,
    ideal_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Per-query values of the measures in ``specs``.

    Parameters
    ----------
    offsets
        int64 query offsets of the ranked rows: query ``q``'s are ``offsets[q]:offsets[q+1]``.
    labels
        Integer label of each ranked row (0 for an unjudged document).
    scores
        Float score of each ranked row (no NaN).
    doc_ids
        Doc id of each ranked row (a list or a polars Series of strings), to break score
        ties as trec_eval does.
    specs
        The measures (see :func:`rerank.measures.names.resolve`).
    ideal_offsets, ideal_labels
        Every judged label of each query, grouped with the same query order as ``offsets``
        (for the ideal DCG and the number of relevant documents). ``None``: the ranked
        rows are all the judgments (a labelled table).

    Returns
    -------
    numpy.ndarray
        float64, shape ``(n_queries, len(specs))``.

    Examples
    --------
    >>> import numpy as np
    >>> from rerank.measures.names import resolve
    >>> specs = [resolve(n).fast for n in ("mrr", "p@2", "ndcg@2")]
    >>> common_measures(np.array([0, 3]), np.array([0, 1, 1]), np.array([3.0, 2.0, 2.0]),
    ...                 ["a", "b", "c"], specs).round(4).tolist()
    [[0.5, 0.5, 0.3869]]
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    if len(labels) != len(scores) or offsets[-1] != len(labels):
        raise ValueError("offsets, labels and scores do not describe the same rows")
    if np.isnan(scores).any():
        raise ValueError("scores must not be NaN")
    if ideal_offsets is None:
        ideal_offsets, ideal_labels = offsets, labels
    ideal_offsets = np.ascontiguousarray(ideal_offsets, dtype=np.int64)
    ideal_labels = np.ascontiguousarray(ideal_labels, dtype=np.int64)
    if len(ideal_offsets) != len(offsets):
        raise ValueError("ideal_offsets and offsets differ in their number of queries")
    kinds = np.array([_KINDS[s.kind] for s in specs], dtype=np.int64)
    cutoffs = np.array([s.cutoff for s in specs], dtype=np.int64)
    rels = np.array([s.rel for s in specs], dtype=np.int64)
    n_queries = len(offsets) - 1
    if not len(specs) or not n_queries:
        return np.zeros((n_queries, len(specs)))
    threads = numba.get_num_threads()
    use = threads if len(labels) >= _PARALLEL_MIN_ROWS else 1
    chunks = _chunk_bounds(offsets, 4 * use)
    numba.set_num_threads(use)
    try:
        values, tied = _measures(
            offsets, labels, scores, ideal_offsets, ideal_labels, kinds, cutoffs, rels, chunks
        )
    finally:
        numba.set_num_threads(threads)
    redo = np.flatnonzero(tied)
    if len(redo):
        # Equal scores with different labels: sort these queries again, ties by doc id.
        starts, ends = offsets[redo], offsets[redo + 1]
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        doc_rank = _string_ranks(doc_ids, rows)
        sub_offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        i_starts, i_ends = ideal_offsets[redo], ideal_offsets[redo + 1]
        i_rows = np.concatenate([np.arange(a, b) for a, b in zip(i_starts, i_ends, strict=True)])
        sub_ideal = np.concatenate([[0], np.cumsum(i_ends - i_starts)]).astype(np.int64)
        values[redo] = _measures_tie_broken(
            sub_offsets,
            labels[rows],
            scores[rows],
            doc_rank,
            sub_ideal,
            ideal_labels[i_rows.astype(np.int64)],
            kinds,
            cutoffs,
            rels,
        )
    return values


def _string_ranks(doc_ids: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """Dense ranks of the doc ids at ``rows`` in byte-wise string order (C ``strcmp``)."""
    import polars as pl

    series = doc_ids if isinstance(doc_ids, pl.Series) else pl.Series(list(doc_ids))
    subset = series.cast(pl.String).gather(rows)
    # polars orders strings by their UTF-8 bytes, as strcmp does
    return subset.rank("dense").cast(pl.Int64).to_numpy()


# --------------------------------------------------------------------------------------
# numba kernels


@njit(cache=True)
def _query_values(ranked, n, ideal, kinds, cutoffs, rels, out):
    """Fill ``out`` with each measure of one query; ``ranked[:n]`` holds labels best first,
    ``ideal`` the query's judged labels sorted in descending order."""
    for m in range(len(kinds)):
        kind = kinds[m]
        k = cutoffs[m] if cutoffs[m] > 0 else max(n, len(ideal))
        depth = min(k, n)
        rel = rels[m]
        n_rel = 0
        for i in range(len(ideal)):
            n_rel += ideal[i] >= rel
        value = 0.0
        if kind == 0:  # nDCG
            dcg = 0.0
            for i in range(depth):
                if ranked[i] > 0:
                    dcg += ranked[i] / np.log2(i + 2.0)
            idcg = 0.0
            for i in range(min(k, len(ideal))):
                if ideal[i] > 0:
                    idcg += ideal[i] / np.log2(i + 2.0)
            value = dcg / idcg if idcg > 0.0 else 0.0
        elif kind == 1:  # AP
            hits = 0
            total = 0.0
            for i in range(depth):
                if ranked[i] >= rel:
                    hits += 1
                    total += hits / (i + 1.0)
            value = total / n_rel if n_rel > 0 else 0.0
        elif kind == 2:  # RR
            for i in range(depth):
                if ranked[i] >= rel:
                    value = 1.0 / (i + 1.0)
                    break
        elif kind == 3 or kind == 4:  # P, R
            hits = 0
            for i in range(depth):
                hits += ranked[i] >= rel
            if kind == 3:
                value = hits / k
            else:
                value = hits / n_rel if n_rel > 0 else 0.0
        else:  # ERR (gdeval: gains (2**g - 1) / 2**4)
            p = 1.0
            for i in range(depth):
                g = max(ranked[i], 0)
                r = (2.0**g - 1.0) / 16.0
                value += p * r / (i + 1.0)
                p *= 1.0 - r
        out[m] = value


@njit(cache=True)
def _sorted_ideal(ideal_labels, a, b, buffer):
    n = b - a
    for i in range(n):
        buffer[i] = -ideal_labels[a + i]
    buffer[:n].sort()
    for i in range(n):
        buffer[i] = -buffer[i]
    return buffer[:n]


@njit(cache=True, parallel=True)
def _measures(offsets, labels, scores, ideal_offsets, ideal_labels, kinds, cutoffs, rels, chunks):
    """Values per query, sorting by score only; ``tied[q]`` marks a query whose equal scores
    hold different labels (its values are left for :func:`_measures_tie_broken`)."""
    n_queries = len(offsets) - 1
    values = np.zeros((n_queries, len(kinds)))
    tied = np.zeros(n_queries, dtype=np.bool_)
    for c in prange(len(chunks) - 1):
        q0 = chunks[c]
        q1 = chunks[c + 1]
        longest = 1
        longest_ideal = 1
        for q in range(q0, q1):
            longest = max(longest, offsets[q + 1] - offsets[q])
            longest_ideal = max(longest_ideal, ideal_offsets[q + 1] - ideal_offsets[q])
        key = np.empty(longest, dtype=np.uint64)
        lab = np.empty(longest, dtype=np.int64)
        work = np.empty(longest + 1, dtype=np.int64)
        ranked = np.empty(longest, dtype=np.int64)
        buffer = np.empty(longest_ideal, dtype=np.int64)
        for q in range(q0, q1):
            a = offsets[q]
            n = offsets[q + 1] - a
            if n > 0:
                _sort_query(scores[a : a + n], labels[a : a + n], 0, key, lab, work, n)
            has_tie = False
            for i in range(n):  # best first: the ascending sort read backwards
                ranked[i] = lab[n - 1 - i]
                if i > 0 and key[n - 1 - i] == key[n - i] and ranked[i] != ranked[i - 1]:
                    has_tie = True
            if has_tie:
                tied[q] = True
                continue
            ideal = _sorted_ideal(ideal_labels, ideal_offsets[q], ideal_offsets[q + 1], buffer)
            _query_values(ranked, n, ideal, kinds, cutoffs, rels, values[q])
    return values, tied


@njit(cache=True)
def _measures_tie_broken(
    offsets, labels, scores, doc_rank, ideal_offsets, ideal_labels, kinds, cutoffs, rels
):
    """Values per query, ranking by score then doc rank, both descending."""
    n_queries = len(offsets) - 1
    values = np.zeros((n_queries, len(kinds)))
    longest = 1
    longest_ideal = 1
    for q in range(n_queries):
        longest = max(longest, offsets[q + 1] - offsets[q])
        longest_ideal = max(longest_ideal, ideal_offsets[q + 1] - ideal_offsets[q])
    ranked = np.empty(longest, dtype=np.int64)
    buffer = np.empty(longest_ideal, dtype=np.int64)
    key = np.empty(longest, dtype=np.uint64)
    for q in range(n_queries):
        a = offsets[q]
        n = offsets[q + 1] - a
        for i in range(n):
            key[i] = _ordered_bits(scores[a + i])
        # ascending (doc rank), then a stable ascending sort by score key: read backwards
        by_doc = np.argsort(doc_rank[a : a + n], kind="mergesort")
        by_score = np.argsort(key[:n][by_doc], kind="mergesort")
        for i in range(n):
            ranked[i] = labels[a + by_doc[by_score[n - 1 - i]]]
        ideal = _sorted_ideal(ideal_labels, ideal_offsets[q], ideal_offsets[q + 1], buffer)
        _query_values(ranked, n, ideal, kinds, cutoffs, rels, values[q])
    return values
