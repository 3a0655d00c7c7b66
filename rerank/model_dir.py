"""A model directory on disk: its weights, its ``config.json`` ``rerank`` section, its loading.

A saved :class:`rerank.model.RerankModel` is an ordinary Hugging Face directory plus
sidecars (:data:`HEADS_FILE`, :data:`MLM_FILE`) and a ``rerank`` section in
``config.json`` (primary head, head specs, the input lengths it was trained with, the
truncation policy). Weights are read from safetensors files only (:func:`check_weights`).
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rerank.errors import RerankError, first_line

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_QUERY_LENGTH",
    "HEADS_FILE",
    "INPUT_LENGTH_KEYS",
    "MLM_FILE",
    "check_weights",
    "default_max_length",
    "load_encoder",
    "position_limit",
    "quiet_transformers",
    "saved_input_lengths",
    "saved_meta",
    "saved_truncation",
]

HEADS_FILE = "rerank_heads.safetensors"
INPUT_LENGTH_KEYS = ("max_length", "max_query_length")
DEFAULT_MAX_LENGTH, DEFAULT_MAX_QUERY_LENGTH = 256, 64
MLM_FILE = "rerank_mlm_head.safetensors"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars; we log what matters ourselves."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_weights(path: Path) -> None:
    """Refuse a model directory without safetensors weights, or with a damaged one.

    Reads each ``*.safetensors`` header and checks that the file holds every tensor it
    declares (a truncated copy does not), so the error names the file instead of
    surfacing from deep inside ``from_pretrained``.
    """
    from safetensors import SafetensorError, safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in path.glob("*.bin")) or sorted(
            p.name for p in path.glob("*.pt*")
        )
        found = f"only {', '.join(pickled)} (pickle files, which can run code when loaded)"
        raise RerankError(
            f"{path}: no model.safetensors; found {found if pickled else 'no weights'}. "
            "rerank reads safetensors weights only: convert them where you trust the file "
            "(save_pretrained(dir, safe_serialization=True))"
        )
    for file in files:
        try:
            with safe_open(str(file), "pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key).get_shape()
        except (SafetensorError, OSError, ValueError) as err:
            detail = first_line(err)
            raise RerankError(f"{file}: damaged safetensors file ({detail})") from None


def load_encoder(path: Path, num_labels: int) -> tuple[Any, Any, bool]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not path.is_dir():
        raise RerankError(f"{path}: model directory does not exist")
    if not (path / "config.json").is_file():
        raise RerankError(f"{path}: no config.json: expected a Hugging Face model directory")
    check_weights(path)
    try:
        with quiet_transformers():
            encoder, info = AutoModelForSequenceClassification.from_pretrained(
                str(path),
                num_labels=num_labels,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                use_safetensors=True,
            )
    except (OSError, ValueError, RuntimeError) as err:
        detail = first_line(err)
        raise RerankError(f"{path}: cannot load model: {detail}") from None
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # tokenizers raise many kinds (JSON, Rust, OSError)
        detail = first_line(err)
        raise RerankError(f"{path}: cannot load the tokenizer: {detail}") from None
    fresh = bool(info.get("missing_keys")) or bool(info.get("mismatched_keys"))
    return encoder, tokenizer, fresh


def position_limit(config: Any) -> int | None:
    """Tokens a model config's position embeddings cover (``None``: no limit known).

    RoBERTa's positions start after the pad index, so it covers ``pad_token_id + 1`` fewer.
    """
    limit = getattr(config, "max_position_embeddings", None)
    if not limit or limit < 0:
        return None
    if "roberta" in str(getattr(config, "model_type", "")):
        limit -= (getattr(config, "pad_token_id", 0) or 0) + 1
    return int(limit) or None


def default_max_length(config: Any) -> int:
    """The length a model not trained here gets: 256, kept within its position embeddings.

    The one rule for :func:`saved_input_lengths`, :meth:`rerank.Reranker.from_pretrained`
    and ``rerank export``.
    """
    limit = position_limit(config)
    return min(DEFAULT_MAX_LENGTH, limit) if limit else DEFAULT_MAX_LENGTH


def saved_input_lengths(path: str | Path) -> dict[str, int]:
    """The input lengths a model directory was trained with (else the defaults, 256 / 64).

    The one source of a model's ``max_length`` / ``max_query_length`` downstream of its
    training (teacher scoring and its provenance). A model not trained here gets the
    defaults, ``max_length`` kept within its position embeddings
    (:func:`default_max_length`).
    """
    saved = saved_meta(Path(path))
    defaults = {"max_length": DEFAULT_MAX_LENGTH, "max_query_length": DEFAULT_MAX_QUERY_LENGTH}
    lengths = {k: int(saved.get(k, v)) for k, v in defaults.items()}
    file = Path(path) / "config.json"
    if "max_length" not in saved and file.is_file():
        config = types.SimpleNamespace(**json.loads(file.read_text()))
        lengths["max_length"] = default_max_length(config)
    return lengths


def saved_truncation(saved: dict[str, Any], path: Path) -> str:
    from rerank.encoding import TRUNCATIONS

    value = saved.get("truncation", "query_cap")
    if value not in TRUNCATIONS:
        raise RerankError(
            f"{path / 'config.json'}: rerank.truncation: expected one of "
            f"{', '.join(TRUNCATIONS)}, got {value!r}"
        )
    return value


def saved_meta(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not cfg.is_file():
        return {}
    try:
        return dict(json.loads(cfg.read_text()).get("rerank") or {})
    except json.JSONDecodeError as err:
        raise RerankError(f"{cfg}: not valid JSON ({err.msg} at line {err.lineno})") from err
