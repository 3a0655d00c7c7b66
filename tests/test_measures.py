from __future__ import annotations

import json
import math
import shutil

import numpy as np
import polars as pl
import pytest

from rerank.errors import RerankError
from rerank.measures import DEFAULT_MEASURES, Evaluation, evaluate
from rerank.measures.ir import parse_measure


def frame_from(rows: str) -> pl.DataFrame:
    """Rows 'query_id doc_id label score', one per line (a qrels+run in one table)."""
    records = [line.split() for line in rows.strip().splitlines()]
    return pl.DataFrame(
        {
            "query_id": [r[0] for r in records],
            "doc_id": [r[1] for r in records],
            "label": [int(r[2]) for r in records],
            "score": [float(r[3]) for r in records],
        }
    )


# q1 ranks a (2), c (0), b (1); q2 ranks a (1), d (0).
TWO_QUERIES = """
q1 a 2 0.9
q1 b 1 0.3
q1 c 0 0.5
q2 a 1 0.2
q2 d 0 0.1
"""

# nDCG@10 of q1 with trec_eval's linear gains: DCG = 2/log2(2) + 0 + 1/log2(4) = 2.5,
# ideal = 2 + 1/log2(3).
NDCG_Q1 = 2.5 / (2 + 1 / math.log2(3))


def test_hand_checked_values():
    ev = evaluate(frame_from(TWO_QUERIES), ["pnr", "pnr_macro", "ndcg@10", "map", "mrr", "p@2"])
    agg = ev.aggregate
    assert list(agg) == [
        "pnr",
        "pnr_macro",
        "ndcg@10",
        "map",
        "mrr",
        "p@2",
        "concordant",
        "discordant",
        "ties",
        "queries",
        "queries_without_discordant",
    ]
    # PNR: q1 (a>b ok, a>c ok, b>c wrong) c=2 d=1; q2 c=1 d=0.
    assert agg["pnr"] == 3.0
    assert agg["pnr_macro"] == 2.0
    assert (agg["concordant"], agg["discordant"], agg["ties"]) == (3, 1, 0)
    assert (agg["queries"], agg["queries_without_discordant"]) == (2, 1)
    assert agg["ndcg@10"] == pytest.approx((NDCG_Q1 + 1.0) / 2)
    assert agg["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)  # relevant = label >= 1
    assert agg["mrr"] == 1.0
    assert agg["p@2"] == 0.5
    assert ev.per_query is None


def test_per_query_table():
    ev = evaluate(frame_from(TWO_QUERIES), ["pnr", "mrr", "ndcg@10"], per_query=True)
    table = ev.per_query
    assert table.columns == [
        "query_id",
        "mrr",
        "ndcg@10",
        "pnr",
        "concordant",
        "discordant",
        "ties",
    ]
    assert table["query_id"].to_list() == ["q1", "q2"]
    assert table["pnr"].to_list() == [2.0, math.inf]
    assert table["concordant"].to_list() == [2, 1]
    assert table["discordant"].to_list() == [1, 0]
    assert table["mrr"].to_list() == [1.0, 1.0]
    assert table["ndcg@10"].to_list() == pytest.approx([NDCG_Q1, 1.0])


def test_interleaved_rows_give_the_same_results():
    frame = frame_from(TWO_QUERIES)
    shuffled = frame[[3, 0, 4, 2, 1]]
    names = ["pnr", "pnr_macro", "ndcg@10", "map", "mrr"]
    a = evaluate(frame, names, per_query=True)
    b = evaluate(shuffled, names, per_query=True)
    assert a.aggregate == b.aggregate
    assert b.per_query["query_id"].to_list() == ["q2", "q1"]
    assert a.per_query.sort("query_id").equals(b.per_query.sort("query_id"))


def test_friendly_names_and_ir_measures_expressions_agree():
    frame = frame_from(TWO_QUERIES)
    agg = evaluate(frame, ["ndcg@10", "nDCG@10", "r@1", "recall@1", "R@1", "AP(rel=2)"]).aggregate
    assert agg["ndcg@10"] == agg["nDCG@10"]
    assert agg["r@1"] == agg["recall@1"] == agg["R@1"] == pytest.approx((1 / 2 + 1) / 2)
    # rel=2: only q1's a is relevant (AP 1); q2 has no relevant document (AP 0).
    assert agg["AP(rel=2)"] == 0.5
    assert "concordant" not in agg  # no PNR measure requested, no PNR counts
    assert repr(parse_measure("MAP@5")) == "AP@5"


def test_equal_scores_follow_pytrec_eval_tie_break_and_pnr_counts_a_tie():
    # Same score: pytrec_eval ranks by doc id descending, so 'b' (label 0) comes first.
    ev = evaluate(frame_from("q x 0 1.0\nq a 1 0.5\nq b 0 0.5"), ["mrr", "pnr"])
    assert ev.aggregate["mrr"] == pytest.approx(1 / 3)
    assert (ev.aggregate["concordant"], ev.aggregate["ties"]) == (0, 1)
    assert ev.aggregate["discordant"] == 1


@pytest.mark.skipif(shutil.which("perl") is None, reason="ERR comes from gdeval.pl (perl)")
def test_err_via_gdeval():
    # ERR@20 with gains (2**g - 1) / 16: q1 top doc has label 2 -> 3/16; q2 -> 1/16.
    ev = evaluate(frame_from(TWO_QUERIES), ["err@20"], per_query=True)
    # q1 ranks labels 2, 0, 1: 3/16 + (1 - 3/16) * (1 - 0) * (1/16) / 3; gdeval prints 5 digits.
    expected = [3 / 16 + (13 / 16) * (1 / 16) / 3, 1 / 16]
    assert ev.per_query["err@20"].to_list() == pytest.approx(expected, abs=5e-6)
    with pytest.raises(RerankError, match=r"labels in 0\.\.4"):
        evaluate(frame_from("q a 5 1.0\nq b 0 0.5"), ["err@20"])


def test_integer_query_ids():
    frame = frame_from(TWO_QUERIES).with_columns(pl.Series("query_id", [7, 7, 7, 3, 3]))
    ev = evaluate(frame, ["pnr"], per_query=True)
    assert ev.per_query["query_id"].to_list() == ["7", "3"]
    assert ev.aggregate["pnr"] == 3.0


def test_default_measures():
    ev = evaluate(frame_from(TWO_QUERIES))
    assert tuple(ev.aggregate)[: len(DEFAULT_MEASURES)] == DEFAULT_MEASURES


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["ndgc@10"], r"unknown measure 'ndgc@10': expected pnr, pnr_macro, ndcg, ndcg@K"),
        (["p"], r"measure 'p' needs a cutoff, e.g. 'p@10'"),
        (["alpha_nDCG@10"], "no installed ir-measures provider"),
        ([], "no measures requested"),
    ],
)
def test_bad_measure_names(names, message):
    with pytest.raises(RerankError, match=message):
        evaluate(frame_from(TWO_QUERIES), names)


def test_bad_frames():
    frame = frame_from(TWO_QUERIES)
    with pytest.raises(RerankError, match="missing column"):
        evaluate(frame.drop("score"), ["pnr"])
    with pytest.raises(RerankError, match="row 2: column 'label': 1 null"):
        evaluate(frame.with_columns(pl.Series("label", [1, None, 0, 1, 0])), ["pnr"])
    with pytest.raises(RerankError, match="column 'label': expected integer grades"):
        evaluate(frame.with_columns(pl.col("label").cast(pl.Float64)), ["pnr"])
    with pytest.raises(RerankError, match="column 'score': scores must not be NaN"):
        evaluate(frame.with_columns(pl.Series("score", [0.1, np.nan, 0.2, 0.3, 0.4])), ["pnr"])
    duplicate = frame.with_columns(pl.Series("doc_id", ["a", "b", "c", "d", "d"]))
    with pytest.raises(RerankError, match="doc_id 'd' appears more than once in query 'q2'"):
        evaluate(duplicate, ["mrr"])


def test_json_and_table_output():
    ev = Evaluation({"pnr": 3.0412, "pnr_macro": math.nan, "ndcg@10": math.inf, "ties": 12})
    assert json.loads(ev.to_json()) == {
        "pnr": 3.0412,
        "pnr_macro": None,
        "ndcg@10": "inf",
        "ties": 12,
    }
    assert ev.format_table().splitlines() == [
        "measure      value",
        "pnr         3.0412",
        "pnr_macro      nan",
        "ndcg@10        inf",
        "ties       12",
    ]


def test_matches_ir_measures_on_its_own_inputs():
    import ir_measures

    rng = np.random.default_rng(0)
    n = 400
    frame = pl.DataFrame(
        {
            "query_id": [f"q{q}" for q in rng.integers(0, 12, n)],  # interleaved queries
            "doc_id": [f"d{i}" for i in range(n)],
            "label": rng.integers(0, 4, n),
            "score": np.round(rng.standard_normal(n), 1),  # with ties
        }
    )
    names = {"ndcg@10": "nDCG@10", "map": "AP", "mrr": "RR", "p@5": "P@5", "AP(rel=2)": "AP(rel=2)"}
    ev = evaluate(frame, list(names), per_query=True)
    qrels = [ir_measures.Qrel(q, d, int(y)) for q, d, y, _ in frame.iter_rows()]
    run = [ir_measures.ScoredDoc(q, d, float(s)) for q, d, _, s in frame.iter_rows()]
    measures = [ir_measures.parse_measure(m) for m in names.values()]
    expected = ir_measures.calc_aggregate(measures, qrels, run)
    for name, measure in zip(names, measures, strict=True):
        assert ev.aggregate[name] == pytest.approx(expected[measure], abs=1e-12)
    per_query = {
        (m.query_id, str(m.measure)): m.value for m in ir_measures.iter_calc(measures, qrels, run)
    }
    for row in ev.per_query.iter_rows(named=True):
        assert row["ndcg@10"] == pytest.approx(per_query[(row["query_id"], "nDCG@10")], abs=1e-12)
