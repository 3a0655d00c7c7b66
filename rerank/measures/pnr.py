"""PNR (positive-negative ratio): how often a ranker orders pairs of documents like the labels.

For each query, a pair of documents ``(i, j)`` with labels ``y_i > y_j`` is *concordant* when
the scores agree (``s_i > s_j``), *discordant* when they disagree (``s_i < s_j``) and a *tie*
when the scores are equal. Pairs with equal labels are not pairs. PNR is concordant over
discordant: 3.0 means three correctly ordered pairs for each wrongly ordered one.

Two layers (STYLE.md habit 5): private numba kernels on flat arrays (query ``offsets``,
``labels``, ``scores``) and the public, validated :func:`pnr`.

Kernel design. Each query is sorted by score and swept once in ascending order, keeping a
count per label of the documents already passed (those with strictly lower scores); a
document with label ``l`` then forms ``#{passed with label < l}`` concordant and
``#{passed with label > l}`` discordant pairs. Score ties are whole runs of equal keys,
counted against the documents below the run and inserted after it; tie pairs are what is
left: ``pairs with different labels - concordant - discordant``. That is O(n log n) per
query in the worst case, and O(n) expected, because the sort is a bucket sort on the
score (n buckets between the query's min and max score) finished by an insertion sort;
when the bucket occupancy says the insertion sort could cost more than ``8n`` moves
(clustered scores, many ties, infinities) the query falls back to a comparison sort.
Queries of at most ``_DIRECT_MAX`` documents compare all pairs directly, which measured
2-3x faster than sorting for such small queries. Inputs of ``_PARALLEL_MIN_ROWS`` rows or
more are processed in parallel over chunks holding equal numbers of rows, not equal
numbers of queries, so that the few queries with hundreds of documents do not pile up on
one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from rerank.measures.sorting import _sort_by_score

__all__ = ["PNRResult", "pnr"]

_DIRECT_MAX = 24  # queries up to this size compare all pairs (measured: faster than sorting)
_SMALL_LABELS = 8  # label ranges up to this size use a fixed-width count array, else Fenwick
_MAX_LABEL_SPAN = 4096  # wider label ranges are replaced by label ranks first
# Below this many rows the kernel runs on the calling thread only: a parallel launch must wait
# for every worker to be scheduled, which on a busy machine costs more than it saves
# (measured with 2 busy cores: 320k rows took 21 ms serial, 45 ms on 2 threads).
_PARALLEL_MIN_ROWS = 1_000_000


@dataclass(frozen=True)
class PNRResult:
    """PNR totals and per-query counts.

    Attributes
    ----------
    pnr
        Micro PNR: ``concordant / discordant`` summed over all queries (the paper's
        definition). ``inf`` when there are no discordant pairs but some concordant ones;
        ``nan`` when there are neither (no pairs at all, or only score ties).
    pnr_macro
        Mean of the per-query ratios over the queries with at least one discordant pair;
        ``nan`` when no query has one.
    concordant, discordant, ties
        Totals over all queries.
    queries
        Number of queries (groups), including those without pairs.
    queries_without_discordant
        Queries left out of ``pnr_macro`` because they have no discordant pair (including
        queries with no pairs at all).
    query_concordant, query_discordant, query_ties
        int64 arrays, one value per query.
    query_pnr
        float64 per-query ratio with the same conventions as ``pnr``.
    """

    pnr: float
    pnr_macro: float
    concordant: int
    discordant: int
    ties: int
    queries: int
    queries_without_discordant: int
    query_concordant: np.ndarray
    query_discordant: np.ndarray
    query_ties: np.ndarray
    query_pnr: np.ndarray


def pnr(offsets: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> PNRResult:
    """Count concordant, discordant and tied pairs per query and compute PNR.

    Parameters
    ----------
    offsets
        int64 array of length ``n_queries + 1``, non-decreasing from 0 to ``len(labels)``:
        query ``q``'s rows are ``offsets[q]:offsets[q + 1]`` (see
        :func:`rerank.grouping.group_queries`).
    labels
        Integer grades, one per row (int32 and int64 are used as they are; other integer
        types are widened to int64).
    scores
        Scores, one per row. float32 and float64 are used as they are (never downcast);
        integer scores are converted to float64. NaN is rejected; infinities are allowed.

    Returns
    -------
    PNRResult
        Micro and macro PNR, totals and per-query counts.

    Raises
    ------
    ValueError
        On mismatched lengths, bad offsets, non-integer labels or NaN scores.

    Examples
    --------
    >>> import numpy as np
    >>> offsets = np.array([0, 3, 5])
    >>> labels = np.array([2, 1, 0, 1, 0])
    >>> scores = np.array([0.9, 0.3, 0.5, 0.2, 0.2])
    >>> r = pnr(offsets, labels, scores)
    >>> r.concordant, r.discordant, r.ties
    (2, 1, 1)
    >>> r.pnr, r.pnr_macro, r.queries_without_discordant
    (2.0, 2.0, 1)
    >>> r.query_pnr.tolist()
    [2.0, nan]
    """
    offsets, labels, scores = _validate(offsets, labels, scores)
    n_queries = len(offsets) - 1
    if n_queries and len(labels):
        low, high = int(labels.min()), int(labels.max())
        n_labels = high - low + 1
        if n_labels > _MAX_LABEL_SPAN:
            # Sparse grades (say 0 and 10**9): use their ranks so the count arrays (one per
            # chunk, one cell per label value) stay small.
            labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
            low, n_labels = 0, int(labels.max()) + 1
        conc, disc, ties, nan_query = run_chunked(
            _pnr_counts, offsets, offsets, labels, scores, low, n_labels
        )
        if nan_query >= 0:
            a, b = offsets[nan_query], offsets[nan_query + 1]
            row = a + int(np.flatnonzero(np.isnan(scores[a:b]))[0])
            raise ValueError(f"scores must not be NaN (row {row}, query index {nan_query})")
    else:
        conc = disc = ties = np.zeros(n_queries, dtype=np.int64)
    return _summarise(conc, disc, ties)


def _validate(
    offsets: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.asarray(offsets)
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    for name, array in (("offsets", offsets), ("labels", labels), ("scores", scores)):
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if len(labels) != len(scores):
        raise ValueError(f"labels and scores differ in length: {len(labels)} != {len(scores)}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"offsets must be integers, got {offsets.dtype}")
    offsets = offsets.astype(np.int64, copy=False)
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(labels):
        raise ValueError(f"offsets must run from 0 to len(labels) = {len(labels)}")
    if np.any(offsets[1:] < offsets[:-1]):
        raise ValueError("offsets must be non-decreasing")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.dtype not in (np.int32, np.int64):
        labels = labels.astype(np.int64)
    if scores.dtype not in (np.float32, np.float64):
        if not (
            np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)
        ):
            raise ValueError(f"scores must be numbers, got {scores.dtype}")
        scores = scores.astype(np.float64)
    # Strided views would compile (and cache) another specialisation of the kernel.
    return offsets, np.ascontiguousarray(labels), np.ascontiguousarray(scores)


def run_chunked(kernel: Any, offsets: np.ndarray, *args: Any) -> Any:
    """``kernel(*args, chunks)``: a ``prange`` kernel over chunks of queries of about equal
    rows, on numba's threads from :data:`_PARALLEL_MIN_ROWS` rows (one thread below: starting
    the others costs more than they save). The thread count is restored after."""
    threads = numba.get_num_threads()
    use = threads if offsets[-1] >= _PARALLEL_MIN_ROWS else 1
    chunks = _chunk_bounds(offsets, 4 * use)
    numba.set_num_threads(use)  # per calling thread; restored below
    try:
        return kernel(*args, chunks)
    finally:
        numba.set_num_threads(threads)


def _chunk_bounds(offsets: np.ndarray, n_chunks: int) -> np.ndarray:
    """Query indices cutting the queries into chunks of about equal numbers of rows."""
    targets = np.linspace(0, offsets[-1], n_chunks + 1)
    bounds = np.searchsorted(offsets, targets, side="left")
    bounds[0], bounds[-1] = 0, len(offsets) - 1
    return np.unique(bounds).astype(np.int64)


def _summarise(conc: np.ndarray, disc: np.ndarray, ties: np.ndarray) -> PNRResult:
    total_c, total_d = int(conc.sum()), int(disc.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        query_pnr = conc / disc  # c/0 -> inf, 0/0 -> nan: the conventions of `pnr`
    has_disc = disc > 0
    n_with = int(np.count_nonzero(has_disc))
    return PNRResult(
        pnr=_ratio(total_c, total_d),
        pnr_macro=float(query_pnr[has_disc].mean()) if n_with else float("nan"),
        concordant=total_c,
        discordant=total_d,
        ties=int(ties.sum()),
        queries=len(conc),
        queries_without_discordant=len(conc) - n_with,
        query_concordant=conc,
        query_discordant=disc,
        query_ties=ties,
        query_pnr=query_pnr,
    )


def _ratio(concordant: int, discordant: int) -> float:
    if discordant:
        return concordant / discordant
    return float("inf") if concordant else float("nan")


# --------------------------------------------------------------------------------------
# numba kernels


@njit(cache=True)
def _direct(scores, labels, n):
    conc = 0
    disc = 0
    ties = 0
    for i in range(n):
        s_i = scores[i]
        y_i = labels[i]
        for j in range(i + 1, n):
            dy = y_i - labels[j]
            if dy != 0:
                s_j = scores[j]
                above = s_i > s_j
                below = s_i < s_j
                if dy > 0:
                    conc += above
                    disc += below
                else:
                    conc += below
                    disc += above
                ties += not (above or below)
    return conc, disc, ties


@njit(cache=True)
def _sweep_small(key, lab, n, below):
    """Sweep sorted (key, lab) with labels in 0.._SMALL_LABELS-1.

    ``below[l]`` counts the passed documents with a label under ``l`` (scratch of
    ``_SMALL_LABELS + 1`` cells), so each document costs two lookups and one fixed-width
    vector update, with no branch on its label.
    """
    for r in range(_SMALL_LABELS + 1):
        below[r] = 0
    conc = 0
    disc = 0
    same = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and key[j] == key[i]:
            j += 1
        for t in range(i, j):
            y = lab[t]
            conc += below[y]
            disc += below[_SMALL_LABELS] - below[y + 1]
        for t in range(i, j):
            y = lab[t]
            same += below[y + 1] - below[y]
            for r in range(_SMALL_LABELS + 1):
                below[r] += 1 if r > y else 0
        i = j
    return conc, disc, n * (n - 1) // 2 - same - conc - disc


@njit(cache=True)
def _sweep_fenwick(key, lab, n, n_labels, tree, count):
    """Sweep sorted (key, lab) with any number of labels: Fenwick tree over label values.

    ``tree`` and ``count`` are all zeros on entry and are left so (only touched cells are
    cleared, so a query costs O(n log n_labels) whatever the number of labels).
    """
    conc = 0
    disc = 0
    same = 0
    passed = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and key[j] == key[i]:
            j += 1
        for t in range(i, j):
            y = lab[t]
            below = 0
            k = y
            while k > 0:
                below += tree[k]
                k -= k & -k
            conc += below
            disc += passed - below - count[y]
        for t in range(i, j):
            y = lab[t]
            same += count[y]
            count[y] += 1
            k = y + 1
            while k <= n_labels:
                tree[k] += 1
                k += k & -k
        passed += j - i
        i = j
    for t in range(n):
        count[lab[t]] = 0
        k = lab[t] + 1
        while k <= n_labels:
            tree[k] = 0
            k += k & -k
    return conc, disc, n * (n - 1) // 2 - same - conc - disc


@njit(cache=True, parallel=True)
def _pnr_counts(offsets, labels, scores, low, n_labels, chunks):
    """Per-query (concordant, discordant, ties) and the index of a query with NaN (or -1)."""
    n_queries = len(offsets) - 1
    conc = np.zeros(n_queries, dtype=np.int64)
    disc = np.zeros(n_queries, dtype=np.int64)
    ties = np.zeros(n_queries, dtype=np.int64)
    nan_in_chunk = np.full(len(chunks) - 1, -1, dtype=np.int64)
    for c in prange(len(chunks) - 1):
        q0 = chunks[c]
        q1 = chunks[c + 1]
        longest = 1
        for q in range(q0, q1):
            longest = max(longest, offsets[q + 1] - offsets[q])
        key = np.empty(longest, dtype=np.uint64)
        lab = np.empty(longest, dtype=np.int64)
        work = np.empty(longest + 1, dtype=np.int64)
        small = n_labels <= _SMALL_LABELS
        seen = np.zeros(_SMALL_LABELS + 1 if small else n_labels, dtype=np.int64)
        tree = np.zeros(1 if small else n_labels + 1, dtype=np.int64)
        for q in range(q0, q1):
            a = offsets[q]
            n = offsets[q + 1] - a
            s = scores[a : a + n]
            has_nan = False
            for i in range(n):
                has_nan |= np.isnan(s[i])
            if has_nan:
                nan_in_chunk[c] = q
                break
            if n < 2:
                continue
            y = labels[a : a + n]
            if n <= _DIRECT_MAX:
                conc[q], disc[q], ties[q] = _direct(s, y, n)
                continue
            _sort_by_score(s, 0, n, key, lab, y, low, work)
            if small:
                conc[q], disc[q], ties[q] = _sweep_small(key, lab, n, seen)
            else:
                conc[q], disc[q], ties[q] = _sweep_fenwick(key, lab, n, n_labels, tree, seen)
    nan_query = -1
    for c in range(len(nan_in_chunk)):
        if nan_in_chunk[c] >= 0:
            nan_query = nan_in_chunk[c]
            break
    return conc, disc, ties, nan_query
