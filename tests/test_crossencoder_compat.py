"""A saved ranking checkpoint is an ordinary HF / sentence-transformers cross-encoder.

``AutoModelForSequenceClassification`` and ``sentence_transformers.CrossEncoder`` load
the directory ``RerankModel.save_pretrained`` writes and give the scores ``rerank score``
writes (fp32, inputs within ``max_length``): CrossEncoder sees the document as
``PairEncoder.join_parts([title, summary])`` and applies no activation, because
``config.json`` names ``torch.nn.Identity`` under ``sentence_transformers.activation_fn``
(sentence-transformers 6 reads it in ``CrossEncoder.get_default_activation_fn``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from rerank.model import RerankModel
from rerank.score import score_file

ROWS = [
    ("q1", "d1", "flow of heat", "boundary layer", "the heat transfer in a laminar flow"),
    ("q1", "d2", "flow of heat", "the wing", "lift and drag of a wing at high speed"),
    ("q1", "d3", "flow of heat", "", "heat transfer"),
    ("q2", "d4", "pressure on a wing", "pressure", ""),
    ("q2", "d5", "pressure on a wing", "a long title about the pressure", "on a wing"),
]
LEN = 64


@pytest.fixture(scope="module")
def ranking_dir(tiny_model_dir, tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = RerankModel.from_pretrained(tiny_model_dir)  # randomly initialised score head
    with torch.no_grad():
        model.encoder.classifier.bias.fill_(0.75)  # a bias a sigmoid would not keep
    path = tmp_path_factory.mktemp("compat") / "ranker"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rerank_scores(ranking_dir, tmp_path_factory) -> np.ndarray:
    tmp = tmp_path_factory.mktemp("compat-run")
    frame = pl.DataFrame(
        ROWS, schema=["query_id", "doc_id", "query", "title", "summary"], orient="row"
    )
    frame.write_parquet(tmp / "pairs.parquet")
    score_file(
        ranking_dir, tmp / "pairs.parquet", tmp / "s.parquet", max_length=LEN, precision="fp32"
    )
    return pl.read_parquet(tmp / "s.parquet")["score"].to_numpy()


def documents(ranking_dir: Path) -> list[tuple[str, str]]:
    encoder = RerankModel.from_pretrained(ranking_dir).pair_encoder(max_length=LEN)
    return [(q, encoder.join_parts([t, s])) for _, _, q, t, s in ROWS]


def test_auto_model_for_sequence_classification_gives_rerank_scores(ranking_dir, rerank_scores):
    hf = AutoModelForSequenceClassification.from_pretrained(str(ranking_dir)).eval()
    assert hf.config.num_labels == 1
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ranking_dir))
    pairs = documents(ranking_dir)
    batch = tokenizer(
        [q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = hf(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(logits, rerank_scores, atol=1e-5)


def test_crossencoder_predict_gives_rerank_scores(ranking_dir, rerank_scores, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(ranking_dir), device="cpu", max_length=LEN)
    assert isinstance(ce.activation_fn, nn.Identity)
    got = ce.predict(documents(ranking_dir), batch_size=2, show_progress_bar=False)
    np.testing.assert_allclose(got, rerank_scores, atol=1e-5)
    assert (np.abs(rerank_scores) > 0.5).any()  # not squashed into (0, 1) by a sigmoid


def test_trained_lengths_are_saved_and_are_the_scoring_defaults(
    tiny_model_dir, tmp_path, monkeypatch
):
    """A model carries the lengths it was trained with: `rerank score` and a plain
    ``CrossEncoder(dir)`` both truncate long inputs there, and give the same scores."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    torch.manual_seed(2)
    model = RerankModel.from_pretrained(tiny_model_dir)
    model.input_lengths = {"max_length": 24, "max_query_length": 8}
    with torch.no_grad():  # spread the scores of the random model so that inputs tell apart
        model.encoder.classifier.weight.mul_(1000.0)
    model.save_pretrained(tmp_path / "m")
    loaded = RerankModel.from_pretrained(tmp_path / "m")
    assert loaded.input_lengths == {"max_length": 24, "max_query_length": 8}
    assert loaded.pair_encoder().max_length == 24
    assert model.tokenizer.model_max_length != 24  # the in-memory tokenizer is left alone

    long = " ".join(["heat transfer in a laminar flow over the wing"] * 6)
    rows = [
        ("q1", f"d{i}", "flow of heat", "boundary layer", long[: 40 * (i + 1)]) for i in range(4)
    ]
    frame = pl.DataFrame(
        rows, schema=["query_id", "doc_id", "query", "title", "summary"], orient="row"
    )
    frame.write_parquet(tmp_path / "pairs.parquet")
    score_file(tmp_path / "m", tmp_path / "pairs.parquet", tmp_path / "s.parquet", precision="fp32")
    ours = pl.read_parquet(tmp_path / "s.parquet")["score"].to_numpy()
    encoded = loaded.pair_encoder().encode([r[2] for r in rows], [[r[3], r[4]] for r in rows])
    assert max(len(x) for x in encoded.input_ids) == 24  # the long inputs were truncated

    ce = CrossEncoder(str(tmp_path / "m"), device="cpu")  # no max_length given
    join = loaded.pair_encoder().join_parts
    got = ce.predict([(r[2], join([r[3], r[4]])) for r in rows], show_progress_bar=False)
    np.testing.assert_allclose(got, ours, rtol=1e-4, atol=1e-4)
    score_file(
        tmp_path / "m",
        tmp_path / "pairs.parquet",
        tmp_path / "s64.parquet",
        max_length=64,
        precision="fp32",
    )
    longer = pl.read_parquet(tmp_path / "s64.parquet")["score"].to_numpy()
    # an explicit length still wins, and the untruncated scores are far outside the
    # tolerance above: CrossEncoder did truncate at the trained 24 tokens
    assert np.abs(longer - ours).max() > 1e-3
