"""The model a run trains: loaded with its heads, attention set for training on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import torch

from rerank.config import Config
from rerank.errors import RerankError

__all__ = ["build_model", "set_attention_dropout", "use_cpu_attention"]


def build_model(cfg: Config, source: Path, *, mlm: bool, train_frame: pl.DataFrame) -> Any:
    """The :class:`rerank.model.RerankModel` at ``source`` with ``cfg``'s heads, input
    lengths and truncation (saved with it), in training mode."""
    from rerank.model import HeadSpec, RerankModel
    from rerank.model_card import training_facts

    heads = {name: HeadSpec(**vars(h)) for name, h in cfg.model.heads.items()}
    model = RerankModel.from_pretrained(
        source,
        heads=heads,
        primary=cfg.model.primary or None,
        mlm=mlm,
        num_layers=cfg.model.num_layers or None,
    )
    p = cfg.model.attention_dropout
    if p >= 0 and not set_attention_dropout(model.encoder, p):
        raise RerankError(
            f"model.attention_dropout: no self-attention dropout found in "
            f"{type(model.encoder).__name__}; leave it at -1"
        )
    model.input_lengths = {
        "max_length": cfg.model.max_length,
        "max_query_length": cfg.model.max_query_length,
    }
    model.truncation = cfg.model.truncation
    model.card_facts = training_facts(cfg, train_frame)
    model.check_max_length(cfg.model.max_length, key="model.max_length")
    model.train()
    return model


def set_attention_dropout(encoder: Any, p: float) -> int:
    """Set the attention-probability dropout of every self-attention module; returns how many.

    Hugging Face attention modules (BERT, RoBERTa, ELECTRA, ...) pass ``self.dropout.p``
    to their attention kernel while training. The saved config is left as it was.
    """
    count = 0
    for module in encoder.modules():
        if type(module).__name__.endswith("SelfAttention") and isinstance(
            getattr(module, "dropout", None), torch.nn.Dropout
        ):
            module.dropout.p = p
            count += 1
    return count


def use_cpu_attention(model: Any) -> bool:
    """On CPU, compute self-attention with :func:`rerank.attention.hf_attention`.

    Two reasons. (1) Under CPU bf16 autocast attention runs in fp32 (linear layers stay
    bf16): PyTorch's CPU SDPA kernel is about 3x slower in bf16 than in fp32 for BERT-sized
    heads (fwd+bwd, [16, 12, 128, 32], 1 thread: 0.60 s vs 0.20 s here), while bf16 linear
    layers are about 3x faster than fp32 ones. (2) With attention dropout in training, SDPA
    falls back to an unfused path that is several times slower than without dropout;
    :func:`rerank.attention.dropout_attention` computes the same in cache-sized chunks.
    Registered as a Hugging Face attention implementation (not saved in config.json).
    Returns whether the model's attention was switched (only SDPA models are).
    """
    from transformers import AttentionInterface

    from rerank.attention import hf_attention

    encoder = model.encoder
    if getattr(encoder.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register("rerank_cpu", hf_attention)
    encoder.set_attn_implementation("rerank_cpu")
    return True
