from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_scores_close
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from rerank.errors import RerankError
from rerank.model import HeadSpec, RerankModel, stack_layers

QUERIES = ["flow of heat", "pressure on a wing"]
DOCS = [["boundary layer", "the heat transfer in a laminar flow"], ["the wing", "lift and drag"]]


def batch(model, max_length=64):
    enc = model.pair_encoder(max_length=max_length)
    return enc.collate(enc.encode(QUERIES, DOCS))


def test_plain_encoder_gets_fresh_score_head_and_forward_shapes(tiny_model_dir, caplog):
    caplog.set_level("INFO")
    model = RerankModel.from_pretrained(tiny_model_dir).eval()
    assert "primary head 'score' initialised fresh" in caplog.text
    out = model(**batch(model))
    assert set(out) == {"score"} and out["score"].shape == (2,)
    assert torch.isfinite(out["score"]).all()


def test_save_load_roundtrip_is_ordinary_hf_directory(tiny_model_dir, tmp_path):
    model = RerankModel.from_pretrained(tiny_model_dir).eval()
    b = batch(model)
    model.save_pretrained(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    again = RerankModel.from_pretrained(tmp_path / "ckpt").eval()
    hf = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ckpt")).eval()
    with torch.no_grad():
        ours = model(**b)["score"]
        assert_scores_close(ours, again(**b)["score"])
        assert_scores_close(ours, hf(**b).logits[:, 0])
    # the weights themselves round-trip bitwise
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert saved.keys() == model.encoder.state_dict().keys()
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in saved.items())
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["rerank"]["primary"] == "score"
    assert meta["sentence_transformers"]["activation_fn"].endswith("Identity")


def test_extra_heads_and_mlm_head_roundtrip(tiny_model_dir, tmp_path, caplog):
    caplog.set_level("INFO")
    heads = {"score": HeadSpec(), "t2": HeadSpec(), "sts": HeadSpec("regression", low=0, high=5)}
    model = RerankModel.from_pretrained(tiny_model_dir, heads=heads, mlm=True).eval()
    assert "has no MLM head; created a fresh one" in caplog.text
    b = batch(model)
    positions = b["attention_mask"].bool() & (torch.rand(b["input_ids"].shape) < 0.5)
    positions[0, 1] = True
    with torch.no_grad():
        out = model(**b, heads=("score", "t2", "sts"), mlm_positions=positions)
    assert out["t2"].shape == (2,) and out["sts"].shape == (2,)
    assert ((out["sts"] >= 0) & (out["sts"] <= 5)).all()
    assert out["mlm"].shape == (int(positions.sum()), model.encoder.config.vocab_size)
    model.save_pretrained(tmp_path / "multi")
    assert set(load_file(str(tmp_path / "multi" / "rerank_heads.safetensors"))) == {
        "t2.linear.weight",
        "t2.linear.bias",
        "sts.linear.weight",
        "sts.linear.bias",
    }
    again = RerankModel.from_pretrained(tmp_path / "multi", mlm=True).eval()
    assert set(again.specs) == set(heads)
    with torch.no_grad():
        out2 = again(**b, heads=("score", "t2", "sts"), mlm_positions=positions)
    for k in out:
        assert torch.allclose(out[k], out2[k], atol=1e-6), k


def test_classification_head(tiny_model_dir):
    model = RerankModel.from_pretrained(
        tiny_model_dir, heads={"mnli": HeadSpec("classification", num_outputs=3)}
    ).eval()
    enc = model.pair_encoder(max_length=32)
    b = enc.collate(enc.encode(["the flow"], [["the wing"]]))
    assert model(**b)["mnli"].shape == (1, 3)


def test_unknown_head_and_bad_paths(tiny_model_dir, tmp_path):
    model = RerankModel.from_pretrained(tiny_model_dir).eval()
    with pytest.raises(RerankError, match="no head named 'nope'"):
        model(**batch(model), heads=("nope",))
    with pytest.raises(RerankError, match="does not exist"):
        RerankModel.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RerankError, match=r"no config\.json"):
        RerankModel.from_pretrained(tmp_path / "empty")
    with pytest.raises(RerankError, match="classification head needs"):
        HeadSpec("classification", num_outputs=1)


def test_stack_layers_doubles_depth(tiny_model_dir, tmp_path):
    base = RerankModel.from_pretrained(tiny_model_dir)
    n_layer = sum(p.numel() for p in base.encoder.base_model.encoder.layer[0].parameters())
    total = sum(p.numel() for p in base.parameters())
    grown = RerankModel.from_pretrained(tiny_model_dir, num_layers=4).eval()
    layers = grown.encoder.base_model.encoder.layer
    assert len(layers) == 4 and grown.encoder.config.num_hidden_layers == 4
    assert sum(p.numel() for p in grown.parameters()) == total + 2 * n_layer
    # layer i copies old layer i*2//4: 0,0,1,1 — equal weights, separate tensors
    w = [layer.attention.self.query.weight for layer in layers]
    assert torch.equal(w[0], w[1]) and torch.equal(w[2], w[3]) and not torch.equal(w[1], w[2])
    assert w[0].data_ptr() != w[1].data_ptr()
    with torch.no_grad():
        assert torch.isfinite(grown(**batch(grown))["score"]).all()
    grown.save_pretrained(tmp_path / "deep")
    assert json.loads((tmp_path / "deep" / "config.json").read_text())["num_hidden_layers"] == 4
    assert len(RerankModel.from_pretrained(tmp_path / "deep").encoder.base_model.encoder.layer) == 4
    with pytest.raises(RerankError):
        stack_layers(grown.encoder, 0)
