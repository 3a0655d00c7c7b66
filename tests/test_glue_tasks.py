"""Every GLUE task's head and losses on a tiny model, checked against hand formulas."""

from __future__ import annotations

import math

import pytest
import torch

from rerank.errors import RerankError
from rerank.glue.tasks import TASKS, get_task
from rerank.losses import LOSSES
from rerank.model import RerankModel


def test_registry_by_hand():
    assert get_task("STS-B").name == "stsb" and get_task("sst_2").name == "sst2"
    stsb, mnli, cola = get_task("stsb"), get_task("mnli"), get_task("cola")
    assert (stsb.is_regression, stsb.num_outputs, stsb.low, stsb.high) == (True, 1, 0.0, 5.0)
    assert (stsb.finetune_loss, stsb.kd_loss, stsb.primary_metric) == (
        "pointwise_mse",
        "pointwise_mse",
        "spearman",
    )
    assert (mnli.num_outputs, mnli.finetune_loss, mnli.kd_loss) == (3, "cross_entropy", "kl_div")
    assert (cola.input, cola.primary_metric) == ("single", "mcc")
    assert [t for t in TASKS if TASKS[t].input == "single"] == ["cola", "sst2"]
    for task in TASKS.values():
        assert task.finetune_loss in LOSSES and task.kd_loss in LOSSES


def test_parse_label():
    rte, stsb = get_task("rte"), get_task("stsb")
    assert [rte.parse_label(x) for x in ("entailment", "not_entailment", "0", "1 ")] == [0, 1, 0, 1]
    assert stsb.parse_label("3.800") == 3.8
    for bad in ("2", "-1", "yes", ""):
        with pytest.raises(ValueError, match=r"expected a class index 0\.\.1"):
            rte.parse_label(bad)
    for bad in ("5.01", "nan", "-0.5", "x"):
        with pytest.raises(ValueError, match=r"expected a number in 0..5"):
            stsb.parse_label(bad)


def _model(tiny_model_dir, name):
    torch.manual_seed(0)
    return RerankModel.from_pretrained(tiny_model_dir, heads={name: get_task(name).head_spec()})


def _inputs(model, single: bool):
    enc = model.pair_encoder(max_length=32)
    first = ["the air flow", "a wing of an aircraft"]
    second = None if single else [["the flow of air"], ["any angle"]]
    return enc.collate(enc.encode(first, second))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_head_finetune_and_kd_losses_on_a_tiny_model(tiny_model_dir, name):
    task = get_task(name)
    model = _model(tiny_model_dir, name).eval()
    out = model(**_inputs(model, task.input == "single"), heads=(name,))[name]
    if task.is_regression:
        assert out.shape == (2,) and bool(((out > 0) & (out < 5)).all())
        gold = torch.tensor([4.0, 1.0])
        # pointwise_mse on one-example groups [2, 1] is the plain MSE
        mse = LOSSES["pointwise_mse"].fn(out[:, None], gold[:, None], torch.ones(2, 1, dtype=bool))
        by_hand = float(((out.detach() - gold) ** 2).mean())
        assert float(mse.detach()) == pytest.approx(by_hand, rel=1e-6)
        mse.backward()
    else:
        c = task.num_outputs
        assert out.shape == (2, c)
        labels = torch.tensor([0.0, c - 1.0])  # the loop hands targets over as floats
        ce = LOSSES["cross_entropy"].fn(out, labels)
        logp = torch.log_softmax(out.detach(), dim=1)
        assert float(ce.detach()) == pytest.approx(
            -float(logp[0, 0] + logp[1, c - 1]) / 2, rel=1e-5
        )
        teacher = torch.arange(2 * c, dtype=torch.float32).reshape(2, c)
        kl = LOSSES["kl_div"].fn(out, teacher, temperature=2.0)
        p = torch.softmax(teacher / 2, dim=1)
        q = torch.softmax(out.detach() / 2, dim=1)
        by_hand = 4 * float((p * (p.log() - q.log())).sum(dim=1).mean())
        assert float(kl.detach()) == pytest.approx(by_hand, rel=1e-5)
        (ce + kl).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_regression_head_range_and_classification_spec():
    spec = get_task("stsb").head_spec()
    z = torch.tensor([[-100.0], [0.0], [100.0]])
    assert spec.transform(z).tolist() == [0.0, 2.5, 5.0]
    assert get_task("mnli").head_spec().num_outputs == 3
    with pytest.raises(RerankError, match="unknown GLUE task"):
        get_task("squad")
    assert math.isclose(get_task("stsb").high - get_task("stsb").low, 5.0)
