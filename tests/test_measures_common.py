"""The numba kernels of rerank.measures.common against ir-measures (pytrec_eval, gdeval) on
random and edge-case data: score ties with different labels (trec_eval breaks them by doc id,
descending), queries with nothing retrieved, all-zero labels, judged documents outside the
ranking, cutoffs beyond the ranking."""

from __future__ import annotations

import ir_measures
import numpy as np
import polars as pl
import pytest

from rerank.measures import evaluate
from rerank.measures.common import common_measures
from rerank.measures.names import resolve

NAMES = [
    "nDCG@10",
    "nDCG@3",
    "nDCG",
    "AP",
    "AP@5",
    "RR",
    "P@5",
    "P@20",
    "R@10",
    "AP(rel=2)",
    "P(rel=3)@3",
    "R(rel=2)@5",
]


def random_case(seed: int, n_queries: int = 40, ties: bool = False):
    """Qrels and a run as ir-measures dicts, and the same as grouped arrays."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    offsets, labels, scores, docs, ideal_offsets, ideal = [0], [], [], [], [0], []
    for q in range(n_queries):
        pool = list(dict.fromkeys(f"d{rng.integers(0, 40)}" for _ in range(30)))
        judged = pool[: rng.integers(1, len(pool))]
        kind = q % 4
        grades = {d: int(rng.integers(0, 5)) for d in judged}
        if kind == 1:  # all-zero labels
            grades = dict.fromkeys(judged, 0)
        qid = str(q)
        qrels[qid] = grades
        depth = 0 if kind == 2 else int(rng.integers(1, len(pool) + 1))  # nothing retrieved
        retrieved = list(rng.choice(pool, size=depth, replace=False)) if depth else []
        values = rng.integers(0, 3, depth).astype(float) if ties else rng.random(depth)
        if retrieved:
            run[qid] = {str(d): float(s) for d, s in zip(retrieved, values, strict=True)}
        for d, s in zip(retrieved, values, strict=True):
            labels.append(grades.get(str(d), 0))
            scores.append(s)
            docs.append(str(d))
        offsets.append(len(labels))
        ideal.extend(grades.values())
        ideal_offsets.append(len(ideal))
    arrays = (np.array(offsets), np.array(labels, dtype=np.int64), np.array(scores), docs)
    return qrels, run, arrays, (np.array(ideal_offsets), np.array(ideal, dtype=np.int64))


def ir_values(names, qrels, run, n_queries):
    """ir-measures per query; queries it leaves out (nothing retrieved) are 0, as trec_eval -c."""
    measures = [ir_measures.parse_measure(n) for n in names]
    values = np.zeros((n_queries, len(names)))
    for m in ir_measures.iter_calc(measures, qrels, run):
        values[int(m.query_id), measures.index(m.measure)] = m.value
    return values


@pytest.mark.parametrize("ties", [False, True])
def test_kernel_equals_ir_measures(ties):
    qrels, run, (offsets, labels, scores, docs), (i_off, ideal) = random_case(1, ties=ties)
    specs = [resolve(n).fast for n in NAMES]
    got = common_measures(
        offsets, labels, scores, docs, specs, ideal_offsets=i_off, ideal_labels=ideal
    )
    expected = ir_values(NAMES, qrels, run, len(offsets) - 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_err_equals_gdeval():
    # gdeval prints 5 decimals
    qrels, run, (offsets, labels, scores, docs), (i_off, ideal) = random_case(2, 12, ties=True)
    got = common_measures(
        offsets,
        labels,
        scores,
        docs,
        [resolve("ERR@10").fast],
        ideal_offsets=i_off,
        ideal_labels=ideal,
    )
    expected = ir_values(["ERR@10"], qrels, run, len(offsets) - 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_tie_break_by_doc_id_descending():
    # equal scores: trec_eval ranks "b" before "a"; only "a" is relevant
    specs = [resolve(n).fast for n in ("RR", "P@1", "nDCG@1")]
    got = common_measures(
        np.array([0, 2]), np.array([1, 0]), np.array([1.0, 1.0]), ["a", "b"], specs
    )
    assert got.tolist() == [[0.5, 0.0, 0.0]]
    # the same with doc ids swapped: "b" is relevant and first
    got = common_measures(
        np.array([0, 2]), np.array([0, 1]), np.array([1.0, 1.0]), ["a", "b"], specs
    )
    assert got.tolist() == [[1.0, 1.0, 1.0]]


def test_table_mode_uses_the_kernels_with_the_same_values_as_ir_measures():
    rng = np.random.default_rng(3)
    n = 300
    frame = pl.DataFrame(
        {
            "query_id": [f"q{i % 25}" for i in range(n)],
            "doc_id": [f"d{i}" for i in range(n)],
            "label": rng.integers(0, 4, n),
            "score": rng.integers(0, 5, n).astype(float),  # many ties
        }
    )
    names = ["ndcg@10", "map", "mrr", "p@5", "r@10"]
    got = evaluate(frame, names).aggregate
    qrels = {q: {} for q in frame["query_id"].unique()}
    run = {q: {} for q in qrels}
    for q, d, y, s in frame.iter_rows():
        qrels[q][d] = y
        run[q][d] = s
    expected = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(resolve(n).expression) for n in names], qrels, run
    )
    for name in names:
        assert got[name] == pytest.approx(
            expected[ir_measures.parse_measure(resolve(name).expression)], abs=1e-12
        )


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        common_measures(
            np.array([0, 1]), np.array([1]), np.array([np.nan]), ["a"], [resolve("map").fast]
        )
