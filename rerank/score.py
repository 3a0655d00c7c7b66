"""Batch inference: score (query, document) pairs with a saved model.

Two entry points share one core:

- :func:`score_frame` scores an in-memory polars frame with a loaded model; the
  training loop's evaluation and the rekindle teacher-scoring stage call it.
- :func:`score_file` streams a table that may be larger than memory (Parquet, TSV,
  JSONL) in chunks of ``chunk_rows`` and writes ``query_id, doc_id, score`` (TSV,
  Parquet, JSONL by extension, or a TREC run for ``.run``/``.trec``) atomically.
  Under ``torchrun`` every rank scores a contiguous slice and rank 0 merges them.
  It lives in :mod:`rerank.score_files` (with :func:`rerank_run`) and is imported here.

Speed comes from dense batches: inside a chunk the pairs are tokenized once, sorted by
token length (longest first, as sentence-transformers does), cut into batches of
``batch_size`` pairs or of at most ``max_tokens`` padded tokens, and padded only to
the longest pair of their batch; the scores are put back in input order. bf16 (encoder
weights and activations in bf16, pooler and heads in fp32: :mod:`rerank.precision`) is
used where the hardware computes it natively (CUDA with bf16, CPUs with AVX512-BF16 or
AMX); ``benchmarks/score.py`` measures its PNR against fp32 on Cranfield.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rerank.encoding import PairEncoder
from rerank.errors import RerankError, input_error
from rerank.inference import (
    eval_mode,
    plan_batches,
    resolve_device,
)
from rerank.model import RerankModel
from rerank.precision import Precision, resolve_precision
from rerank.streaming import progress_bar
from rerank.tables.columns import TEXT_COLUMNS

__all__ = [
    "ScoreSummary",
    "load_scoring_model",
    "plan_batches",
    "rerank_run",
    "resolve_precision",
    "score_file",
    "score_frame",
]

log = logging.getLogger(__name__)

_device = resolve_device  # the old private name (rerank.dense, rerank.reranker used it)


# -- batching and the core -----------------------------------------------------------


def _score_encoded(
    model: Any,
    encoder: PairEncoder,
    texts: pl.DataFrame,
    *,
    heads: tuple[str, ...],
    batch_size: int,
    max_tokens: int | None,
    precision: str,
    bar: Any = None,
) -> np.ndarray:
    """Scores ``[n, len(heads)]`` of ``texts`` (columns query, title, summary), input order.

    The one inference core (:mod:`rerank.inference`) with the one precision policy
    (:func:`rerank.precision.inference_precision`), as the training loop's evaluation and
    GLUE prediction use it.
    """
    from rerank.inference import score_texts, torch_forward

    with torch_forward(model, heads, precision) as forward:
        return score_texts(
            forward,
            encoder,
            texts,
            n_outputs=len(heads),
            batch_size=batch_size,
            max_tokens=max_tokens,
            bar=bar,
        )


def _text_columns(frame: pl.DataFrame, path: str | os.PathLike[str] | None) -> pl.DataFrame:
    missing = [c for c in TEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise input_error(path, f"missing column(s) {missing}; have {frame.columns}")
    return frame.select(pl.col(c).cast(pl.String).fill_null("") for c in TEXT_COLUMNS)


def _check_heads(model: Any, heads: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(heads) if heads else (model.primary,)
    for name in names:
        spec = model.specs.get(name)
        if spec is None:
            raise RerankError(f"model has no head '{name}' (it has {sorted(model.specs)})")
        if spec.kind == "classification":
            raise RerankError(f"head '{name}' is a classification head; scoring needs one number")
    return names


def score_frame(
    model: Any,
    frame: pl.DataFrame,
    *,
    heads: Sequence[str] | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    max_first_length: int | None = None,
    max_tokens: int | None = None,
    precision: Precision = "fp32",
    progress: bool = False,
) -> np.ndarray:
    """Score every row of ``frame`` with ``model`` (in memory).

    Parameters
    ----------
    model
        A :class:`rerank.model.RerankModel` (any device); its train/eval mode is restored.
    frame
        Columns ``query, title, summary`` (others are ignored; nulls count as empty).
    heads
        Heads to score with; ``None``: the primary head only.
    batch_size, max_tokens
        Batch limits (see :func:`plan_batches`).
    max_length, max_first_length
        Truncation (see :class:`rerank.encoding.PairEncoder`); ``None``: the lengths the
        model was trained with (``config.json`` ``rerank.max_length`` and
        ``rerank.max_query_length``), else 256 and 64.
    precision
        ``fp32``, ``bf16`` or ``auto`` (bf16 where the device computes it natively).
        ``fp32`` by default here: this is the pipeline's building block (training eval,
        rekindle stages), whose recorded figures must not depend on the machine; the
        user-facing scorers (:class:`rerank.Reranker`, :func:`score_file`, ``rerank
        score``) default to :data:`rerank.precision.DEFAULT_PRECISION`.
    progress
        Show a progress bar (pairs/s and ETA) on stderr.

    Returns
    -------
    numpy.ndarray
        float32 scores in row order: shape ``[n]`` when ``heads`` is ``None``, else
        ``[n, len(heads)]`` with columns in ``heads`` order.
    """
    names = _check_heads(model, heads)
    texts = _text_columns(frame, None)
    encoder = model.pair_encoder(max_length=max_length, max_first_length=max_first_length)
    model.check_max_length(encoder.max_length)
    device = next(model.parameters()).device
    prec = resolve_precision(precision, device)
    with eval_mode(model), progress_bar(texts.height, progress) as bar:
        scores = _score_encoded(
            model,
            encoder,
            texts,
            heads=names,
            batch_size=batch_size,
            max_tokens=max_tokens,
            precision=prec,
            bar=bar,
        )
    return scores[:, 0] if heads is None else scores


def load_scoring_model(model_dir: str | os.PathLike[str], *, device: torch.device) -> Any:
    """Load a saved model for scoring; warn when its ranking head was never trained."""
    from rerank.config import resolve_model_path
    from rerank.dense_layout import has_ranking_head

    path = Path(model_dir)
    model = RerankModel.from_pretrained(path)
    if not has_ranking_head(resolve_model_path(path)):
        log.warning(
            "%s has no trained ranking head: its scores come from a randomly initialised "
            "head (train one with `rerank train`)",
            path,
        )
    return model.to(device).eval()


# The file scorers live in rerank.score_files; imported here, where users find them.
from rerank.score_files import ScoreSummary, rerank_run, score_file  # noqa: E402
