from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank.grouping import group_queries, query_offsets


def test_contiguous_strings_are_not_reordered():
    g = group_queries(pl.Series(["q2", "q2", "q1", "q1", "q1", "q3"]))
    assert g.order is None
    assert g.offsets.dtype == np.int64
    assert g.offsets.tolist() == [0, 2, 5, 6]
    assert g.query_ids.to_list() == ["q2", "q1", "q3"]
    assert g.n_queries == 3


def test_interleaved_rows_get_a_stable_permutation_in_first_appearance_order():
    g = group_queries(pl.Series(["b", "a", "b", "c", "a", "b"]))
    assert g.order is not None
    assert g.order.tolist() == [0, 2, 5, 1, 4, 3]
    assert g.offsets.tolist() == [0, 3, 5, 6]
    assert g.query_ids.to_list() == ["b", "a", "c"]


def test_numpy_integer_and_object_ids():
    order, offsets = query_offsets(np.array([7, 7, 3, 3, 3]))
    assert order is None
    assert offsets.tolist() == [0, 2, 5]
    order, offsets = query_offsets(np.array([10**12, 5, 10**12], dtype=np.int64))
    assert order.tolist() == [0, 2, 1]
    assert offsets.tolist() == [0, 2, 3]
    g = group_queries(np.array(["x", "y", "x"], dtype=object))
    assert g.order.tolist() == [0, 2, 1]
    assert g.query_ids.to_list() == ["x", "y"]


def test_singleton_groups_are_contiguous():
    g = group_queries(pl.Series(["a", "b", "c"]))
    assert g.order is None
    assert g.offsets.tolist() == [0, 1, 2, 3]


def test_singletons_with_one_repeat_are_not():
    g = group_queries(pl.Series(["a", "b", "c", "a"]))
    assert g.order.tolist() == [0, 3, 1, 2]
    assert g.offsets.tolist() == [0, 2, 3, 4]


def test_categorical_input_keeps_its_dtype():
    g = group_queries(pl.Series(["u", "u", "v"], dtype=pl.Categorical))
    assert g.order is None
    assert g.query_ids.dtype == pl.Categorical
    assert g.query_ids.to_list() == ["u", "v"]


def test_empty_input():
    g = group_queries(pl.Series("query_id", [], dtype=pl.String))
    assert g.order is None
    assert g.offsets.tolist() == [0]
    assert g.n_queries == 0


def test_nulls_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="null"):
        group_queries(pl.Series(["a", None]))
    with pytest.raises(ValueError, match="one-dimensional"):
        group_queries(np.zeros((2, 2)))


def _check(ids: list) -> None:
    g = group_queries(pl.Series(ids))
    n = len(ids)
    order = np.arange(n) if g.order is None else g.order
    assert sorted(order.tolist()) == list(range(n))
    assert g.offsets[0] == 0 and g.offsets[-1] == n
    assert np.all(np.diff(g.offsets) > 0)
    expected_groups = list(dict.fromkeys(ids))  # first-appearance order
    heads = [ids[i] for i in range(n) if i == 0 or ids[i] != ids[i - 1]]
    contiguous = len(heads) == len(set(heads))
    assert (g.order is None) == contiguous
    if g.order is not None:
        assert g.query_ids.to_list() == expected_groups
    else:
        assert g.query_ids.to_list() == heads
    for q, qid in enumerate(g.query_ids.to_list()):
        rows = order[g.offsets[q] : g.offsets[q + 1]].tolist()
        assert rows == [i for i in range(n) if ids[i] == qid]  # stable, complete


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=30))
def test_grouping_properties_strings(ids):
    _check(ids)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3) | st.just(2**40), max_size=30))
def test_grouping_properties_integers(ids):
    _check(ids)
