"""The heads of :class:`rerank.model.RerankModel` beside the backbone's own classifier.

:class:`HeadSpec` says what a head outputs (a score, class logits, a bounded regression
value); :class:`ExtraHead` is an extra head (one per teacher in multi-teacher rekindle,
GLUE task heads) on the last hidden state of the first token; :class:`MlmHead` is BERT's
MLM head, its decoder tied to the word embeddings. Their weights are sidecar files of the
model directory (:data:`rerank.model_dir.HEADS_FILE`, :data:`rerank.model_dir.MLM_FILE`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from rerank.errors import RerankError

__all__ = ["ExtraHead", "HeadKind", "HeadSpec", "MlmHead", "load_hf_mlm_head"]

log = logging.getLogger(__name__)

HeadKind = Literal["score", "classification", "regression"]


@dataclass(frozen=True)
class HeadSpec:
    """What a head outputs.

    ``score``: one real number per input (ranking). ``classification``: ``num_outputs``
    logits. ``regression``: one value, ``low + (high - low) * sigmoid(z)`` (STS-B: 0..5).
    """

    kind: HeadKind = "score"
    num_outputs: int = 1
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("score", "classification", "regression"):
            raise RerankError(f"HeadSpec: unknown head kind '{self.kind}'")
        if self.kind != "classification" and self.num_outputs != 1:
            raise RerankError(f"HeadSpec: a {self.kind} head has one output")
        if self.kind == "classification" and self.num_outputs < 2:
            raise RerankError("HeadSpec: a classification head needs num_outputs >= 2")

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        """Raw head output ``[batch, num_outputs]`` -> scores ``[batch]`` or logits ``[batch, C]``."""
        if self.kind == "classification":
            return z
        z = z[:, 0]
        if self.kind == "regression":
            return self.low + (self.high - self.low) * torch.sigmoid(z)
        return z


class ExtraHead(nn.Module):
    """Dropout + linear on the first token's last hidden state."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_outputs)

    def forward(self, h_first: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(h_first))


class MlmHead(nn.Module):
    """BERT's MLM head: dense + GELU + LayerNorm, decoder tied to the word embeddings."""

    def __init__(self, hidden_size: int, vocab_size: int, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``h [n, hidden]`` -> vocabulary logits ``[n, vocab]``."""
        x = self.norm(nn.functional.gelu(self.dense(h)))
        return x @ embeddings.t() + self.bias


def load_hf_mlm_head(path: Path, head: MlmHead) -> bool:
    """Take BERT's own MLM head (``cls.predictions.*``) when the checkpoint has one."""
    weights = path / "model.safetensors"
    if not weights.is_file():
        return False
    from safetensors import safe_open

    prefix = "cls.predictions."
    with safe_open(str(weights), "pt") as f:
        keys = [k for k in f.keys() if k.startswith(prefix)]
        if not keys:
            return False
        state = {k[len(prefix) :]: f.get_tensor(k) for k in keys}
    mapping = {
        "dense.weight": "transform.dense.weight",
        "dense.bias": "transform.dense.bias",
        "norm.weight": "transform.LayerNorm.weight",
        "norm.bias": "transform.LayerNorm.bias",
        "bias": "bias",
    }
    if not all(v in state for v in mapping.values()):
        return False
    head.load_state_dict({k: state[v] for k, v in mapping.items()})
    log.info("%s: MLM head loaded from the checkpoint's cls.predictions", path)
    return True
