from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.measures.pnr import _DIRECT_MAX, pnr

# `rerank.measures.pnr` the attribute is the function; the module is this one.
pnr_module = importlib.import_module("rerank.measures.pnr")


def brute_force(groups: list[list[tuple[int, float]]]) -> tuple[list[int], list[int], list[int]]:
    """Every ordered pair with y_i > y_j, classified by comparing the scores."""
    conc, disc, ties = [], [], []
    for docs in groups:
        c = d = t = 0
        for y_i, s_i in docs:
            for y_j, s_j in docs:
                if y_i > y_j:
                    if s_i > s_j:
                        c += 1
                    elif s_i < s_j:
                        d += 1
                    else:
                        t += 1
        conc.append(c)
        disc.append(d)
        ties.append(t)
    return conc, disc, ties


def flatten(groups, label_dtype=np.int64, score_dtype=np.float64):
    offsets = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=offsets[1:])
    labels = np.array([y for g in groups for y, _ in g], dtype=label_dtype)
    scores = np.array([s for g in groups for _, s in g], dtype=score_dtype)
    return offsets, labels, scores


def assert_matches_brute_force(groups, label_dtype=np.int64, score_dtype=np.float64):
    offsets, labels, scores = flatten(groups, label_dtype, score_dtype)
    # The reference sees the scores the kernel sees (after the dtype cast).
    cast = [
        [(y, float(s)) for (y, _), s in zip(g, scores[a:b], strict=True)]
        for g, a, b in zip(groups, offsets[:-1], offsets[1:], strict=True)
    ]
    conc, disc, ties = brute_force(cast)
    r = pnr(offsets, labels, scores)
    assert r.query_concordant.tolist() == conc
    assert r.query_discordant.tolist() == disc
    assert r.query_ties.tolist() == ties
    assert (r.concordant, r.discordant, r.ties) == (sum(conc), sum(disc), sum(ties))
    assert r.queries == len(groups)
    assert r.queries_without_discordant == sum(1 for d in disc if d == 0)
    return r


# --- hand-checked cases ------------------------------------------------------------


def test_hand_checked_two_queries():
    # q0: labels 2,1,0 scored 0.9,0.3,0.5 -> (2>1 ok) (2>0 ok) (1>0 wrong): c=2 d=1
    # q1: labels 1,0 scored equally -> one tie
    r = pnr(np.array([0, 3, 5]), np.array([2, 1, 0, 1, 0]), np.array([0.9, 0.3, 0.5, 0.2, 0.2]))
    assert r.query_concordant.tolist() == [2, 0]
    assert r.query_discordant.tolist() == [1, 0]
    assert r.query_ties.tolist() == [0, 1]
    assert (r.concordant, r.discordant, r.ties) == (2, 1, 1)
    assert r.pnr == 2.0
    assert r.pnr_macro == 2.0
    assert r.queries == 2
    assert r.queries_without_discordant == 1
    assert r.query_pnr[0] == 2.0 and math.isnan(r.query_pnr[1])


def test_micro_and_macro_differ():
    # q0: labels 2,1,0 scored 3,1,2 -> c=2 d=1 (ratio 2)
    # q1: labels 1,0 scored 5,6 -> c=0 d=1 (ratio 0)
    # q2: labels 2,1,0,0 scored 4,3,1,2 -> c=5 d=0 (no ratio: left out of the macro mean)
    offsets = np.array([0, 3, 5, 9])
    labels = np.array([2, 1, 0, 1, 0, 2, 1, 0, 0])
    scores = np.array([3.0, 1.0, 2.0, 5.0, 6.0, 4.0, 3.0, 1.0, 2.0])
    r = pnr(offsets, labels, scores)
    assert r.query_concordant.tolist() == [2, 0, 5]
    assert r.query_discordant.tolist() == [1, 1, 0]
    assert r.pnr == 7 / 2
    assert r.pnr_macro == 1.0
    assert r.queries_without_discordant == 1
    assert r.query_pnr.tolist() == [2.0, 0.0, math.inf]


def test_no_discordant_pairs_gives_inf_and_no_pairs_gives_nan():
    r = pnr(np.array([0, 2]), np.array([1, 0]), np.array([2.0, 1.0]))
    assert r.pnr == math.inf
    assert math.isnan(r.pnr_macro)
    assert r.queries_without_discordant == 1
    assert r.query_pnr.tolist() == [math.inf]
    only_ties = pnr(np.array([0, 2]), np.array([1, 0]), np.array([1.0, 1.0]))
    assert math.isnan(only_ties.pnr) and only_ties.ties == 1
    no_pairs = pnr(np.array([0, 2, 3]), np.array([1, 1, 4]), np.array([1.0, 2.0, 3.0]))
    assert math.isnan(no_pairs.pnr) and no_pairs.concordant == no_pairs.discordant == 0


def test_empty_inputs():
    r = pnr(np.array([0]), np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    assert r.queries == 0 and math.isnan(r.pnr) and math.isnan(r.pnr_macro)
    r = pnr(np.array([0, 0, 0]), np.array([], dtype=np.int64), np.array([]))
    assert r.queries == 2 and r.queries_without_discordant == 2
    assert r.query_concordant.tolist() == [0, 0]


def test_negative_zero_ties_with_zero():
    r = pnr(np.array([0, 2]), np.array([1, 0]), np.array([-0.0, 0.0]))
    assert (r.concordant, r.discordant, r.ties) == (0, 0, 1)


def test_float64_is_not_downcast():
    # 1 + 1e-12 and 1 are equal in float32; in float64 they are ordered.
    r = pnr(np.array([0, 2]), np.array([1, 0]), np.array([1.0 + 1e-12, 1.0]))
    assert (r.concordant, r.ties) == (1, 0)


def test_large_query_paths_match_brute_force():
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 5, n)
    spread = rng.standard_normal(n)  # bucket sort path
    clustered = rng.choice([0.0, 1.0, 2.5], n)  # comparison-sort fallback (heavy ties)
    outlier = np.append(rng.random(n - 2), [1e300, -np.inf])  # one-bucket pile-up + inf
    for scores in (spread, clustered, outlier):
        assert_matches_brute_force([list(zip(labels.tolist(), scores.tolist(), strict=True))])
    assert n > _DIRECT_MAX


def test_many_and_sparse_labels_match_brute_force():
    rng = np.random.default_rng(1)
    n = 200
    scores = np.round(rng.standard_normal(n), 1).tolist()
    wide = rng.integers(0, 60, n).tolist()  # Fenwick path
    wider = rng.integers(0, 5000, n).tolist()  # rank compression (span > 4096) + Fenwick
    sparse = (rng.integers(0, 12, n) * 10**12 - 5).tolist()  # rank compression + Fenwick
    for labels in (wide, wider, sparse):
        assert_matches_brute_force([list(zip(labels, scores, strict=True))] * 2)


def test_parallel_path_matches_brute_force(monkeypatch):
    monkeypatch.setattr(pnr_module, "_PARALLEL_MIN_ROWS", 0)
    rng = np.random.default_rng(2)
    sizes = rng.integers(0, 80, 60)
    groups = [
        list(zip(rng.integers(0, 5, n).tolist(), np.round(rng.random(n), 2).tolist(), strict=True))
        for n in sizes
    ]
    assert_matches_brute_force(groups)
    with pytest.raises(ValueError, match="NaN"):
        pnr(np.array([0, 2, 30]), np.zeros(30, dtype=np.int64), np.r_[np.ones(29), np.nan])


def test_nan_scores_are_rejected_with_the_row():
    with pytest.raises(ValueError, match=r"NaN \(row 3, query index 1\)"):
        pnr(np.array([0, 2, 4]), np.array([1, 0, 1, 0]), np.array([1.0, 2.0, 3.0, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        pnr(np.array([0, 1]), np.array([1]), np.array([np.nan], dtype=np.float32))


@pytest.mark.parametrize(
    ("offsets", "labels", "scores", "message"),
    [
        ([0, 2], [1, 0], [1.0], "differ in length"),
        ([0, 1], [1, 0], [1.0, 2.0], "from 0 to len"),
        ([1, 2], [1, 0], [1.0, 2.0], "from 0 to len"),
        ([0, 2, 1, 2], [1, 0], [1.0, 2.0], "non-decreasing"),
        ([0, 2], [1.0, 0.0], [1.0, 2.0], "labels must be integers"),
        ([0.0, 2.0], [1, 0], [1.0, 2.0], "offsets must be integers"),
        ([0, 2], [1, 0], ["a", "b"], "scores must be numbers"),
        ([0, 2], [[1, 0]], [1.0, 2.0], "one-dimensional"),
    ],
)
def test_bad_inputs_are_rejected(offsets, labels, scores, message):
    with pytest.raises(ValueError, match=message):
        pnr(np.array(offsets), np.array(labels), np.array(scores))


def test_strided_inputs():
    table = np.array([[2.0, 0.9], [1.0, 0.3], [0.0, 0.5]])
    r = pnr(np.array([0, 3]), table[:, 0].astype(np.int64), table[:, 1])
    assert (r.concordant, r.discordant) == (2, 1)


def test_integer_and_narrow_dtypes_are_accepted():
    r = pnr(
        np.array([0, 3], dtype=np.int32), np.array([2, 0, 1], dtype=np.uint8), np.array([3, 1, 2])
    )
    assert (r.concordant, r.discordant) == (3, 0)


# --- properties against the brute force -----------------------------------------------

few_scores = st.sampled_from([-1.5, -0.0, 0.0, 0.25, 1.0, 3.0, math.inf, -math.inf])
any_scores = st.floats(-1e6, 1e6, allow_nan=False, width=32)
group = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(few_scores, any_scores)),
    max_size=_DIRECT_MAX + 20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(group, max_size=6))
def test_counts_match_brute_force(groups):
    assert_matches_brute_force(groups)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(group, max_size=4),
    st.sampled_from([np.int32, np.int64]),
    st.sampled_from([np.float32, np.float64]),
)
def test_counts_match_brute_force_for_each_dtype(groups, label_dtype, score_dtype):
    assert_matches_brute_force(groups, label_dtype, score_dtype)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(-20, 20), any_scores), min_size=_DIRECT_MAX, max_size=60),
        min_size=1,
        max_size=3,
    )
)
def test_counts_match_brute_force_with_many_labels(groups):
    assert_matches_brute_force(groups)


@settings(max_examples=100, deadline=None)
@given(st.lists(group, max_size=6))
def test_summary_follows_the_definitions(groups):
    r = assert_matches_brute_force(groups)
    if r.discordant:
        assert r.pnr == r.concordant / r.discordant
    elif r.concordant:
        assert r.pnr == math.inf
    else:
        assert math.isnan(r.pnr)
    ratios = [c / d for c, d in zip(r.query_concordant, r.query_discordant, strict=True) if d]
    if ratios:
        assert r.pnr_macro == pytest.approx(sum(ratios) / len(ratios))
    else:
        assert math.isnan(r.pnr_macro)


@pytest.mark.parametrize("spread", [1.0, 1e-30, 0.0])  # buckets, and the fallback sort
def test_score_sort_kernel_sorts_and_carries_the_payload(spread):
    from rerank.measures.sorting import _sort_by_score

    rng = np.random.default_rng(5)
    n = 200
    scores = np.round(rng.random(n), 2) * spread
    scores[:20] = np.inf  # a huge span must not break the buckets
    values = rng.integers(0, 7, n).astype(np.int64)
    key = np.empty(n, dtype=np.uint64)
    carry = np.empty(n, dtype=np.int64)
    work = np.empty(n + 1, dtype=np.int64)
    _sort_by_score(scores, 0, n, key, carry, values, 2, work)
    order = np.argsort(scores, kind="stable")
    assert np.all(key[1:] >= key[:-1])  # ascending
    # each sorted position carries the value of a row with that score (ties in any order)
    got = sorted(zip(np.sort(scores).tolist(), (carry + 2).tolist(), strict=True))
    want = sorted(zip(scores[order].tolist(), values[order].tolist(), strict=True))
    assert got == want
