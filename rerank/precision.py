"""Inference precision: fp32, or bf16 with the score heads kept in fp32.

bf16 only pays where the hardware computes it natively: CUDA GPUs with bf16, and CPUs
with AVX512-BF16 or AMX (there bf16 matrix products run through oneDNN's bf16 kernels). Elsewhere bf16 is emulated and slower than fp32, so ``auto`` picks fp32.

:data:`DEFAULT_PRECISION` (``"auto"``) is the one default of everything that scores for a
user: ``rerank score``, :func:`rerank.score.score_file` and :class:`rerank.Reranker`. So
the same pairs get the same scores from the command line and from Python; pass
``precision="fp32"`` (``--precision fp32``) for scores that match ``CrossEncoder`` /
``transformers`` in fp32 to the last digits. The rekindle stages' evaluations and teacher
scoring (:func:`rerank.score.score_frame`) stay in fp32 so that recorded figures do not
depend on the machine.

One policy for every scorer: ``rerank score``, ``score_frame``, the training loop's
evaluation and GLUE prediction all run the model through
:func:`rerank.inference.torch_forward`, which applies :func:`inference_precision` below (the
training loop's evaluation in the precision it trains in, ``train.bf16``). So the eval
figures that choose ``best/`` are those ``rerank score`` + ``rerank evaluate`` give at that
precision, and the exported graphs (:mod:`rerank.backends`) keep the same fp32 heads in int8.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from rerank.errors import RerankError

__all__ = [
    "DEFAULT_PRECISION",
    "Precision",
    "cpu_has_native_bf16",
    "inference_precision",
    "resolve_precision",
]

Precision = Literal["fp32", "bf16", "auto"]

#: The scoring precision of ``rerank score``, ``score_file`` and ``Reranker`` by default.
DEFAULT_PRECISION: Precision = "auto"

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
def _bf16(model: nn.Module) -> Iterator[None]:
    head_modules = [m for name, m in model.named_modules() if HEAD_PARTS & set(name.split("."))]
    head_params = {id(p) for m in head_modules for p in m.parameters()}
    linears = [m for m in head_modules if isinstance(m, nn.Linear)]
    swapped = [
        p for p in model.parameters() if p.dtype == torch.float32 and id(p) not in head_params
    ]
    originals = [p.data for p in swapped]
    saved = [m.__dict__.get("forward") for m in linears]  # an instance forward (hooks) stays
    try:
        for p in swapped:
            p.data = p.data.to(torch.bfloat16)
        for m in linears:
            m.forward = functools.partial(_fp32_linear, m)
        yield
    finally:
        for p, data in zip(swapped, originals, strict=True):
            p.data = data
        for m, forward in zip(linears, saved, strict=True):
            if forward is None:
                del m.forward
            else:
                m.forward = forward


def inference_precision(model: Any, precision: str) -> contextlib.AbstractContextManager:
    """Run ``model`` in ``precision`` (``fp32`` or ``bf16``) inside the context.

    bf16 runs the encoder with bf16 weights and activations and keeps the pooler and
    head layers in fp32; on leaving, the fp32 weights are back, bit for bit (they are
    swapped, not converted). Why not autocast: it keeps LayerNorm and residual sums in
    fp32 and casts activations back and forth around every matrix product; measured on
    MiniLM-L6 at 256 tokens (AMX CPU) that costs about 40% more time for the same
    ranking quality. Why fp32 heads: a score computed in bf16 has about 3 significant
    digits, so close documents would tie; those layers are a negligible share of the work.
    """
    return _bf16(model) if precision == "bf16" else contextlib.nullcontext()
