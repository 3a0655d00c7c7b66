"""Inference precision: fp32, or bf16 autocast with the score heads kept in fp32.

bf16 only pays where the hardware computes it natively: CUDA GPUs with bf16, and CPUs
with AVX512-BF16 or AMX (there CPU autocast runs the matrix products through oneDNN's
bf16 kernels). Elsewhere bf16 is emulated and slower than fp32, so ``auto`` picks fp32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from rerank.errors import RerankError

__all__ = ["Precision", "autocast", "cpu_has_native_bf16", "resolve_precision"]

Precision = Literal["fp32", "bf16", "auto"]

# Linear layers whose qualified name has one of these parts compute the score from the
# encoder's features: BERT/DeBERTa ``pooler.dense`` + ``classifier``, RoBERTa/ELECTRA
# ``classifier.dense``/``classifier.out_proj``, decoder ``score``, RerankModel ``heads.*``.
HEAD_PARTS = frozenset({"classifier", "pooler", "heads", "score"})


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, p, lambda: False)()) for p in probes)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where ``device`` computes bf16 natively, else ``"fp32"``.

    Examples
    --------
    >>> resolve_precision("fp32", torch.device("cpu"))
    'fp32'
    """
    if precision not in ("fp32", "bf16", "auto"):
        raise RerankError(f"precision: expected fp32, bf16 or auto, got '{precision}'")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def _fp32_linear(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False):
        bias = None if module.bias is None else module.bias.float()
        return nn.functional.linear(x.float(), module.weight.float(), bias)


@contextlib.contextmanager
def _bf16(model: nn.Module, device: torch.device) -> Iterator[None]:
    heads = [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and HEAD_PARTS & set(name.split("."))
    ]
    saved = [m.__dict__.get("forward") for m in heads]  # an instance forward (hooks) stays
    try:
        for m in heads:
            m.forward = functools.partial(_fp32_linear, m)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    finally:
        for m, forward in zip(heads, saved, strict=True):
            if forward is None:
                del m.forward
            else:
                m.forward = forward


def autocast(model: Any, device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Run ``model`` in ``precision`` (``fp32`` or ``bf16``) inside the context.

    bf16 autocasts the encoder but keeps the pooler and head layers in fp32: a score
    computed in bf16 has about 3 significant digits, so close documents would tie and
    rankings (PNR) would suffer; those layers are a negligible share of the work.
    Enter it once around many batches: autocast caches the bf16 copies of the weights
    for as long as the context lasts.
    """
    return _bf16(model, device) if precision == "bf16" else contextlib.nullcontext()
