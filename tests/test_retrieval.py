from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from rerank.errors import RerankError
from rerank.retrieval import Analyzer, Bm25Index


def _docs(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["doc_id", "title", "summary"], orient="row")


def _queries(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["query_id", "query"], orient="row")


def test_analyzer_lowercases_drops_stopwords_and_one_letter_tokens_and_stems():
    assert Analyzer()("The Wings of a jet, flying at Mach 2 .") == ["wing", "jet", "fli", "mach"]


def test_scores_follow_the_lucene_bm25_formula():
    # a: wing wing lift (3 terms), b: jet jet nois (3 terms); N=2, avgdl=3
    index = Bm25Index.build(_docs([("a", "wing", "lift of a wing"), ("b", "jet", "jet noise")]))
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    k1, b = 1.5, 0.75

    def tfc(tf: int, dl: int) -> float:
        return tf / (tf + k1 * (1 - b + b * dl / 3))

    expected_a = idf * tfc(2, 3) + idf * tfc(1, 3)
    got = index.score_pairs("wing lift", ["a", "b"])
    assert got[0] == pytest.approx(expected_a, rel=1e-6)
    assert got[1] == 0.0
    # a repeated query term counts twice
    assert index.score_pairs("wing wing", ["a"])[0] == pytest.approx(2 * idf * tfc(2, 3), rel=1e-6)


def test_length_normalisation_uses_k1_and_b():
    docs = _docs([("short", "wing", ""), ("long", "wing", "lift drag flutter shock")])
    index = Bm25Index.build(docs, k1=1.2, b=1.0)
    s_short, s_long = index.score_pairs("wing", ["short", "long"])
    idf = math.log(1 + (2 - 2 + 0.5) / (2 + 0.5))
    # dl: 1 and 5, avgdl 3
    assert s_short == pytest.approx(idf * 1 / (1 + 1.2 * (1 / 3)), rel=1e-6)
    assert s_long == pytest.approx(idf * 1 / (1 + 1.2 * (5 / 3)), rel=1e-6)


def test_retrieve_sorts_by_score_then_doc_id_and_skips_zero_scores():
    docs = _docs(
        [
            ("d2", "wing", "flutter"),
            ("d10", "wing", "flutter"),  # same text as d2: a tie
            ("d1", "wing flutter", "flutter wing flutter"),
            ("x", "jet", "noise"),
        ]
    )
    run = Bm25Index.build(docs).retrieve(_queries([("q", "flutter")]), k=10)
    assert run.columns == ["query_id", "doc_id", "score", "rank"]
    # d1 has the most flutter; d10 and d2 tie and "d10" < "d2" as strings; x scores 0
    assert run["doc_id"].to_list() == ["d1", "d10", "d2"]
    assert run["rank"].to_list() == [1, 2, 3]
    assert run["score"][1] == run["score"][2]
    assert run.schema == {
        "query_id": pl.String,
        "doc_id": pl.String,
        "score": pl.Float64,
        "rank": pl.Int64,
    }


def test_retrieve_cuts_at_k_with_ties_at_the_boundary_broken_by_doc_id():
    docs = _docs([(d, "wing", "") for d in ["c", "a", "d", "b"]])
    run = Bm25Index.build(docs).retrieve(_queries([("q", "wing")]), k=2)
    assert run["doc_id"].to_list() == ["a", "b"]


def test_retrieve_keeps_query_order_and_handles_queries_without_match():
    docs = _docs([("a", "wing", "lift"), ("b", "jet", "noise")])
    queries = _queries([("q2", "jet"), ("q0", "the of"), ("q1", "wing jet")])
    run = Bm25Index.build(docs).retrieve(queries, k=5)
    assert run.select("query_id", "doc_id").rows() == [("q2", "b"), ("q1", "a"), ("q1", "b")]


def test_retrieve_exclude_returns_the_next_best_documents():
    docs = _docs([("a", "wing wing wing", ""), ("b", "wing wing", ""), ("c", "wing", "")])
    queries = _queries([("q", "wing"), ("r", "wing")])
    exclude = pl.DataFrame({"query_id": ["q", "q"], "doc_id": ["a", "unknown"]})
    run = Bm25Index.build(docs).retrieve(queries, k=2, exclude=exclude)
    assert run.select("query_id", "doc_id", "rank").rows() == [
        ("q", "b", 1),
        ("q", "c", 2),
        ("r", "a", 1),
        ("r", "b", 2),
    ]


def test_retrieved_scores_equal_score_pairs_and_score_frame():
    docs = _docs([(str(i), f"wing {'lift ' * i}", "drag" * (i % 2)) for i in range(1, 8)])
    index = Bm25Index.build(docs)
    queries = _queries([("q1", "lift drag"), ("q2", "wing")])
    run = index.retrieve(queries, k=4)
    for qid, text in queries.rows():
        part = run.filter(pl.col("query_id") == qid)
        np.testing.assert_array_equal(
            index.score_pairs(text, part["doc_id"].to_list()), part["score"].to_numpy()
        )
    framed = run.join(queries, on="query_id").select("query_id", "query", "doc_id")
    np.testing.assert_array_equal(index.score_frame(framed).to_numpy(), run["score"].to_numpy())


def test_empty_documents_are_kept_and_score_zero():
    index = Bm25Index.build(_docs([("a", "wing", "lift"), ("empty", "", "")]))
    assert len(index) == 2
    assert index.score_pairs("wing", ["empty"]).tolist() == [0.0]


def test_null_title_or_summary_count_as_empty():
    docs = pl.DataFrame({"doc_id": ["a", "b"], "title": [None, "jet"], "summary": ["wing", None]})
    index = Bm25Index.build(docs)
    assert index.score_pairs("wing jet", ["a", "b"]).min() > 0


def test_build_rejects_bad_documents():
    with pytest.raises(RerankError, match="missing column"):
        Bm25Index.build(pl.DataFrame({"doc_id": ["a"], "title": ["x"]}))
    with pytest.raises(RerankError, match="'a' occurs more than once"):
        Bm25Index.build(_docs([("a", "wing", ""), ("a", "jet", "")]))
    with pytest.raises(RerankError, match="no indexable term"):
        Bm25Index.build(_docs([("a", "the", "of")]))


def test_score_pairs_rejects_unknown_doc_ids_and_retrieve_rejects_bad_k():
    index = Bm25Index.build(_docs([("a", "wing", "")]))
    with pytest.raises(RerankError, match="doc_id 'zz' is not in the indexed documents"):
        index.score_pairs("wing", ["a", "zz"])
    with pytest.raises(RerankError, match="k must be a positive integer"):
        index.retrieve(_queries([("q", "wing")]), k=0)


def test_retrieve_on_no_queries_gives_an_empty_run():
    index = Bm25Index.build(_docs([("a", "wing", "")]))
    run = index.retrieve(pl.DataFrame(schema={"query_id": pl.String, "query": pl.String}), k=3)
    assert run.height == 0
    assert run.columns == ["query_id", "doc_id", "score", "rank"]
