"""Query grouping: make rows contiguous by query and describe the groups by offsets.

Every per-query computation in `rerank` (PNR, batching of query groups, per-query
evaluation) works on flat arrays plus an ``offsets`` array: query ``q``'s rows are
``offsets[q]:offsets[q + 1]``. :func:`group_queries` builds that description from a
query id column. Data files are normally already grouped (each query's rows in one
run), so the common path only *checks* contiguity (one vectorised comparison with the
previous row, then a uniqueness test over the run heads) and never sorts. Only rows that
are not contiguous get a stable permutation, built in O(n) by a counting sort on dense
query codes, with groups in order of first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

__all__ = ["QueryGroups", "group_queries", "query_offsets"]


@dataclass(frozen=True)
class QueryGroups:
    """Where each query's rows are.

    Attributes
    ----------
    order
        ``None`` when the rows are already contiguous by query; otherwise an int64
        permutation such that ``rows[order]`` is contiguous (stable: rows of one query keep
        their relative order; queries appear in order of their first row).
    offsets
        int64 array of length ``n_queries + 1``; group ``q`` is
        ``offsets[q]:offsets[q + 1]`` of the (reordered) rows.
    query_ids
        The query id of each group, in group order (a polars Series of the input's dtype).
    """

    order: np.ndarray | None
    offsets: np.ndarray
    query_ids: pl.Series

    @property
    def n_queries(self) -> int:
        """Number of groups."""
        return len(self.offsets) - 1


def group_queries(query_ids: pl.Series | np.ndarray) -> QueryGroups:
    """Group rows by query id without sorting when they are already grouped.

    Parameters
    ----------
    query_ids
        One query id per row: a polars Series (String, Categorical or integer) or a
        numpy array (strings, objects or integers). Nulls are not allowed.

    Returns
    -------
    QueryGroups
        ``order`` (``None`` if contiguous), ``offsets`` and the id of each group.

    Raises
    ------
    ValueError
        If the column is not one-dimensional or holds nulls.

    Examples
    --------
    >>> import polars as pl
    >>> g = group_queries(pl.Series(["q2", "q2", "q1", "q1", "q1"]))
    >>> g.order is None, g.offsets.tolist(), g.query_ids.to_list()
    (True, [0, 2, 5], ['q2', 'q1'])
    >>> g = group_queries(pl.Series(["a", "b", "a"]))
    >>> g.order.tolist(), g.offsets.tolist(), g.query_ids.to_list()
    ([0, 2, 1], [0, 2, 3], ['a', 'b'])
    """
    series = _as_series(query_ids)
    n = len(series)
    if n == 0:
        return QueryGroups(None, np.zeros(1, dtype=np.int64), series)
    if series.null_count():
        raise ValueError("query ids must not be null")

    keys = series.to_physical() if series.dtype == pl.Categorical else series
    # Run heads: rows whose id differs from the previous row's. With runs of two or more
    # rows on average, checking that the heads are unique is cheaper than coding all rows.
    is_head = keys.ne_missing(keys.shift(1)).to_numpy()
    n_heads = int(np.count_nonzero(is_head))
    if 2 * n_heads <= n:
        heads = np.flatnonzero(is_head)
        head_ids = series.gather(heads)
        if head_ids.n_unique() == n_heads:
            return QueryGroups(None, _append(heads, n), head_ids)

    codes = _dense_codes(series)
    if _is_non_decreasing(codes):
        # First-appearance codes only grow by one at each new run when rows are contiguous.
        heads = np.flatnonzero(is_head)
        return QueryGroups(None, _append(heads, n), series.gather(heads))
    order, offsets, first_rows = _counting_sort(codes)
    return QueryGroups(order, offsets, series.gather(first_rows))


def query_offsets(query_ids: pl.Series | np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Return ``(order, offsets)`` for a query id column; see :func:`group_queries`.

    Examples
    --------
    >>> import numpy as np
    >>> order, offsets = query_offsets(np.array([7, 7, 3]))
    >>> order is None, offsets.tolist()
    (True, [0, 2, 3])
    """
    groups = group_queries(query_ids)
    return groups.order, groups.offsets


def _as_series(query_ids: pl.Series | np.ndarray) -> pl.Series:
    if isinstance(query_ids, pl.Series):
        return query_ids
    array = np.asarray(query_ids)
    if array.ndim != 1:
        raise ValueError(f"query ids must be one-dimensional, got shape {array.shape}")
    if array.dtype == object:
        return pl.Series("query_id", array.tolist())
    return pl.Series("query_id", array)


def _append(heads: np.ndarray, n: int) -> np.ndarray:
    offsets = np.empty(len(heads) + 1, dtype=np.int64)
    offsets[:-1] = heads
    offsets[-1] = n
    return offsets


def _dense_codes(series: pl.Series) -> np.ndarray:
    """Integer code per row, dense in 0..n_groups-1, in order of first appearance."""
    if series.dtype.is_integer():
        raw = series.to_numpy().astype(np.int64, copy=False)
        low, high = int(raw.min()), int(raw.max())
        if high - low <= 4 * len(raw):
            return _renumber(raw - low, high - low + 1)
        # Sparse ids: np.unique sorts; renumber its groups by first appearance.
        _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
        return rank[inverse]
    # Categorical physical codes are global to the process (not dense): renumber them.
    physical = series.cast(pl.String).cast(pl.Categorical).to_physical().to_numpy()
    return _renumber(physical.astype(np.int64, copy=False), int(physical.max()) + 1)


@njit(cache=True)
def _is_non_decreasing(codes: np.ndarray) -> bool:
    for i in range(1, len(codes)):
        if codes[i] < codes[i - 1]:
            return False
    return True


@njit(cache=True)
def _renumber(raw: np.ndarray, n_raw: int) -> np.ndarray:
    code_of = np.full(n_raw, -1, dtype=np.int64)
    out = np.empty(len(raw), dtype=np.int64)
    next_code = 0
    for i in range(len(raw)):
        c = code_of[raw[i]]
        if c < 0:
            c = next_code
            code_of[raw[i]] = c
            next_code += 1
        out[i] = c
    return out


@njit(cache=True)
def _counting_sort(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_groups = 0
    for i in range(len(codes)):
        if codes[i] + 1 > n_groups:
            n_groups = codes[i] + 1
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(len(codes)):
        offsets[codes[i] + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    cursor = offsets[:-1].copy()
    order = np.empty(len(codes), dtype=np.int64)
    first_rows = np.full(n_groups, -1, dtype=np.int64)
    for i in range(len(codes)):
        c = codes[i]
        if first_rows[c] < 0:
            first_rows[c] = i
        order[cursor[c]] = i
        cursor[c] += 1
    return order, offsets, first_rows
