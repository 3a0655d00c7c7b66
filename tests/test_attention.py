"""Chunked attention with dropout (rerank.attention) against SDPA and the plain formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rerank.attention import dropout_attention, hf_attention, keep_mask


def qkv(b=3, h=2, n=5, d=4, m=None, dtype=torch.double, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = n if m is None else m
    shapes = [(b, h, n, d), (b, h, m, d), (b, h, m, d)]
    return [torch.randn(s, generator=g, dtype=dtype, requires_grad=True) for s in shapes]


def assert_same_grads(ours, ref, inputs, grad):
    for a, b in zip(
        torch.autograd.grad(ours, inputs, grad),
        torch.autograd.grad(ref, inputs, grad),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-12)


def masks(b=3, n=5, m=5):
    additive = torch.zeros(b, 1, 1, m, dtype=torch.double)
    additive[1, ..., 3:] = float("-inf")  # row 1: its last two keys are padding
    allowed = torch.ones(b, 1, n, m, dtype=torch.bool)
    allowed[1, ..., 3:] = False
    square = torch.zeros(n, m, dtype=torch.double)  # 2-D: the same for every batch row
    square[:, 0] = float("-inf")
    return {"none": None, "additive": additive, "bool": allowed, "2d": square}


@pytest.mark.parametrize("kind", ["none", "additive", "bool", "2d"])
def test_without_dropout_equals_sdpa_forward_and_backward(kind):
    q, k, v = qkv()
    mask = masks()[kind]
    ours = dropout_attention(q, k, v, mask, 0.0, scale=0.7)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.7)
    assert torch.allclose(ours, ref, atol=1e-12)
    g = torch.randn_like(ref)
    assert_same_grads(ours, ref, (q, k, v), g)


def test_with_dropout_equals_the_formula_with_the_same_mask():
    q, k, v = qkv(m=7)
    mask = torch.zeros(3, 1, 1, 7, dtype=torch.double)
    mask[2, ..., 5:] = float("-inf")
    p = 0.3
    torch.manual_seed(11)
    keep = keep_mask((3, 2, 5, 7), p)  # small: one chunk, the same draw as inside
    torch.manual_seed(11)
    ours = dropout_attention(q, k, v, mask, p)
    probs = torch.softmax(q @ k.transpose(-1, -2) / 2.0 + mask, -1)  # scale 4 ** -0.5
    ref = (probs * keep / (1 - p)) @ v
    assert torch.allclose(ours, ref, atol=1e-12)
    assert 0 < int((keep == 0).sum()) < keep.numel()  # some dropped, some kept
    g = torch.randn_like(ref)
    assert_same_grads(ours, ref, (q, k, v), g)


def test_gradcheck_with_dropout():
    q, k, v = qkv()
    mask = masks()["additive"]

    def f(q, k, v):
        torch.manual_seed(3)  # the same dropout mask at every evaluation
        return dropout_attention(q, k, v, mask, 0.25)

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_row_by_row_chunks_equal_the_formula(monkeypatch):
    import rerank.attention as attention

    monkeypatch.setattr(attention, "_CHUNK_BYTES", 1)  # one batch row a chunk
    q, k, v = qkv(b=4)
    mask = masks(b=4)["additive"]
    torch.manual_seed(5)
    keep = torch.cat([keep_mask((1, 2, 5, 5), 0.2) for _ in range(4)])  # one draw a chunk
    torch.manual_seed(5)
    ours = dropout_attention(q, k, v, mask, 0.2)
    probs = torch.softmax(q @ k.transpose(-1, -2) / 2.0 + mask, -1)
    ref = (probs * keep / 0.8) @ v
    assert torch.allclose(ours, ref, atol=1e-12)
    assert_same_grads(ours, ref, (q, k, v), torch.ones_like(ref))


def test_keep_mask_rate_and_reproducibility():
    torch.manual_seed(0)
    a = keep_mask((1000, 1000), 0.1)
    assert a.dtype == torch.uint8 and set(a.unique().tolist()) == {0, 1}
    # drop probability round(0.1 * 65536) / 65536 = 0.1000061; sd of the mean 3e-4
    assert abs(1 - a.double().mean().item() - 0.1) < 2e-3
    torch.manual_seed(0)
    assert torch.equal(keep_mask((1000, 1000), 0.1), a)
    assert keep_mask((7, 3), 0.0).all()


def test_dropout_keeps_the_expected_output():
    # E[dropout attention] = attention: the average over many draws converges to SDPA
    q, k, v = qkv(b=1, h=1, n=4, m=6)
    ref = F.scaled_dot_product_attention(q, k, v)
    with torch.no_grad():
        mean = sum(dropout_attention(q, k, v, None, 0.5) for _ in range(4000)) / 4000
    assert torch.allclose(mean, ref, atol=0.05)
    assert not torch.allclose(dropout_attention(q, k, v, None, 0.5), ref, atol=0.05)


def test_rejects_bad_p():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="p must be in"):
        dropout_attention(q, k, v, None, 1.0)


def test_hf_attention_routes_cpu_training_with_dropout(tiny_model_dir):
    from rerank.model import RerankModel

    model = RerankModel.from_pretrained(tiny_model_dir)
    module = next(m for m in model.encoder.modules() if type(m).__name__ == "BertSelfAttention")
    q, k, v = qkv(b=2, h=2, n=6, d=8, dtype=torch.float32)
    mask = torch.zeros(2, 1, 1, 6)
    mask[0, ..., 4:] = float("-inf")
    module.train()
    torch.manual_seed(9)
    out, _ = hf_attention(module, q, k, v, mask, dropout=0.1, scaling=0.3)
    torch.manual_seed(9)
    ref = dropout_attention(q, k, v, mask, 0.1, 0.3).transpose(1, 2)
    assert out.shape == (2, 6, 2, 8) and torch.equal(out, ref)
    # evaluation (and no dropout) go through SDPA: deterministic, no dropout
    module.eval()
    out, _ = hf_attention(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3).transpose(1, 2)
    assert torch.allclose(out, sdpa, atol=1e-6)
