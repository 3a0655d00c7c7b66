"""AdamW with BERT's decay groups and an optional faster learning rate for the heads."""

from __future__ import annotations

from typing import Any

import torch

from rerank.config import Config

__all__ = ["head_parameters", "make_optimizer"]


def head_parameters(model: Any) -> set[int]:
    """Ids of the scoring-head parameters: the HF classification head (everything outside
    the base model, plus BERT's pooler, which only that head reads) and the extra heads."""
    encoder = model.encoder
    body = {id(p) for p in encoder.base_model.parameters()}
    prefix = getattr(encoder, "base_model_prefix", "")
    pooler = getattr(getattr(encoder, prefix, None), "pooler", None)
    pooled = {id(p) for p in pooler.parameters()} if pooler is not None else set()
    heads = {id(p) for p in model.heads.parameters()}
    return {id(p) for p in encoder.parameters() if id(p) not in body} | pooled | heads


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW; each group carries ``lr_scale`` (the loop sets ``lr = lr_at(step) * lr_scale``)."""
    # No decay on biases and LayerNorm weights (every parameter with fewer than 2 dims),
    # as in BERT's and nanoGPT's optimizers. The scoring heads may learn faster
    # (train.head_lr_scale): a fresh head on a small pooled vector otherwise takes many
    # steps before the encoder gets a useful gradient.
    heads = head_parameters(model) if cfg.train.head_lr_scale != 1.0 else set()
    groups = []
    for is_head, scale in ((False, 1.0), (True, cfg.train.head_lr_scale)):
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in heads) == is_head]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                wd = cfg.train.weight_decay if decay else 0.0
                groups.append({"params": chosen, "weight_decay": wd, "lr_scale": scale})
    # The fused kernel (CPU and CUDA) updates all parameters in one pass: on CPU the
    # default per-tensor loop costs more than the forward pass for a MiniLM.
    return torch.optim.AdamW(groups, lr=cfg.train.lr_max, betas=(0.9, 0.999), eps=1e-8, fused=True)
