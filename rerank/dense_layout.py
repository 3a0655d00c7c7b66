"""What a sentence-embedding checkpoint says: encoder, pooling, normalising, lengths, prompts.

Read from the files sentence-transformers writes, without sentence-transformers: a
directory with ``modules.json`` has a ``Transformer`` module (the encoder: the directory
itself or its sub-folder; ``max_seq_length`` and ``do_lower_case`` from
``sentence_bert_config.json``), a ``Pooling`` module (``1_Pooling/config.json``:
``pooling_mode`` or the legacy ``pooling_mode_*_token(s)`` flags; several modes are
concatenated in sentence-transformers' order), maybe a ``Normalize`` module, and the
``query`` / ``document`` prompts of ``config_sentence_transformers.json``. Other modules
(``Dense``, ...) are refused. Any other Hugging Face encoder directory: mean pooling.

:func:`detect_kind` says whether a directory is scored as a cross-encoder (it has a
trained ranking head) or as a bi-encoder (:mod:`rerank.dense`); :func:`pool` is
sentence-transformers' pooling of the encoder's hidden states.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from rerank.config import resolve_model_path
from rerank.errors import RerankError, input_error
from rerank.model_dir import position_limit

__all__ = [
    "POOLING_MODES",
    "ModelKind",
    "checkpoint_layout",
    "detect_kind",
    "has_ranking_head",
    "pool",
    "position_limit",
    "scoring_files",
]

ModelKind = Literal["cross-encoder", "bi-encoder"]

# sentence-transformers' pooling modes, in the order its legacy flags concatenate them
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _read_json(path: Path) -> dict[str, Any] | list[Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise input_error(path, f"not valid JSON ({err.msg} at line {err.lineno})") from None
    except OSError as err:
        raise input_error(path, f"cannot read: {err.strerror or err}") from None


def _modules(path: Path) -> list[dict[str, Any]] | None:
    """sentence-transformers' module list of ``path`` (``None``: not such a directory)."""
    file = path / "modules.json"
    if not file.is_file():
        return None
    modules = _read_json(file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise input_error(file, "expected a list of modules")
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def _module_kind(module: dict[str, Any]) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def has_ranking_head(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a trained ranking head (a ``rerank`` config or a classifier)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        return False
    config = _read_json(file)
    if not isinstance(config, dict):
        return False
    architectures = config.get("architectures") or []
    return bool(config.get("rerank")) or any(
        str(a).endswith("ForSequenceClassification") for a in architectures
    )


def detect_kind(path: str | os.PathLike[str]) -> ModelKind:
    """How ``rerank score --kind auto`` scores with the model at ``path`` (or ``"default"``).

    A directory with a trained ranking head (``config.json`` has a ``rerank`` section or a
    ``*ForSequenceClassification`` architecture) is a cross-encoder. A sentence-transformers
    directory (``modules.json`` with a ``Pooling`` module) without one is a bi-encoder:
    its cross-encoder head would be random. So is ``"default"`` (all-MiniLM-L6-v2). Any
    other directory is a cross-encoder (scored with a fresh head, with a warning).
    """
    resolved = resolve_model_path(path)
    if not resolved.is_dir():
        raise input_error(resolved, "model directory does not exist")
    if has_ranking_head(resolved):
        return "cross-encoder"
    modules = _modules(resolved)
    if modules is not None and any(_module_kind(m) == "Pooling" for m in modules):
        return "bi-encoder"
    return "cross-encoder"


def scoring_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that decide a bi-encoder's scores: weights, tokenizer and pooling configs.

    For provenance (the teacher-score store hashes them): the encoder's weight files
    (``*.safetensors``, ``pytorch_model*.bin``), its ``config.json`` and tokenizer files,
    and the sentence-transformers module configs, those present.
    """
    root = resolve_model_path(path)
    layout = checkpoint_layout(root)
    encoder_dir = Path(layout["encoder_dir"])
    weights = sorted([*encoder_dir.glob("*.safetensors"), *encoder_dir.glob("pytorch_model*.bin")])
    if not weights:
        raise input_error(encoder_dir, "no model weights (model.safetensors) found")
    names = (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "sentence_bert_config.json",
    )
    configs = [encoder_dir / n for n in names]
    configs += [root / "modules.json", root / "config_sentence_transformers.json"]
    configs += sorted(root.glob("*_Pooling/config.json"))
    return weights + sorted({c for c in configs if c.is_file()})


def _pooling_modes(config: dict[str, Any], where: Path) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_FLAGS.items() if config.get(key))
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise input_error(where, f"unknown pooling mode(s) {unknown}; known: {list(POOLING_MODES)}")
    return modes or ("mean",)


def checkpoint_layout(path: Path) -> dict[str, Any]:
    """Where the encoder is and how to pool, normalise, truncate and prompt."""
    layout: dict[str, Any] = {
        "encoder_dir": path,
        "pooling": ("mean",),
        "normalize": False,
        "max_seq_length": None,
        "do_lower_case": False,
        "prompts": {},
    }
    modules = _modules(path)
    if modules is None:
        return layout
    for module in modules:
        kind, sub = _module_kind(module), path / str(module.get("path", ""))
        if kind == "Transformer":
            layout["encoder_dir"] = sub
            for name in ("sentence_bert_config.json", "sentence_roberta_config.json"):
                if (sub / name).is_file():
                    config = _read_json(sub / name)
                    if isinstance(config, dict):
                        layout["max_seq_length"] = config.get("max_seq_length")
                        layout["do_lower_case"] = bool(config.get("do_lower_case", False))
                    break
        elif kind == "Pooling":
            config = _read_json(sub / "config.json") if (sub / "config.json").is_file() else {}
            config = config if isinstance(config, dict) else {}
            layout["pooling"] = _pooling_modes(config, sub / "config.json")
            layout["include_prompt"] = bool(config.get("include_prompt", True))
        elif kind == "Normalize":
            layout["normalize"] = True
        else:
            raise input_error(
                path / "modules.json",
                f"module '{module.get('type')}' is not supported for bi-encoder scoring "
                "(only Transformer, Pooling and Normalize)",
            )
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        config = _read_json(st_config)
        prompts = config.get("prompts") if isinstance(config, dict) else None
        if isinstance(prompts, dict):
            layout["prompts"] = {
                k: str(prompts[k]) for k in ("query", "document") if prompts.get(k)
            }
    if layout["prompts"] and not layout.get("include_prompt", True):
        raise input_error(
            path, "prompts excluded from pooling (include_prompt = false) are not supported"
        )
    return layout


def pool(hidden: torch.Tensor, mask: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """sentence-transformers' pooling of ``hidden [b, t, d]`` (fp32) under ``mask [b, t]``."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    width = hidden.shape[-1]
    out = []
    for mode in modes:
        if mode == "cls":  # the first attended position (left padding aware)
            first = mask.to(torch.int).argmax(dim=1)
            out.append(hidden.gather(1, first.view(-1, 1, 1).expand(-1, 1, width)).squeeze(1))
        elif mode == "max":
            out.append(hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * m).sum(dim=1)
            count = torch.clamp(m.sum(dim=1), min=1e-9)
            out.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            weights = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype, device=hidden.device)
            pads = mask.to(torch.int32).argmax(dim=1).to(hidden.dtype)
            w = m * (weights.view(1, -1, 1) - pads.view(-1, 1, 1))
            out.append((hidden * w).sum(dim=1) / torch.clamp(w.sum(dim=1), min=1e-9))
        elif mode == "lasttoken":
            seq = hidden.shape[1]
            values, index = mask.flip(1).max(1)
            index = torch.where(values == 0, seq - 1, index)
            last = (seq - index - 1).view(-1, 1, 1).expand(-1, 1, width)
            out.append((hidden * m).gather(1, last).squeeze(1))
        else:  # checked when loading
            raise RerankError(f"unknown pooling mode '{mode}'")
    return torch.cat(out, dim=-1)
