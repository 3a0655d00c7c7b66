"""The score sort of the numba kernels (:mod:`rerank.measures.pnr`, :mod:`rerank.measures.common`).

A query's rows are sorted by score, ascending, on the score's bits made order-preserving
unsigned integers (:func:`_ordered_bits`), by a bucket sort (n buckets between the
query's min and max score) finished by an insertion sort inside each bucket; when the
bucket occupancy says the insertion sort could cost more than ``8n`` moves, it falls back
to numpy's sort. Expected O(n), worst case O(n log n).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__: list[str] = []


@njit(cache=True)
def _ordered_bits(x):
    """uint64 whose unsigned order is the float order (float32 widens exactly to float64)."""
    bits = np.float64(np.float64(x) + 0.0).view(np.int64)  # + 0.0 turns -0.0 into 0.0
    # Negatives: flip every bit; others: set the sign bit. Branch-free (signs are random).
    flip = (bits >> np.int64(63)) | np.int64(-0x8000000000000000)
    return np.uint64(bits ^ flip)


@njit(cache=True)
def _sort_by_score(scores, a, n, key, carry, values, shift, work):
    """Sort ``scores[a:a+n]`` ascending: ``key[:n]`` their ordered bits, ``carry[:n]``
    ``values[i] - shift`` of each sorted row ``i`` (0-based in the query).

    The PNR kernel carries labels (``values`` the query's labels, ``shift`` the lowest
    label), the common-measure kernel row numbers (``values`` ``0, 1, ...``, ``shift`` 0):
    carrying the payload inside the insertion sort is faster than gathering it after.
    ``work`` has ``n + 1`` cells.
    """
    if n == 0:
        return
    lo = scores[a]
    hi = scores[a]
    for i in range(1, n):
        v = scores[a + i]
        lo = min(lo, v)
        hi = max(hi, v)
    span = np.float64(hi) - np.float64(lo)
    scale = (n - 1) / span if span > 0.0 else 0.0
    use_buckets = span > 0.0 and np.isfinite(span) and np.isfinite(scale)
    if use_buckets:
        # Bucket b holds scores in [lo + b/scale, lo + (b+1)/scale): counting pass, then the
        # insertion sort below moves elements only inside their bucket, so sum(m_b^2)
        # bounds its cost.
        for b in range(n + 1):
            work[b] = 0
        for i in range(n):
            b = min(np.int64((np.float64(scores[a + i]) - np.float64(lo)) * scale), n - 1)
            work[b + 1] += 1
        cost = 0
        for b in range(n):
            cost += work[b + 1] * work[b + 1]
            work[b + 1] += work[b]
        use_buckets = cost <= 8 * n + 64
    if use_buckets:
        for i in range(n):
            b = min(np.int64((np.float64(scores[a + i]) - np.float64(lo)) * scale), n - 1)
            p = work[b]
            work[b] = p + 1
            key[p] = _ordered_bits(scores[a + i])
            carry[p] = values[i] - shift
        for i in range(1, n):
            k = key[i]
            y = carry[i]
            j = i - 1
            while j >= 0 and key[j] > k:
                key[j + 1] = key[j]
                carry[j + 1] = carry[j]
                j -= 1
            key[j + 1] = k
            carry[j + 1] = y
    else:
        for i in range(n):
            key[i] = _ordered_bits(scores[a + i])
        sorted_rows = np.argsort(key[:n])
        for i in range(n):
            work[i] = values[sorted_rows[i]] - shift
        key[:n].sort()
        for i in range(n):
            carry[i] = work[i]
