"""The one inference core (rerank.inference): every scorer of the package goes through it
with one precision policy, so the training loop's evaluation, GLUE prediction and
``rerank score`` compute the same numbers for the same model and precision."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rerank.model import HeadSpec, RerankModel

ROWS = [
    ("q1", "d1", "flow of heat", "boundary layer", "the heat transfer in a laminar flow", 2),
    ("q1", "d2", "flow of heat", "the wing", "lift and drag of a wing at high speed", 0),
    ("q1", "d3", "flow of heat", "", "heat", 1),
    ("q2", "d1", "pressure on a wing", "boundary layer", "the heat transfer in a laminar flow", 0),
    ("q2", "d4", "pressure on a wing", "pressure", "", 1),
    ("q2", "d5", "pressure on a wing", "a long title about the pressure distribution", "on a", 2),
]
FRAME = pl.DataFrame(
    ROWS, schema=["query_id", "doc_id", "query", "title", "summary", "label"], orient="row"
)


@pytest.fixture(scope="module")
def model(tiny_model_dir, tmp_path_factory) -> RerankModel:
    torch.manual_seed(0)
    m = RerankModel.from_pretrained(
        tiny_model_dir, heads={"score": HeadSpec(), "cls": HeadSpec("classification", 3)}
    )
    m.input_lengths = {"max_length": 48, "max_query_length": 16}
    return m.eval()


def test_torch_forward_restores_training_mode_and_fp32_weights(model):
    from rerank.inference import score_texts, torch_forward

    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch_forward(model, ("score",), "bf16") as forward:
        assert not model.training
        out = score_texts(forward, model.pair_encoder(), FRAME, batch_size=4)
    assert model.training and out.shape == (len(ROWS), 1)
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    model.eval()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_evaluation_scores_as_rerank_score(model, precision, monkeypatch):
    """evaluate_ranking (the loop's evaluation, which chooses best/) gives the scores
    score_frame (rerank score, teacher scoring) gives at the same precision."""
    import rerank.measures as measures
    from rerank.batching import GroupedData
    from rerank.config import Config
    from rerank.score import score_frame
    from rerank.training.evaluation import evaluate_ranking

    captured = {}
    real = measures.evaluate

    def spy(frame, names, **kw):
        captured["scores"] = frame["score"].to_numpy().copy()
        return real(frame, names, **kw)

    monkeypatch.setattr(measures, "evaluate", spy)
    data = GroupedData.from_frame(FRAME, model.pair_encoder(), targets=["label"], source="eval")
    cfg = Config()
    evaluate_ranking(model, data, cfg, precision == "bf16")
    want = score_frame(model, FRAME, precision=precision, batch_size=4)
    # bf16: the same policy (encoder bf16, head fp32); padding differs between the two
    # batchings, which moves bf16 results in the last bits only
    tol = {"atol": 1e-6, "rtol": 1e-5} if precision == "fp32" else {"atol": 2e-3, "rtol": 0}
    np.testing.assert_allclose(captured["scores"], want, **tol)
    if precision == "bf16":  # the head in fp32 (not autocast): scores keep fp32's digits
        got = torch.tensor(captured["scores"], dtype=torch.float32)
        assert not torch.equal(got, got.bfloat16().float())


def test_glue_prediction_uses_the_same_policy_as_scoring(tiny_model_dir):
    """GLUE prediction in bf16: encoder bf16, classification head fp32, as rerank score;
    the logits are those of the one core (torch_forward + score_encoded)."""
    from rerank.glue.predict import encode_examples, predict
    from rerank.glue.tasks import get_task
    from rerank.inference import score_encoded, torch_forward

    task = get_task("rte")
    model = RerankModel.from_pretrained(tiny_model_dir, heads={"rte": task.head_spec()}).eval()
    pairs = pl.DataFrame(
        {
            "sentence1": ["the air flow", "a wing", "the boundary layer of a body"],
            "sentence2": ["the flow of air", "an airfoil", "any angle"],
        }
    )
    enc = model.pair_encoder(max_length=32)
    encoded = encode_examples(enc, pairs, task)
    for precision in ("fp32", "bf16"):
        got = predict(model, pairs, task, max_length=32, precision=precision)
        with torch_forward(model, ("rte",), precision, width=2) as forward:
            want = score_encoded(forward, enc, encoded, n_outputs=2)
        assert got.shape == (3, 2)
        np.testing.assert_allclose(got, want, atol=1e-6)
    fp32 = predict(model, pairs, task, max_length=32, precision="fp32")
    bf16 = predict(model, pairs, task, max_length=32, precision="bf16")
    np.testing.assert_allclose(bf16, fp32, atol=5e-2)
