"""The cross-encoder: a Hugging Face backbone with pluggable heads.

:class:`RerankModel` wraps an ``AutoModelForSequenceClassification``; that model's own
classifier is the *primary* head (``score`` for ranking, num_labels=1). A saved ranking
checkpoint is therefore an ordinary HF directory that ``AutoModelForSequenceClassification``
and sentence-transformers' ``CrossEncoder`` load and score identically (for BERT the score
is a linear layer on the pooled ``[CLS]`` vector: ``classifier(tanh(W h_cls))``).

Extra heads (one per teacher in multi-teacher rekindle, GLUE task heads) read the last
hidden state of the first token and live in ``rerank_heads.safetensors``; the optional
MLM head lives in ``rerank_mlm_head.safetensors`` (the heads: :mod:`rerank.heads`). Their
specs are kept in ``config.json`` under the key ``rerank`` (reading a model directory:
:mod:`rerank.model_dir`). ``forward`` returns scores only (a dict
head name -> tensor); the losses judge.

Weights are read from safetensors files only: a directory holding just a pickled
``pytorch_model.bin`` is refused (unpickling can run code), and a damaged file is a
one-line error naming it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rerank.atomic import atomic_path
from rerank.encoding import PairEncoder
from rerank.errors import RerankError
from rerank.heads import ExtraHead, HeadKind, HeadSpec, MlmHead, load_hf_mlm_head
from rerank.model_dir import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_QUERY_LENGTH,
    HEADS_FILE,
    INPUT_LENGTH_KEYS,
    MLM_FILE,
    check_weights,
    load_encoder,
    position_limit,
    quiet_transformers,
    saved_input_lengths,
    saved_meta,
    saved_truncation,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_QUERY_LENGTH",
    "HEADS_FILE",
    "INPUT_LENGTH_KEYS",
    "MLM_FILE",
    "ExtraHead",
    "HeadKind",
    "HeadSpec",
    "MlmHead",
    "RerankModel",
    "check_weights",
    "quiet_transformers",
    "saved_input_lengths",
    "stack_layers",
]

log = logging.getLogger(__name__)


class RerankModel(nn.Module):
    """Backbone + primary HF head + optional extra heads and MLM head.

    Build it with :meth:`from_pretrained`; save with :meth:`save_pretrained`.
    """

    def __init__(
        self,
        encoder: Any,
        tokenizer: Any,
        *,
        primary: str = "score",
        specs: dict[str, HeadSpec] | None = None,
        mlm: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.primary = primary
        self.specs = dict(specs or {primary: HeadSpec()})
        cfg = encoder.config
        dropout = float(getattr(cfg, "hidden_dropout_prob", 0.1) or 0.1)
        self.heads = nn.ModuleDict(
            {
                name: ExtraHead(cfg.hidden_size, spec.num_outputs, dropout)
                for name, spec in self.specs.items()
                if name != primary
            }
        )
        eps = float(getattr(cfg, "layer_norm_eps", 1e-12))
        self.mlm_head = MlmHead(cfg.hidden_size, cfg.vocab_size, eps) if mlm else None
        # The input lengths the model was trained with ("max_length", "max_query_length"):
        # saved in config.json and the defaults of pair_encoder(), so scoring sees what
        # training saw unless told otherwise. Empty for a model rerank did not train.
        self.input_lengths: dict[str, int] = {}
        # The truncation policy (rerank.encoding.TRUNCATIONS), saved as rerank.truncation.
        self.truncation = "query_cap"
        # What the model card (README.md, written by save_pretrained) reports about how
        # the model was trained: rerank.model_card.training_facts(); empty: not trained here.
        self.card_facts: dict[str, Any] = {}

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        heads: dict[str, HeadSpec] | None = None,
        primary: str | None = None,
        mlm: bool = False,
        num_layers: int | None = None,
    ) -> RerankModel:
        """Load a local HF directory (a plain encoder or a saved RerankModel).

        Parameters
        ----------
        path
            Local Hugging Face model directory.
        heads
            Heads the caller needs (name -> spec). Heads found in the checkpoint keep
            their weights; new ones start fresh (logged). ``None``: the checkpoint's heads,
            or a single ``score`` head for a plain encoder.
        primary
            Which head is the HF classifier (default: the checkpoint's, else the first).
        mlm
            Attach an MLM head (loaded from the checkpoint when present, else fresh).
        num_layers
            Grow the encoder to this many layers by stacking (see :func:`stack_layers`).
        """
        path = Path(path)
        saved = saved_meta(path)
        saved_specs = {k: HeadSpec(**v) for k, v in saved.get("heads", {}).items()}
        specs = dict(heads) if heads is not None else (saved_specs or {"score": HeadSpec()})
        primary = primary or saved.get("primary") or next(iter(specs))
        if primary not in specs:
            raise RerankError(
                f"RerankModel: primary head '{primary}' not among heads {list(specs)}"
            )
        pspec = specs[primary]
        encoder, tokenizer, fresh = load_encoder(path, pspec.num_outputs)
        if saved.get("primary") not in (None, primary) or saved_specs.get(primary, pspec) != pspec:
            fresh = True
        if fresh:
            log.info("%s: primary head '%s' initialised fresh", path, primary)
        model = cls(encoder, tokenizer, primary=primary, specs=specs, mlm=mlm)
        model.input_lengths = {k: int(saved[k]) for k in INPUT_LENGTH_KEYS if k in saved}
        model.truncation = saved_truncation(saved, path)
        model._load_sidecars(path, saved_specs)
        if num_layers is not None and num_layers != encoder.config.num_hidden_layers:
            stack_layers(model.encoder, num_layers)
        return model

    def _load_sidecars(self, path: Path, saved_specs: dict[str, HeadSpec]) -> None:
        # check_weights has read every *.safetensors header, these included
        state = load_file(str(path / HEADS_FILE)) if (path / HEADS_FILE).is_file() else {}
        for name, head in self.heads.items():
            keys = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == name}
            if keys and saved_specs.get(name) == self.specs[name]:
                head.load_state_dict(keys)
            else:
                log.info("%s: head '%s' initialised fresh", path, name)
        if self.mlm_head is None:
            return
        if (path / MLM_FILE).is_file():
            self.mlm_head.load_state_dict(load_file(str(path / MLM_FILE)))
        elif not load_hf_mlm_head(path, self.mlm_head):
            log.info("%s: checkpoint has no MLM head; created a fresh one", path)

    # -- forward --------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        heads: tuple[str, ...] | None = None,
        mlm_positions: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Scores of the requested heads (default: primary), and MLM logits if asked.

        Parameters
        ----------
        input_ids, attention_mask, token_type_ids
            ``[batch, seq]``.
        heads
            Names of the heads to compute.
        mlm_positions
            Boolean ``[batch, seq]``: positions whose vocabulary logits are wanted;
            returned under ``"mlm"`` as ``[n_positions, vocab]``.

        Returns
        -------
        dict
            head name -> ``[batch]`` (score/regression) or ``[batch, C]`` (classification).
        """
        heads = heads or (self.primary,)
        need_hidden = mlm_positions is not None or any(h != self.primary for h in heads)
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=need_hidden,
            **kwargs,
        )
        result: dict[str, torch.Tensor] = {}
        hidden = out.hidden_states[-1] if need_hidden else None
        for name in heads:
            if name == self.primary:
                raw = out.logits
            elif name in self.heads:
                raw = self.heads[name](hidden[:, 0])
            else:
                raise RerankError(f"RerankModel: no head named '{name}' (have {list(self.specs)})")
            result[name] = self.specs[name].transform(raw.float())
        if mlm_positions is not None:
            if self.mlm_head is None:
                raise RerankError("RerankModel: MLM logits requested but the model has no MLM head")
            emb = self.encoder.get_input_embeddings().weight
            result["mlm"] = self.mlm_head(hidden[mlm_positions], emb)
        return result

    def max_positions(self) -> int | None:
        """Tokens the encoder's position embeddings cover (``None``: no limit known)."""
        return position_limit(self.encoder.config)

    def check_max_length(self, max_length: int, *, key: str = "max_length") -> None:
        """Refuse an input length beyond the position embeddings (an index error later)."""
        limit = self.max_positions()
        if limit and max_length > limit:
            raise RerankError(f"{key} {max_length} exceeds the model's {limit} positions")

    def pair_encoder(
        self, *, max_length: int | None = None, max_first_length: int | None = None
    ) -> PairEncoder:
        """The encoder of inputs; lengths default to the trained ones (else 256 / 64)."""
        max_length = max_length or self.input_lengths.get("max_length", DEFAULT_MAX_LENGTH)
        max_first_length = max_first_length or self.input_lengths.get(
            "max_query_length", DEFAULT_MAX_QUERY_LENGTH
        )
        return PairEncoder(
            self.tokenizer,
            max_length=max_length,
            max_first_length=max_first_length,
            truncation=self.truncation,
        )

    # -- saving ---------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write an ordinary HF directory (config, safetensors, tokenizer) + sidecars, atomically."""
        cfg = self.encoder.config
        cfg.rerank = {
            "primary": self.primary,
            "heads": {k: asdict(v) for k, v in self.specs.items()},
            **self.input_lengths,
            **({"truncation": self.truncation} if self.truncation != "query_cap" else {}),
        }
        if self.specs[self.primary].kind == "score":
            # sentence-transformers' CrossEncoder applies a sigmoid to 1-label models by
            # default; this makes it return the raw score, the same number `rerank score` writes.
            cfg.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
        with atomic_path(path, is_dir=True) as tmp, quiet_transformers():
            self.encoder.save_pretrained(str(tmp))
            # The tokenizer's model_max_length is what CrossEncoder(dir) truncates at:
            # the trained length makes it score what `rerank score` scores.
            kept = self.tokenizer.model_max_length
            if "max_length" in self.input_lengths:
                self.tokenizer.model_max_length = self.input_lengths["max_length"]
            try:
                self.tokenizer.save_pretrained(str(tmp))
            finally:
                self.tokenizer.model_max_length = kept
            if len(self.heads):
                state = {
                    f"{n}.{k}": v.contiguous()
                    for n, h in self.heads.items()
                    for k, v in h.state_dict().items()
                }
                save_file(state, str(tmp / HEADS_FILE))
            if self.mlm_head is not None:
                state = {k: v.contiguous() for k, v in self.mlm_head.state_dict().items()}
                save_file(state, str(tmp / MLM_FILE))
            from rerank.model_card import model_card

            (tmp / "README.md").write_text(model_card(self, Path(path).name), encoding="utf-8")


def _layer_list(encoder: Any) -> nn.ModuleList:
    base = encoder.base_model
    n = encoder.config.num_hidden_layers
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise RerankError(f"{type(encoder).__name__}: cannot find its list of {n} layers to stack")


def stack_layers(encoder: Any, num_layers: int) -> None:
    """Grow (or shrink) the encoder to ``num_layers`` by repeating its layers in order.

    New layer ``i`` is a copy of old layer ``floor(i * old / new)``: 6 -> 12 repeats each
    layer twice in place (``0,0,1,1,...,5,5``), the stacking used to grow BERT
    progressively (Gong et al., 2019, "Efficient training of BERT by progressively
    stacking"). Works in place; updates ``config.num_hidden_layers``.
    """
    if num_layers < 1:
        raise RerankError(f"stack_layers: num_layers must be >= 1, got {num_layers}")
    layers = _layer_list(encoder)
    old = len(layers)
    new = [copy.deepcopy(layers[i * old // num_layers]) for i in range(num_layers)]
    for i, layer in enumerate(new):
        attn = getattr(layer, "attention", None)
        inner = getattr(attn, "self", attn)
        if inner is not None and hasattr(inner, "layer_idx"):
            inner.layer_idx = i
    del layers[:]
    layers.extend(new)
    encoder.config.num_hidden_layers = num_layers
