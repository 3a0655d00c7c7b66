"""The shipped Cranfield sample (data/cranfield): layout, counts and reproducibility."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "cranfield"
SHARED = SAMPLE.parents[2] / "shared" / "data" / "cranfield"

GROUPED = {
    "query_id": pl.String,
    "doc_id": pl.String,
    "query": pl.String,
    "title": pl.String,
    "summary": pl.String,
    "label": pl.Int64,
}
# split -> (rows, queries, label distribution); README.md states the same numbers
EXPECTED = {
    "train": (4487, 135, {0: 3571, 1: 190, 2: 427, 3: 235, 4: 64}),
    "eval": (1522, 45, {0: 1203, 1: 86, 2: 140, 3: 64, 4: 29}),
    "test": (1546, 45, {0: 1170, 1: 87, 2: 166, 3: 88, 4: 35}),
}
needs_shared = pytest.mark.skipif(
    not (SHARED / "docs.jsonl").is_file(), reason=f"source collection not at {SHARED}"
)


def _split(name: str) -> pl.DataFrame:
    return pl.read_parquet(SAMPLE / f"{name}.parquet")


def _read_run(path: Path) -> pl.DataFrame:
    return pl.read_csv(
        path,
        separator=" ",
        has_header=False,
        new_columns=["query_id", "q0", "doc_id", "rank", "score", "tag"],
        schema_overrides={"query_id": pl.String, "doc_id": pl.String},
    )


def _prepare_module():
    spec = importlib.util.spec_from_file_location("cranfield_prepare", SAMPLE / "prepare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(EXPECTED))
def test_split_layout_and_counts(name: str):
    frame = _split(name)
    rows, queries, labels = EXPECTED[name]
    assert frame.schema == pl.Schema(GROUPED)
    assert frame.height == rows
    assert frame["query_id"].n_unique() == queries
    assert dict(frame.group_by("label").len().rows()) == labels
    assert frame.null_count().sum_horizontal().item() == 0
    assert not frame.select("query_id", "doc_id").is_duplicated().any()
    # query-grouped: each query's rows are contiguous
    assert frame["query_id"].rle_id().max() + 1 == queries
    # every query has a judged document and unjudged candidates, so >= 2 label levels
    levels = frame.group_by("query_id").agg(pl.col("label").n_unique())["label"]
    assert levels.min() >= 2
    # at least the BM25 depth of 30 candidates per query
    assert frame.group_by("query_id").len()["len"].min() >= 30


def test_splits_are_disjoint_by_query_and_cover_all_queries():
    ids = {name: set(_split(name)["query_id"]) for name in EXPECTED}
    assert not ids["train"] & ids["eval"]
    assert not ids["train"] & ids["test"]
    assert not ids["eval"] & ids["test"]
    assert set.union(*ids.values()) == {str(i) for i in range(1, 226)}


def test_empty_documents_are_not_shipped():
    for name in [*EXPECTED, "rekindle"]:
        assert not _split(name)["doc_id"].is_in(["471", "995"]).any()


@pytest.mark.parametrize("name", ["eval", "test"])
def test_bm25_runs_score_every_candidate_in_rank_order(name: str):
    run = _read_run(SAMPLE / f"bm25_{name}.run")
    frame = _split(name)
    assert run.height == frame.height
    assert set(run.select("query_id", "doc_id").rows()) == set(
        frame.select("query_id", "doc_id").rows()
    )
    assert (run["q0"] == "Q0").all() and (run["tag"] == "bm25").all()
    by_query = run.group_by("query_id", maintain_order=True).agg("rank", "score")
    for ranks, scores in by_query.select("rank", "score").rows():
        assert ranks == list(range(1, len(ranks) + 1))
        assert scores == sorted(scores, reverse=True)


def test_rekindle_pairs_layout():
    pairs = _split("rekindle")
    assert pairs.schema == pl.Schema({k: v for k, v in GROUPED.items() if k != "label"})
    assert pairs.height == 5998
    assert pairs["query_id"].n_unique() == 750
    assert pairs["query_id"].str.starts_with("title-").all()
    assert pairs.group_by("query_id").len()["len"].max() == 8
    assert not pairs.select("query_id", "doc_id").is_duplicated().any()


def test_shipped_sample_stays_small():
    total = sum(p.stat().st_size for p in SAMPLE.iterdir() if p.is_file())
    assert total < 3_000_000


@needs_shared
def test_source_documents_are_not_candidates_and_do_not_leak_into_rekindle():
    source = pl.read_csv(SHARED / "qrels_source_docs.tsv", separator="\t", infer_schema=False)
    docs = pl.read_ndjson(SHARED / "docs.jsonl", schema_overrides={"doc_id": pl.String})
    for name in EXPECTED:
        hits = _split(name).join(source, on=["query_id", "doc_id"])
        assert hits.height == 0
    held_out = pl.concat([_split("eval"), _split("test")])["query_id"].unique()
    held_titles = source.filter(pl.col("query_id").is_in(held_out.implode())).join(
        docs, on="doc_id"
    )["title"]
    assert not _split("rekindle")["query"].is_in(held_titles.implode()).any()


@needs_shared
def test_prepare_is_deterministic_and_reproduces_the_shipped_files(tmp_path: Path):
    assert _prepare_module().main(["--shared", str(SHARED), "--out", str(tmp_path)]) == 0
    for path in sorted(SAMPLE.glob("*.parquet")):
        assert_frame_equal(pl.read_parquet(tmp_path / path.name), pl.read_parquet(path))
    for path in sorted(SAMPLE.glob("*.run")):
        assert (tmp_path / path.name).read_text() == path.read_text()


# --- NFCorpus (data/nfcorpus/prepare.py; output not shipped) --------------------------------

NFCORPUS = SAMPLE.parent / "nfcorpus"
NF_SHARED = SHARED.parent / "nfcorpus"


def _nfcorpus_module():
    spec = importlib.util.spec_from_file_location("nfcorpus_prepare", NFCORPUS / "prepare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nfcorpus_title_split_at_the_abstract_marker():
    split_title = _nfcorpus_module().split_title
    assert split_title("soy breast cancer abstract background soy abstract x") == (
        "soy breast cancer",
        "background soy abstract x",
    )
    # a leading "abstract" or one beyond 40 words is not the section marker
    assert split_title("abstract art therapy") == ("", "abstract art therapy")
    late = " ".join(["w"] * 41 + ["abstract", "z"])
    assert split_title(late) == ("", late)


@pytest.mark.slow
@pytest.mark.skipif(not (NF_SHARED / "docs_test_dev_union.tsv.gz").is_file(), reason="no NFCorpus")
def test_nfcorpus_prepare_counts(tmp_path: Path):
    assert _nfcorpus_module().main(["--shared", str(NF_SHARED), "--out", str(tmp_path)]) == 0
    expected = {
        "train": (217813, 2569, {0: 79018, 1: 28720, 2: 106035, 3: 4040}),
        "dev": (24346, 325, {0: 9757, 1: 3204, 2: 10864, 3: 521}),
        "test": (25700, 325, {0: 9880, 1: 3486, 2: 11758, 3: 576}),
    }
    for name, (rows, queries, labels) in expected.items():
        frame = pl.read_parquet(tmp_path / f"{name}.parquet")
        assert frame.schema == pl.Schema(GROUPED)
        assert (frame.height, frame["query_id"].n_unique()) == (rows, queries)
        assert dict(frame.group_by("label").len().rows()) == labels
    assert _read_run(tmp_path / "bm25_test.run").height == 25700
    assert pl.read_parquet(tmp_path / "rekindle.parquet").height == 16000
