from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rerank.errors import RerankError
from rerank.glue.predict import encode_examples, evaluate_model, predict
from rerank.glue.tasks import get_task
from rerank.model import RerankModel

PAIRS = pl.DataFrame(
    {
        "example_id": ["0", "1", "2"],
        "sentence1": ["the air flow", "a wing", "the boundary layer of a body"],
        "sentence2": ["the flow of air", "an airfoil", "any angle"],
        "label": [1, 0, 1],
    }
)


@pytest.fixture(scope="module")
def rte_model(tiny_model_dir):
    return RerankModel.from_pretrained(
        tiny_model_dir, heads={"rte": get_task("rte").head_spec()}
    ).eval()


def test_single_and_pair_encoding(rte_model):
    enc = rte_model.pair_encoder(max_length=32)
    tok = rte_model.tokenizer
    cls, sep = tok.cls_token_id, tok.sep_token_id
    words = tok("the air flow", add_special_tokens=False)["input_ids"]
    other = tok("the flow of air", add_special_tokens=False)["input_ids"]
    single = encode_examples(enc, PAIRS, get_task("sst2"))
    assert single.input_ids[0] == [cls, *words, sep]
    pair = encode_examples(enc, PAIRS, get_task("rte"))
    assert pair.input_ids[0] == [cls, *words, sep, *other, sep]
    assert pair.token_type_ids[0] == [0] * (len(words) + 2) + [1] * (len(other) + 1)
    # the same frame in rekindle columns encodes identically
    rekindle = PAIRS.select(query="sentence1", title=pl.lit(""), summary="sentence2")
    assert encode_examples(enc, rekindle, get_task("rte")).input_ids == pair.input_ids
    with pytest.raises(RerankError, match="sentence-pair task: column 'sentence2' is missing"):
        encode_examples(enc, PAIRS.drop("sentence2"), get_task("rte"))


def test_classification_teacher_is_an_ordinary_hf_classifier(rte_model, tmp_path):
    logits = predict(rte_model, PAIRS, get_task("rte"))
    assert logits.shape == (3, 2) and logits.dtype == np.float32
    rte_model.save_pretrained(tmp_path / "teacher")
    hf = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "teacher")).eval()
    tok = rte_model.tokenizer
    batch = tok(PAIRS["sentence1"].to_list(), PAIRS["sentence2"].to_list(), padding=True)
    with torch.no_grad():
        expected = hf(**{k: torch.tensor(v) for k, v in batch.items()}).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_regression_head_and_metrics(tiny_model_dir):
    stsb = get_task("stsb")
    model = RerankModel.from_pretrained(tiny_model_dir, heads={"stsb": stsb.head_spec()}).eval()
    values = predict(model, PAIRS, stsb, batch_size=2)
    assert values.shape == (3,) and ((values >= 0) & (values <= 5)).all()
    frame = PAIRS.with_columns(label=pl.Series([4.0, 1.0, 2.5]))
    report = evaluate_model(model, frame, stsb)
    assert list(report) == ["spearman", "pearson", "examples"] and report["examples"] == 3.0


def test_evaluation_needs_labels(rte_model):
    with pytest.raises(RerankError, match="rte: evaluation needs labeled rows"):
        evaluate_model(rte_model, PAIRS.drop("label"), get_task("rte"))
    with pytest.raises(RerankError, match="model has no head 'cola'"):
        predict(rte_model, PAIRS, get_task("cola"), head="cola")
