"""The public Python API (``import rerank``): lazy names, Reranker, train/cycle wrappers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

import rerank
from rerank.errors import RerankError

ROWS = [
    ("q1", "d1", "flow of heat", "boundary layer", "the heat transfer in a laminar flow"),
    ("q1", "d2", "flow of heat", "the wing", "lift and drag of a wing at high speed"),
    ("q2", "d3", "pressure on a wing", "pressure", ""),
]


@pytest.fixture(scope="module")
def ranking_dir(tiny_model_dir, tmp_path_factory):
    """A saved ranking model (fixed score head) that was 'trained' at 64 tokens."""
    import torch

    from rerank.model import RerankModel

    torch.manual_seed(0)
    model = RerankModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.encoder.classifier.weight.mul_(100.0)  # spread the scores
    model.input_lengths = {"max_length": 64, "max_query_length": 16}
    path = tmp_path_factory.mktemp("api") / "ranker"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ranker(ranking_dir) -> rerank.Reranker:
    return rerank.Reranker.from_pretrained(ranking_dir, precision="fp32", device="cpu")


def test_import_is_cheap_and_names_are_public():
    code = (
        "import sys, rerank; assert 'torch' not in sys.modules; "
        "print(sorted(rerank.__all__)); rerank.Reranker; assert 'torch' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in ("Reranker", "read_pairs", "score_file", "train", "cycle", "RerankError"):
        assert repr(name) in out.stdout
    assert set(rerank.__all__) <= set(dir(rerank))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rerank.nope  # noqa: B018


def test_train_is_the_module_and_the_function():
    import rerank.train as module

    assert rerank.train is module and callable(rerank.train)
    assert module.TrainResult.__name__ == "TrainResult"
    with pytest.raises(RerankError, match="config: expected a TOML path"):
        rerank.train(42)
    with pytest.raises(RerankError, match="config: expected a TOML path"):
        rerank.train(42, None, resume=False, overwrite=True)  # every keyword of api.train


def test_one_precision_default_for_cli_and_api():
    import inspect

    from rerank.cli import build_parser
    from rerank.precision import DEFAULT_PRECISION
    from rerank.score import score_file

    args = build_parser().parse_args(["score", "--model", "m", "--data", "d", "--out", "o"])
    assert args.precision == DEFAULT_PRECISION
    assert inspect.signature(score_file).parameters["precision"].default == DEFAULT_PRECISION
    sig = inspect.signature(rerank.Reranker.from_pretrained)
    assert sig.parameters["precision"].default == DEFAULT_PRECISION


def test_score_takes_tuples_and_frames_alike(ranker, ranking_dir):
    from rerank.model import RerankModel
    from rerank.score import score_frame

    frame = pl.DataFrame(
        ROWS, schema=["query_id", "doc_id", "query", "title", "summary"], orient="row"
    )
    expected = score_frame(RerankModel.from_pretrained(ranking_dir), frame, precision="fp32")
    triples = ranker.score([(q, t, s) for _, _, q, t, s in ROWS])
    np.testing.assert_allclose(triples, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranker.score(frame), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranker.score(frame.to_pandas()), expected, rtol=1e-5, atol=1e-6)
    # a one-string document is a summary with an empty title
    docs = ranker.score([(q, s) for _, _, q, _, s in ROWS])
    np.testing.assert_allclose(
        docs, ranker.score([(q, "", s) for _, _, q, _, s in ROWS]), rtol=1e-5, atol=1e-6
    )
    text = pd.DataFrame({"query": [r[2] for r in ROWS], "text": [r[4] for r in ROWS]})
    np.testing.assert_allclose(ranker.score(text), docs, rtol=1e-5, atol=1e-6)
    assert ranker.score([]).shape == (0,)
    assert ranker.score(frame).dtype == np.float32


def test_rank_sorts_best_first(ranker):
    docs = [r[4] for r in ROWS]
    ranked = ranker.rank("flow of heat", docs, return_documents=True)
    scores = ranker.score([("flow of heat", d) for d in docs])
    assert [r["corpus_id"] for r in ranked] == np.argsort(-scores, kind="stable").tolist()
    assert all(r["text"] == docs[r["corpus_id"]] for r in ranked)
    assert [r["score"] for r in ranked] == sorted(scores.tolist(), reverse=True)
    top = ranker.rank("flow of heat", docs, top_k=1)
    assert top == [{"corpus_id": ranked[0]["corpus_id"], "score": ranked[0]["score"]}]


def test_score_and_rank_take_any_iterable(ranker):
    docs = pd.Series([r[4] for r in ROWS])
    listed = ranker.rank("flow of heat", docs.tolist())
    assert ranker.rank("flow of heat", docs) == listed
    assert ranker.rank("flow of heat", np.array(docs.tolist())) == listed
    pairs = [("flow of heat", d) for d in docs]
    expected = ranker.score(pairs)
    np.testing.assert_allclose(ranker.score(iter(pairs)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranker.score(np.array(pairs)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ("flow of heat", r"pairs: expected a list of \(query, document\) tuples"),
        ([("q",)], r"pairs\[0\]: expected a \(query, document\)"),
        ([("q", "d"), ("q", "t", "s")], r"pairs\[1\]: 3 values, but pairs\[0\] has 2"),
        ([("q", 5)], r"pairs\[0\]\[1\]: expected a string, got int"),
        ([(" ", "d")], r"pairs\[0\]: expected a non-empty query text"),
        (pl.DataFrame({"q": ["a"]}), "missing column 'query'"),
        (pl.DataFrame({"query": ["a"], "body": ["b"]}), "missing document column"),
        (pd.DataFrame({"query": ["a", ""], "text": ["b", "c"]}), "row 2: column 'query'"),
    ],
)
def test_bad_pairs_are_one_line_errors(ranker, pairs, message):
    with pytest.raises(RerankError, match=message) as err:
        ranker.score(pairs)
    assert "\n" not in str(err.value)


def test_bad_arguments(tiny_model_dir, ranker, tmp_path):
    # an untrained encoder with fewer positions than the default 256 still loads
    assert rerank.Reranker.from_pretrained(tiny_model_dir, device="cpu").score([("q", "d")]).size
    with pytest.raises(RerankError, match="unknown backend 'nope'; available: auto, torch"):
        rerank.Reranker.from_pretrained(tiny_model_dir, backend="nope")
    with pytest.raises(RerankError, match="no such model directory"):
        rerank.Reranker.from_pretrained(tmp_path / "missing")
    with pytest.raises(RerankError, match=r"precision: expected fp32, bf16.* or auto, got 'fp16'"):
        rerank.Reranker.from_pretrained(tiny_model_dir, precision="fp16")
    with pytest.raises(RerankError, match="top_k"):
        ranker.rank("q", ["a"], top_k=0)
    with pytest.raises(RerankError, match="documents: expected a list of texts"):
        ranker.rank("q", "a")


def test_read_pairs_takes_frames_with_any_id_type():
    frame = pd.DataFrame(
        {"query_id": [1, 1], "doc_id": [10, 11], "query": ["a", "a"], "title": ["", "t"]}
        | {"summary": ["s", None], "label": [1, 0]}
    )
    out = rerank.read_pairs(frame)
    assert out.rows() == [("1", "10", "a", "", "s", 1), ("1", "11", "a", "t", "", 0)]
    with pytest.raises(RerankError, match="duplicate"):
        rerank.read_pairs(pl.from_pandas(frame).with_columns(doc_id=pl.lit(10)))
    with pytest.raises(RerankError, match="expected a polars or pandas DataFrame"):
        rerank.read_pairs(42)


def test_overrides_as_list_or_dict(tmp_path):
    from rerank.api import load_config
    from rerank.config import Config

    config = tmp_path / "c.toml"
    config.write_text('[data]\ntrain = "t.parquet"\n')
    a = load_config(config, ["train.lr_max=1e-4", "train.bf16=false"], cls=Config)
    b = load_config(config, {"train.lr_max": 1e-4, "train.bf16": False}, cls=Config)
    assert a == b and a.train.lr_max == 1e-4 and a.train.bf16 is False
    assert a.data.train == str(tmp_path / "t.parquet")
    with pytest.raises(RerankError, match=r"did you mean .train\.lr_max."):
        load_config(config, {"train.lrmax": 1}, cls=Config)


def test_notebook_session(tmp_path, tiny_model_dir):
    """What a notebook user does, through ``rerank.*`` only: train, score, rank, evaluate."""
    words = "flow heat wing pressure boundary layer plate shock wave theory".split()
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        [
            {
                "query_id": q,  # integer ids, as pandas users have them
                "doc_id": 100 * q + d,
                "query": " ".join(rng.choice(words, 3)),
                "title": " ".join(rng.choice(words, 2)),
                "summary": " ".join(rng.choice(words, 6)),
                "label": d % 3,
            }
            for q in range(4)
            for d in range(4)
        ]
    )
    train.to_parquet(tmp_path / "train.parquet")
    result = rerank.train(
        {
            "model": {"path": str(tiny_model_dir), "max_length": 32},
            "data": {"train": str(tmp_path / "train.parquet"), "list_size": 4},
            "objective": [{"loss": "hinge"}],
            "train": {"output_dir": str(tmp_path / "out"), "num_threads": 1},
        },
        {"train.steps": 2, "train.bf16": False, "train.progress": False},
    )
    assert result.finished and result.steps == 2
    ranker = rerank.Reranker.from_pretrained(result.final_dir, precision="fp32", device="cpu")

    from_frame = ranker.score(train)
    texts = zip(train["query"], train["title"], train["summary"], strict=True)
    from_list = ranker.score(list(texts))
    np.testing.assert_allclose(from_frame, from_list, rtol=1e-5, atol=1e-6)
    assert from_frame.shape == (16,) and np.isfinite(from_frame).all()

    docs = train["summary"].tolist()[:4]
    ranked = ranker.rank(train["query"][0], docs, top_k=3)
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[-1]["score"]

    report = rerank.evaluate(train.assign(score=from_frame), measures=["pnr", "ndcg@10"])
    figures = report.as_dict()
    assert figures["pnr"] > 0 and 0 <= figures["ndcg@10"] <= 1
