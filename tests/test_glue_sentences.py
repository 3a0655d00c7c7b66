from __future__ import annotations

import polars as pl
import pytest

from rerank.errors import RerankError
from rerank.glue.sentences import sentence_pairs, split_sentences


def test_split_tokenised_text_like_cranfield():
    text = "an experimental study was made . the results were intended in part . it agrees well ."
    assert split_sentences(text, min_words=3) == [
        "an experimental study was made .",
        "the results were intended in part .",
        "it agrees well .",
    ]
    # "it agrees well ." has 4 tokens: under min_words=5 it joins the sentence before
    assert (
        split_sentences(text, min_words=5)[-1]
        == "the results were intended in part . it agrees well ."
    )


def test_split_ordinary_text_keeps_abbreviations():
    text = "Dr. Reeve met the U.S. team in 2004. They won, e.g. twice! Did they? Yes 3 times."
    assert split_sentences(text, min_words=1) == [
        "Dr. Reeve met the U.S. team in 2004.",
        "They won, e.g. twice!",
        "Did they?",
        "Yes 3 times.",
    ]


def test_unpunctuated_text_is_cut_into_even_windows():
    words = [f"w{i}" for i in range(25)]
    got = split_sentences(" ".join(words), max_words=10)
    # 25 words, at most 10 a window -> 3 windows of ceil(25 / 3) = 9, 9, 7
    assert [len(s.split()) for s in got] == [9, 9, 7]
    assert " ".join(got) == " ".join(words)
    with pytest.raises(RerankError, match="min_words <= max_words"):
        split_sentences("x", min_words=5, max_words=2)


DOCS = pl.DataFrame(
    {
        "doc_id": ["a", "b", "c"],
        "title": ["wing lift theory .", "", ""],
        "summary": [
            "one two three . four five six . seven eight nine . ten eleven twelve .",
            "only one sentence here .",
            "first one here . second one here .",
        ],
    }
)


def test_pairs_adjacent_plus_random_in_document_order():
    got = sentence_pairs(DOCS, random_pairs=2, min_words=3, seed=0)
    assert got.columns == ["query_id", "doc_id", "query", "title", "summary"]
    ids = got.select("query_id", "doc_id").rows()
    # doc a: title + 4 sentences = 5 -> 4 adjacent pairs, then 2 of the 6 non-adjacent ones
    adjacent = [("a:0", "a:1"), ("a:1", "a:2"), ("a:2", "a:3"), ("a:3", "a:4")]
    assert ids[:4] == adjacent
    far = ids[4:6]
    assert all(int(j[2:]) - int(i[2:]) > 1 for i, j in far) and far == sorted(far)
    # doc b has one sentence (no pair); doc c has two (one adjacent pair, no far pair)
    assert ids[6:] == [("c:0", "c:1")]
    assert got.row(0) == ("a:0", "a:1", "wing lift theory .", "", "one two three .")
    assert got.row(6)[2:] == ("first one here .", "", "second one here .")
    assert got.equals(sentence_pairs(DOCS, random_pairs=2, min_words=3, seed=0))


def test_max_pairs_is_a_seeded_subsample_in_order():
    full = sentence_pairs(DOCS, random_pairs=0, min_words=3)
    sub = sentence_pairs(DOCS, random_pairs=0, min_words=3, max_pairs=3, seed=1)
    assert sub.height == 3
    positions = [full["query_id"].to_list().index(q) for q in sub["query_id"]]
    assert positions == sorted(positions)
    assert sub.equals(sentence_pairs(DOCS, random_pairs=0, min_words=3, max_pairs=3, seed=1))


def test_bad_arguments():
    with pytest.raises(RerankError, match="documents need column 'summary'"):
        sentence_pairs(pl.DataFrame({"doc_id": ["a"], "title": ["t"]}))
    with pytest.raises(RerankError, match="random_pairs must be >= 0"):
        sentence_pairs(DOCS, random_pairs=-1)


def test_rerank_pairs_sentences_mode(tmp_path):
    import argparse
    import json

    from rerank.cli import pairs as pairs_cli

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        json.dumps({"doc_id": "7", "title": "", "abstract": DOCS["summary"][0]}) + "\n"
    )
    out = tmp_path / "sentences.parquet"
    parser = argparse.ArgumentParser(prog="rerank")
    pairs_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["pairs", "--mode", "sentences", "--corpus", str(corpus), "--out", str(out)]
    )
    assert args.run(args) == 0
    got = pl.read_parquet(out)
    # four sentences of 4 tokens each (none under min_words=4): 3 adjacent + 1 random pair
    expected = sentence_pairs(
        pl.DataFrame({"doc_id": ["7"], "title": [""], "summary": [DOCS["summary"][0]]})
    )
    assert got.equals(expected) and got.height == 4  # 3 adjacent + 1 random
    assert got["query_id"].to_list()[:3] == ["7:0", "7:1", "7:2"]
    bm25 = parser.parse_args(["pairs", "--corpus", str(corpus), "--out", str(out)])
    with pytest.raises(RerankError, match="--queries is required in bm25 mode"):
        bm25.run(bm25)
