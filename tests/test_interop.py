"""CrossEncoder parity at every query length (truncation = longest_first), and model cards."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
import torch

import rerank
from rerank.encoding import PairEncoder
from rerank.model import RerankModel
from rerank.score import score_file

WORDS = "flow heat wing pressure boundary layer plate shock wave theory lift drag".split()
LONG_QUERY = " ".join(WORDS * 6)  # 72 words: far over the 48-token query cap


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_longest_first_is_the_hf_pair_truncation(tokenizer):
    rng = random.Random(0)
    for max_length in (16, 17, 33, 64):
        enc = PairEncoder(tokenizer, max_length=max_length, truncation="longest_first")
        for _ in range(60):
            query = " ".join(rng.choices(WORDS, k=rng.randint(1, 80)))
            title = " ".join(rng.choices(WORDS, k=rng.randint(0, 20)))
            summary = " ".join(rng.choices(WORDS, k=rng.randint(0, 80)))
            ours = enc.encode([query], [[title, summary]])
            doc = enc.join_parts([title, summary])
            hf = tokenizer(query, doc, truncation=True, max_length=max_length)
            assert ours.input_ids[0] == hf["input_ids"], (max_length, query, title, summary)
            assert ours.token_type_ids[0] == hf["token_type_ids"]


def test_query_cap_is_the_default_and_caps_the_query(tokenizer):
    capped = PairEncoder(tokenizer, max_length=64, max_first_length=8)
    assert capped.truncation == "query_cap"
    ids = capped.encode([LONG_QUERY], [["", "heat"]]).token_type_ids[0]
    assert ids.count(0) == 1 + 8 + 1  # [CLS] + 8 query tokens + [SEP]
    with pytest.raises(ValueError, match="truncation must be one of"):
        PairEncoder(tokenizer, truncation="only_second")


def saved(tiny_model_dir, path, truncation):
    torch.manual_seed(3)
    model = RerankModel.from_pretrained(tiny_model_dir)
    with torch.no_grad():  # spread the scores so that truncation differences show
        model.encoder.classifier.weight.mul_(1000.0)
    model.input_lengths = {"max_length": 96, "max_query_length": 48}
    model.truncation = truncation
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("truncation", ["longest_first", "query_cap"])
def test_crossencoder_scores_a_long_query_as_rerank_does(
    tiny_model_dir, tmp_path, monkeypatch, truncation
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    model_dir = saved(tiny_model_dir, tmp_path / "m", truncation)
    loaded = RerankModel.from_pretrained(model_dir)
    assert loaded.truncation == truncation
    rows = [
        ("q1", "d1", LONG_QUERY, "boundary layer", "heat transfer in a laminar flow " * 8),
        ("q1", "d2", LONG_QUERY, "", "lift of a wing"),
        ("q2", "d3", "wing lift", "pressure", "on a wing at high speed " * 20),
    ]
    frame = pl.DataFrame(
        rows, schema=["query_id", "doc_id", "query", "title", "summary"], orient="row"
    )
    frame.write_parquet(tmp_path / "pairs.parquet")
    score_file(model_dir, tmp_path / "pairs.parquet", tmp_path / "s.parquet", precision="fp32")
    ours = pl.read_parquet(tmp_path / "s.parquet")["score"].to_numpy()
    assert len(loaded.tokenizer(LONG_QUERY, add_special_tokens=False)["input_ids"]) > 48

    ce = CrossEncoder(str(model_dir), device="cpu")
    join = loaded.pair_encoder().join_parts
    theirs = ce.predict([(r[2], join([r[3], r[4]])) for r in rows], show_progress_bar=False)
    if truncation == "longest_first":  # identical at every query length
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    else:  # the default: identical for the short query only (README says so)
        np.testing.assert_allclose(theirs[2], ours[2], rtol=1e-4, atol=1e-4)
        assert np.abs(theirs[:2] - ours[:2]).max() > 1e-2
    api = rerank.Reranker.from_pretrained(model_dir, precision="fp32", device="cpu")
    np.testing.assert_allclose(
        api.score([(r[2], r[3], r[4]) for r in rows]), ours, rtol=1e-5, atol=1e-5
    )


def test_every_saved_model_has_a_model_card(tiny_model_dir, tmp_path):
    card = (saved(tiny_model_dir, tmp_path / "m", "query_cap") / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: text-ranking" in card
    for needle in (
        "# m",
        "at most 96 tokens",
        "up to 48 tokens",
        "rerank.Reranker.from_pretrained",
    ):
        assert needle in card
    assert "CrossEncoder(" in card and "AutoModelForSequenceClassification" in card
    assert 'model.truncation = "longest_first"' in card


def test_a_trained_model_card_tells_how_it_was_trained(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {
            "query_id": f"q{q}",
            "doc_id": f"d{q}-{d}",
            "query": " ".join(rng.choice(WORDS, 3)),
            "title": " ".join(rng.choice(WORDS, 2)),
            "summary": " ".join(rng.choice(WORDS, 6)),
            "label": d % 3,
        }
        for q in range(4)
        for d in range(4)
    ]
    pl.DataFrame(rows).write_parquet(tmp_path / "train.parquet")
    result = rerank.train(
        {
            "model": {"path": str(tiny_model_dir), "max_length": 32, "truncation": "longest_first"},
            "data": {
                "train": str(tmp_path / "train.parquet"),
                "eval": str(tmp_path / "train.parquet"),
                "list_size": 4,
            },
            "objective": [{"loss": "hinge", "params": {"margin": 0.5}}],
            "train": {"output_dir": str(tmp_path / "out"), "steps": 2, "bf16": False},
        },
        ["train.progress=false", "train.num_threads=1"],
    )
    card = (result.final_dir / "README.md").read_text()
    assert f"Base model: `{tiny_model_dir}`" in card
    assert "Training data: `train.parquet` (16 pairs, 4 queries)" in card
    assert "Objective: hinge (margin=0.5) on label (head score), weight 1" in card
    assert "Steps: 2 of 2" in card
    assert "## Evaluation (train.parquet at step 2)" in card and "| pnr |" in card
    assert "Truncation `longest_first`" in card
    assert RerankModel.from_pretrained(result.final_dir).truncation == "longest_first"
    assert (result.best_dir / "README.md").is_file()
