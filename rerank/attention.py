"""Self-attention with dropout for CPU training, computed in cache-sized chunks.

PyTorch's fused CPU attention kernel (``scaled_dot_product_attention``) has no dropout: with
``dropout_p > 0`` it falls back to the unfused "math" path, which materialises the
``[batch, heads, n, n]`` scores, probabilities, a float dropout mask and the dropped
probabilities for the whole batch, in memory and for autograd. On the CPUs we measured that
made a BERT training step with the usual attention dropout (0.1) about 2.4x slower than one
without (``benchmarks/train.py``).

:func:`dropout_attention` computes the same thing (softmax attention whose probabilities are
zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``) a few batch rows at a
time, so the ``n x n`` blocks stay in cache, and keeps for the backward pass only a one-byte
dropout mask and the softmax's log-sum-exp per row; the backward pass recomputes the
probabilities (the flash-attention recipe, in plain PyTorch ops). Two further savings:

- the dropout mask is drawn 16 bits at a time from 64-bit random numbers (four mask entries
  per random draw); an entry is dropped when its 16-bit value is below ``round(p * 65536)``,
  so the drop probability is ``p`` to within 2^-17 (0.1 -> 0.1000061);
- the ``1 / (1 - p)`` rescaling is applied to the ``[n, head_dim]`` output, not to the
  ``n x n`` probabilities, and the softmax backward uses ``rowsum(dOut * Out)`` (again on
  ``[n, head_dim]`` tensors) instead of a pass over ``n x n``.

Random numbers come from PyTorch's default CPU generator, so ``torch.manual_seed`` and the
RNG state saved in training checkpoints make runs reproducible and resumable.

:func:`hf_attention` plugs this into Hugging Face models as an attention implementation; it
falls back to Hugging Face's SDPA function for anything it does not cover (evaluation, no
dropout, GPU tensors, causal or grouped-query attention, position biases).
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["dropout_attention", "hf_attention", "keep_mask"]

_CHUNK_BYTES = 8 << 20  # fp32 n x n scores per chunk: about 2 batch rows of 12 x 256 x 256


def keep_mask(shape: tuple[int, ...], p: float) -> torch.Tensor:
    """uint8 tensor of ``shape``: 0 (drop) with probability ``round(p * 65536) / 65536``, else 1.

    uint8 rather than bool: multiplying fp32 by it is about twice as fast as ``masked_fill``.
    """
    n = math.prod(shape)
    bits = torch.empty(-(-n // 4), dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    lanes = bits.view(torch.int16)[:n]
    keep = torch.empty(n, dtype=torch.uint8)
    torch.ge(lanes, -32768 + round(p * 65536), out=keep)
    return keep.view(shape)


def _scores(q: torch.Tensor, kt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    s = torch.matmul(q, kt)
    if mask is None:
        return s
    if mask.dtype == torch.bool:  # True = may attend (SDPA's convention)
        return s.masked_fill_(~mask, float("-inf"))
    return s.add_(mask)


def _chunk_rows(h: int, n: int, m: int) -> int:
    """Batch rows a chunk: as many as keep its fp32 ``[rows, h, n, m]`` scores in budget."""
    return max(1, _CHUNK_BYTES // (h * n * m * 4))


def _rows(mask: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
    return mask if mask is None or mask.shape[0] == 1 else mask[sl]


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q, k, v, mask, p: float, scale: float):  # type: ignore[override]
        b, h, n, _ = q.shape
        m = k.shape[-2]
        q = q * scale
        kt = k.transpose(-1, -2)
        chunk = _chunk_rows(h, n, m)
        out = torch.empty_like(q)
        keep = torch.empty((b, h, n, m), dtype=torch.uint8)
        lse = torch.empty((b, h, n, 1), dtype=q.dtype)
        for i in range(0, b, chunk):
            sl = slice(i, i + chunk)
            s = _scores(q[sl], kt[sl], _rows(mask, sl))
            torch.logsumexp(s, -1, keepdim=True, out=lse[sl])
            a = s.sub_(lse[sl]).exp_()
            keep[sl] = kp = keep_mask(a.shape, p)
            torch.matmul(a.mul_(kp), v[sl], out=out[sl])
        out.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, mask, keep, lse, out)
        ctx.scale, ctx.p = scale, p
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        q, k, v, mask, keep, lse, out = ctx.saved_tensors
        b, h, n, _ = q.shape
        chunk = _chunk_rows(h, n, k.shape[-2])
        g = grad.contiguous() * (1.0 / (1.0 - ctx.p))
        # rowsum(dP o P) of the softmax backward = rowsum(dOut o Out) (both scaled by 1/(1-p))
        delta = (grad * out).sum(-1, keepdim=True)
        kt = k.transpose(-1, -2)
        gq, gk, gv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for i in range(0, b, chunk):
            sl = slice(i, i + chunk)
            a = _scores(q[sl], kt[sl], _rows(mask, sl)).sub_(lse[sl]).exp_()
            kp = keep[sl]
            torch.matmul((a * kp).transpose(-1, -2), g[sl], out=gv[sl])
            ga = torch.matmul(g[sl], v[sl].transpose(-1, -2)).mul_(kp)
            gs = ga.sub_(delta[sl]).mul_(a)  # gradient w.r.t. the (scaled) scores
            torch.matmul(gs, k[sl], out=gq[sl])
            torch.matmul(gs.transpose(-1, -2), q[sl], out=gk[sl])
        gq.mul_(ctx.scale)
        return gq, gk, gv, None, None, None


def dropout_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    p: float,
    scale: float | None = None,
) -> torch.Tensor:
    """``softmax(q k^T * scale + mask)`` with dropout ``p`` on the probabilities, times ``v``.

    Shapes as :func:`torch.nn.functional.scaled_dot_product_attention`: ``query [b, h, n, d]``,
    ``key``/``value [b, h, m, d]``, ``attn_mask`` broadcastable to ``[b, h, n, m]`` (float:
    added to the scores; bool: True where attention is allowed) or None. CPU tensors.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_attention: p must be in [0, 1), got {p}")
    if scale is None:
        scale = query.shape[-1] ** -0.5
    dtype = query.dtype
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    q, k, v = (t.to(work).contiguous() for t in (query, key, value))
    if attn_mask is not None:
        while attn_mask.dim() < 4:  # [n, m] or [h, n, m]: broadcast over the batch
            attn_mask = attn_mask.unsqueeze(0)
        if attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.to(work)
    return _DropoutAttention.apply(q, k, v, attn_mask, float(p), float(scale)).to(dtype)


def hf_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kw: Any
) -> tuple[torch.Tensor, None]:
    """A Hugging Face attention implementation: SDPA, with :func:`dropout_attention` in
    CPU training with dropout. Attention runs in fp32 (see rerank.training.model.use_cpu_attention)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    p = float(kw.get("dropout", 0.0) or 0.0)
    causal = kw.get("is_causal")
    causal = getattr(module, "is_causal", False) if causal is None else causal
    own = (
        p > 0.0
        and module.training
        and query.device.type == "cpu"
        and not causal
        and kw.get("position_bias") is None
        and kw.get("cache") is None
        and getattr(module, "num_key_value_groups", 1) <= 1
        and key.shape[1] == query.shape[1]
    )
    dtype = query.dtype
    with torch.autocast(query.device.type, enabled=False):
        if own:
            out = dropout_attention(query, key, value, attention_mask, p, kw.get("scaling"))
            return out.transpose(1, 2).contiguous().to(dtype), None
        out, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kw
        )
    return out.to(dtype), weights
