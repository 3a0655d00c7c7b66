"""nDCG, AP, RR, P, R and ERR in numba, with trec_eval's conventions, on query-grouped arrays.

ir-measures computes these from per-query dictionaries (pytrec_eval, msmarco and gdeval
providers); on 11M rows that costs three times as long as the PNR kernel itself. This module
computes the common measures on the same flat arrays as :mod:`rerank.measures.pnr` (query
``offsets``, ``labels``, ``scores``), with the same chunked parallel layout, and
gives the same values as ir-measures (tested to 1e-9 in tests/test_measures_common.py).
:mod:`rerank.measures.names` says which names it computes; ir-measures stays the path for
every other measure.

Conventions, those of trec_eval (and so of pytrec_eval and ir-measures):

- **Order.** Documents are ranked by score, descending; equal scores by doc id, descending
  (trec_eval's ``comp_sim_docno``: ``strcmp`` on the bytes; the rank field of a run is
  ignored). The kernel sorts by score and compares doc ids (read in place from Arrow's
  string buffers) only inside runs of equal scores that hold different labels, the only
  case where the tie-break changes a value.
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

import numpy as np
from numba import njit, prange

from rerank.measures.names import FastSpec
from rerank.measures.pnr import run_chunked
from rerank.measures.sorting import _sort_by_score

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
    offsets, labels, scores, ideal_offsets, ideal_labels = _checked(
        offsets, labels, scores, ideal_offsets, ideal_labels
    )
    kinds = np.array([_KINDS[s.kind] for s in specs], dtype=np.int64)
    cutoffs = np.array([s.cutoff for s in specs], dtype=np.int64)
    rels = np.array([s.rel for s in specs], dtype=np.int64)
    n_queries = len(offsets) - 1
    if not len(specs) or not n_queries:
        return np.zeros((n_queries, len(specs)))
    doc_offsets, doc_bytes = _string_buffers(doc_ids, len(labels))
    low = int(ideal_labels.min()) if len(ideal_labels) else 0
    span = int(ideal_labels.max()) - low + 1 if len(ideal_labels) else 1
    return run_chunked(
        _measures,
        offsets,
        offsets,
        labels,
        scores,
        doc_offsets,
        doc_bytes,
        ideal_offsets,
        ideal_labels,
        low,
        span,
        kinds,
        cutoffs,
        rels,
    )


def _checked(offsets, labels, scores, ideal_offsets, ideal_labels) -> tuple[np.ndarray, ...]:
    """The kernel's contiguous int64 / float64 arrays; the ranked rows are the judgments
    when ``ideal_offsets`` is ``None``."""
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
    return offsets, labels, scores, ideal_offsets, ideal_labels


def _string_buffers(doc_ids: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrow's layout of the doc ids: int64 offsets (n + 1) into one uint8 buffer of UTF-8."""
    import polars as pl

    series = doc_ids if isinstance(doc_ids, pl.Series) else pl.Series(list(doc_ids))
    if len(series) != n:
        raise ValueError(f"doc_ids has {len(series)} values for {n} rows")
    array = series.cast(pl.String).to_arrow()  # large_string: int64 offsets
    if hasattr(array, "combine_chunks"):
        array = array.combine_chunks()
    _, offsets, data = array.buffers()
    starts = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + n + 1]
    if data is None:  # every id empty
        return np.ascontiguousarray(starts), np.zeros(1, dtype=np.uint8)
    return np.ascontiguousarray(starts), np.frombuffer(data, dtype=np.uint8)


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
def _doc_less(doc_offsets, doc_bytes, i, j):
    """Doc id of row i < doc id of row j, byte-wise (C strcmp on UTF-8)."""
    a, a_end = doc_offsets[i], doc_offsets[i + 1]
    b, b_end = doc_offsets[j], doc_offsets[j + 1]
    while a < a_end and b < b_end:
        if doc_bytes[a] != doc_bytes[b]:
            return doc_bytes[a] < doc_bytes[b]
        a += 1
        b += 1
    return a == a_end and b < b_end


@njit(cache=True)
def _ideal(ideal_labels, a, b, low, span, counts, buffer):
    """The judged labels of one query in descending order (a counting sort when the
    label range is small, as graded judgments are)."""
    n = b - a
    if span <= counts.shape[0]:
        for v in range(span):
            counts[v] = 0
        for i in range(a, b):
            counts[ideal_labels[i] - low] += 1
        p = 0
        for v in range(span - 1, -1, -1):
            for _ in range(counts[v]):
                buffer[p] = v + low
                p += 1
    else:
        for i in range(n):
            buffer[i] = -ideal_labels[a + i]
        buffer[:n].sort()
        for i in range(n):
            buffer[i] = -buffer[i]
    return buffer[:n]


@njit(cache=True, parallel=True)
def _measures(
    offsets,
    labels,
    scores,
    doc_offsets,
    doc_bytes,
    ideal_offsets,
    ideal_labels,
    low,
    span,
    kinds,
    cutoffs,
    rels,
    chunks,
):
    """Values per query: rank by score descending, equal scores by doc id descending."""
    n_queries = len(offsets) - 1
    values = np.zeros((n_queries, len(kinds)))
    for c in prange(len(chunks) - 1):
        q0 = chunks[c]
        q1 = chunks[c + 1]
        longest = 1
        longest_ideal = 1
        for q in range(q0, q1):
            longest = max(longest, offsets[q + 1] - offsets[q])
            longest_ideal = max(longest_ideal, ideal_offsets[q + 1] - ideal_offsets[q])
        key = np.empty(longest, dtype=np.uint64)
        order = np.empty(longest, dtype=np.int64)
        rows = np.arange(longest)
        work = np.empty(longest + 1, dtype=np.int64)
        ranked = np.empty(longest, dtype=np.int64)
        buffer = np.empty(longest_ideal, dtype=np.int64)
        counts = np.zeros(64, dtype=np.int64)
        for q in range(q0, q1):
            a = offsets[q]
            n = offsets[q + 1] - a
            _sort_by_score(scores, a, n, key, order, rows, 0, work)  # ascending; read backwards
            i = 0
            while i < n:
                j = i + 1
                mixed = False
                while j < n and key[j] == key[i]:
                    mixed |= labels[a + order[j]] != labels[a + order[i]]
                    j += 1
                if mixed:
                    # equal scores, different labels: ascending doc id here, so descending
                    # once read backwards (trec_eval's order); insertion sort, runs are short
                    for t in range(i + 1, j):
                        row = order[t]
                        u = t - 1
                        while u >= i and _doc_less(doc_offsets, doc_bytes, a + row, a + order[u]):
                            order[u + 1] = order[u]
                            u -= 1
                        order[u + 1] = row
                i = j
            for t in range(n):
                ranked[t] = labels[a + order[n - 1 - t]]
            ideal = _ideal(
                ideal_labels, ideal_offsets[q], ideal_offsets[q + 1], low, span, counts, buffer
            )
            _query_values(ranked, n, ideal, kinds, cutoffs, rels, values[q])
    return values
