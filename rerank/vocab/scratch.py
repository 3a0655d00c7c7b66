"""A randomly initialised BERT over a trained SentencePiece vocabulary (the costly path).

When the pretrained vocabulary fits the language too badly to extend, a student can start
from nothing: a BERT of the chosen size whose tokenizer is the pieces directory's own
(``tokenizer.json``: SentencePiece's segmentation, BERT's ``[CLS] A [SEP] B [SEP]``
template). It knows no language at all, so everything must come from expert-guided
pre-training (teacher scores + MLM over a large rekindle corpus) and costs far more
compute and data than extending a pretrained model; see README.md.

The output is an ordinary HF directory (``AutoModelForSequenceClassification`` and
``AutoTokenizer`` load it) with a fresh ``score`` head and a fresh MLM head sidecar.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank.errors import RerankError
from rerank.vocab.pieces import PieceSet, load_pieces

__all__ = ["ScratchSpec", "pieces_hf_tokenizer", "scratch_model"]


@dataclass(frozen=True)
class ScratchSpec:
    """Size of a from-scratch BERT (defaults: MiniLM-L6-H384's shape)."""

    layers: int = 6
    hidden: int = 384
    heads: int | None = None
    intermediate: int | None = None
    max_positions: int = 512

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise RerankError(f"--layers: expected a positive integer, got {self.layers}")
        if self.hidden < 1:
            raise RerankError(f"--hidden: expected a positive integer, got {self.hidden}")
        if self.hidden % self.num_heads:
            raise RerankError(
                f"--hidden {self.hidden}: must be a multiple of the {self.num_heads} attention heads"
            )

    @property
    def num_heads(self) -> int:
        """Given heads, else one per 64 hidden units (BERT's ratio), at least one."""
        return self.heads if self.heads else max(1, self.hidden // 64)


def pieces_hf_tokenizer(pieces: PieceSet, *, max_length: int = 512) -> Any:
    """The pieces as a ``transformers`` fast tokenizer with BERT's special tokens and type ids."""
    from transformers import PreTrainedTokenizerFast

    pad, unk, cls, sep, mask = pieces.specials[:5]
    return PreTrainedTokenizerFast(
        tokenizer_object=pieces.tokenizer(),
        unk_token=unk,
        pad_token=pad,
        cls_token=cls,
        sep_token=sep,
        mask_token=mask,
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def scratch_model(
    pieces_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    spec: ScratchSpec = ScratchSpec(),
    seed: int = 0,
) -> dict[str, Any]:
    """Write a randomly initialised BERT with the vocabulary of ``pieces_dir`` to ``out``.

    Returns a summary (vocabulary size, parameters, shape) that is also written to
    ``rerank_vocab.json`` in ``out``.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from rerank.atomic import atomic_path
    from rerank.model import RerankModel, quiet_transformers
    from rerank.vocab.extend import REPORT_FILE, save_into

    pieces = load_pieces(pieces_dir)
    config = BertConfig(
        vocab_size=len(pieces.pieces),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate or 4 * spec.hidden,
        max_position_embeddings=spec.max_positions,
        pad_token_id=0,
        num_labels=1,
    )
    torch.manual_seed(seed)
    with quiet_transformers():
        encoder = BertForSequenceClassification(config)
    tokenizer = pieces_hf_tokenizer(pieces, max_length=spec.max_positions)
    model = RerankModel(encoder, tokenizer, mlm=True)
    summary = {
        "from_scratch": True,
        "pieces": str(pieces.path),
        "vocab_size": config.vocab_size,
        "layers": spec.layers,
        "hidden": spec.hidden,
        "heads": spec.num_heads,
        "intermediate": config.intermediate_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": seed,
    }
    with atomic_path(out, is_dir=True) as tmp:
        save_into(model, tmp)
        _portable_tokenizer_class(tmp)
        (tmp / REPORT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _portable_tokenizer_class(path: Path) -> None:
    """Name the generic fast tokenizer as every ``transformers`` version knows it
    (version 5 writes ``TokenizersBackend``, which version 4 cannot resolve)."""
    cfg_file = path / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg_file.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
