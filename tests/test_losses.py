"""Each loss against hand-computed values, padding, empty batches and large scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax

from rerank.errors import RerankError
from rerank.losses import (
    LOSSES,
    check_params,
    cross_entropy,
    get_loss,
    hinge,
    kl_div,
    listwise_ce,
    mlm_ce,
    pairwise_mse,
    pointwise_mse,
)

T = torch.tensor


def _mask(*rows: list[int]) -> torch.Tensor:
    return T(rows).bool()


def test_hinge_hand_computed_with_padding_and_two_groups():
    # group 0: pairs (0,1): 1-(1-2)=2, (0,2): 1-(1-0.5)=0.5, (1,2): 1-(2-0.5)<0 -> 0
    # the 4th entry is padding with a high label and a wild score: ignored
    # group 1: pair (0,1): 1-(0-0)=1; its padding is ignored too
    scores = T([[1.0, 2.0, 0.5, -100.0], [0.0, 0.0, 50.0, 0.0]])
    labels = T([[2.0, 1.0, 0.0, 9.0], [1.0, 0.0, 4.0, 0.0]])
    mask = _mask([1, 1, 1, 0], [1, 1, 0, 0])
    assert hinge(scores, labels, mask).item() == pytest.approx((2 + 0.5 + 0 + 1) / 4)
    # margin scaled by the label gap: pair (0,2) has gap 2 -> 2 - 0.5 = 1.5
    scaled = hinge(scores, labels, mask, scale_by_gap=True).item()
    assert scaled == pytest.approx((2 + 1.5 + 0 + 1) / 4)
    assert hinge(scores, labels, mask, margin=0.0).item() == pytest.approx((1 + 0 + 0 + 0) / 4)


def test_hinge_matches_brute_force():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=(3, 6)).astype(np.float32)
    m = rng.random((3, 6)) > 0.3
    terms = [
        max(0.0, 0.7 - (s[g, i] - s[g, j]))
        for g, i, j in itertools.product(range(3), range(6), range(6))
        if m[g, i] and m[g, j] and y[g, i] > y[g, j]
    ]
    got = hinge(T(s), T(y), T(m), margin=0.7).item()
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_hinge_ndcg_weight_hand_computed():
    # one list: scores rank doc1 (y=0) first, doc0 (y=2) second, doc2 (y=1) third
    # gains 3, 0, 1; discounts 1/log2(3), 1, 1/2; IDCG = 3 + 1/log2(3)
    scores = T([[1.0, 2.0, 0.0]])
    labels = T([[2.0, 0.0, 1.0]])
    mask = _mask([1, 1, 1])
    d2, d3 = 1.0, 1.0 / np.log2(3.0)
    idcg = 3.0 * d2 + 1.0 * d3
    # pairs y_i > y_j: (0,1): loss 1-(1-2)=2, w=|3-0|*|d3-1|/idcg
    #                  (0,2): loss 1-(1-0)=0, w irrelevant
    #                  (2,1): loss 1-(0-2)=3, w=|1-0|*|1/2-1|/idcg
    w01 = 3.0 * abs(d3 - 1.0) / idcg
    w02 = 2.0 * abs(d3 - 0.5) / idcg
    w21 = 1.0 * 0.5 / idcg
    want = (w01 * 2 + w02 * 0 + w21 * 3) / (w01 + w02 + w21)
    assert hinge(scores, labels, mask, ndcg_weight=True).item() == pytest.approx(want, rel=1e-5)


def test_hinge_ndcg_weight_is_the_ndcg_change_of_a_swap():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(2, 7)).astype(np.float32)
    y = rng.integers(0, 5, size=(2, 7)).astype(np.float32)
    m = np.ones((2, 7), dtype=bool)
    m[1, 5:] = False

    def ndcg(scores, labels):
        order = np.argsort(-scores, kind="stable")
        gains = 2.0**labels - 1
        disc = 1 / np.log2(np.arange(2, len(labels) + 2))
        return (gains[order] * disc).sum() / (np.sort(gains)[::-1] * disc).sum()

    num = den = 0.0
    for g in range(2):
        sg, yg = s[g][m[g]], y[g][m[g]]
        base = ndcg(sg, yg)
        for i, j in itertools.product(range(len(sg)), repeat=2):
            if yg[i] > yg[j]:
                swapped = sg.copy()
                swapped[i], swapped[j] = sg[j], sg[i]
                w = abs(ndcg(swapped, yg) - base)
                num += w * max(0.0, 1.0 - (sg[i] - sg[j]))
                den += w
    got = hinge(T(s), T(y), T(m), ndcg_weight=True).item()
    assert got == pytest.approx(num / den, rel=1e-4)
    # padding with a wild score and label changes nothing
    s2, y2 = s.copy(), y.copy()
    s2[1, 6], y2[1, 6] = 1e6, 4.0
    assert hinge(T(s2), T(y2), T(m), ndcg_weight=True).item() == pytest.approx(got, rel=1e-6)


def test_pointwise_mse_ignores_padding():
    scores = T([[1.0, 3.0, 1e30]])
    targets = T([[0.0, 1.0, 0.0]])
    assert pointwise_mse(scores, targets, _mask([1, 1, 0])).item() == pytest.approx(2.5)


def test_pairwise_mse_hand_computed_and_margin_mse_case():
    # diffs to a flat teacher: (1-2)^2 + (1-4)^2 + (2-4)^2 = 14 over 3 pairs
    scores = T([[1.0, 2.0, 4.0, 7.0]])
    zeros = torch.zeros(1, 4)
    assert pairwise_mse(scores, zeros, _mask([1, 1, 1, 0])).item() == pytest.approx(14 / 3)
    # two documents = Margin-MSE: ((s+ - s-) - (t+ - t-))^2
    s2, t2 = T([[3.0, 1.0], [0.0, 0.5]]), T([[5.0, 4.0], [1.0, 0.0]])
    expect = ((2 - 1) ** 2 + (-0.5 - 1) ** 2) / 2
    assert pairwise_mse(s2, t2, _mask([1, 1], [1, 1])).item() == pytest.approx(expect)
    # a shift of all teacher scores changes nothing (only differences matter)
    assert pairwise_mse(s2, t2 + 10, _mask([1, 1], [1, 1])).item() == pytest.approx(expect)


def test_listwise_ce_matches_scipy_and_skips_empty_groups():
    s = np.array([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    y = np.array([[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    m = np.array([[1, 1, 1], [1, 1, 0]], dtype=bool)
    g0 = -(softmax(y[0]) * log_softmax(s[0])).sum()
    g1 = -(softmax(y[1, :2]) * log_softmax(s[1, :2])).sum()  # = log 2
    assert g1 == pytest.approx(math.log(2))
    got = listwise_ce(T(s), T(y), T(m)).item()
    assert got == pytest.approx((g0 + g1) / 2, rel=1e-6)
    # an all-padding third group changes nothing
    s3 = np.vstack([s, [[5.0, 5.0, 5.0]]]).astype(np.float32)
    y3 = np.vstack([y, [[1.0, 0.0, 0.0]]]).astype(np.float32)
    m3 = np.vstack([m, [[0, 0, 0]]]).astype(bool)
    assert listwise_ce(T(s3), T(y3), T(m3)).item() == pytest.approx(got, rel=1e-6)


def test_kl_div_matches_scipy_with_temperature():
    s = np.array([[1.0, 2.0, 0.0], [0.5, 0.5, -1.0]])
    t = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    temp = 2.0
    p_t, log_p_s = softmax(t / temp, axis=1), log_softmax(s / temp, axis=1)
    expect = (p_t * (np.log(p_t) - log_p_s)).sum(axis=1).mean() * temp**2
    got = kl_div(T(s).float(), T(t).float(), temperature=temp).item()
    assert got == pytest.approx(expect, rel=1e-5)
    assert kl_div(T(t).float(), T(t).float()).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(RerankError, match="differ in shape"):
        kl_div(torch.zeros(2, 3), torch.zeros(2, 2))


def test_cross_entropy_and_mlm_hand_computed():
    logits = T([[0.0, math.log(3.0)]])
    assert cross_entropy(logits, T([1.0])).item() == pytest.approx(-math.log(3 / 4))
    assert mlm_ce(logits, T([0])).item() == pytest.approx(-math.log(1 / 4))
    empty = torch.zeros(0, 7, requires_grad=True)
    out = mlm_ce(empty, torch.zeros(0, dtype=torch.long))
    assert out.item() == 0.0
    out.backward()


@pytest.mark.parametrize("name", ["hinge", "pointwise_mse", "pairwise_mse", "listwise_ce"])
def test_list_losses_all_masked_give_zero_and_finite_gradient(name):
    scores = torch.randn(2, 4, requires_grad=True)
    labels = T([[3.0, 2.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    loss = LOSSES[name].fn(scores, labels, torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros(2, 4))


@pytest.mark.parametrize("name", ["hinge", "pointwise_mse", "pairwise_mse", "listwise_ce"])
def test_list_losses_stable_for_large_scores(name):
    scores = T([[1e4, -1e4, 3e4, 0.0]]).requires_grad_()
    labels = T([[3.0, 0.0, 1.0, 2.0]])
    loss = LOSSES[name].fn(scores, labels, _mask([1, 1, 1, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(scores.grad).all()


def test_registry_names_and_errors():
    assert set(LOSSES) == {
        "hinge",
        "pointwise_mse",
        "pairwise_mse",
        "listwise_ce",
        "kl_div",
        "cross_entropy",
        "mlm",
    }
    assert get_loss("hinge").needs_label_pairs and not get_loss("pairwise_mse").needs_label_pairs
    with pytest.raises(RerankError, match=r"unknown loss 'hing' \(valid: hinge, pointwise_mse"):
        get_loss("hing")
    assert check_params("hinge", {"margin": 2}) == {"margin": 2.0}
    with pytest.raises(RerankError, match="no parameter 'temperature'"):
        check_params("hinge", {"temperature": 1.0})
    with pytest.raises(RerankError, match="must be a number"):
        check_params("kl_div", {"temperature": "hot"})
