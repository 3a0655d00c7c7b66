"""Batch inference: score (query, document) pairs with a saved model.

Two entry points share one core:

- :func:`score_frame` scores an in-memory polars frame with a loaded model; the
  training loop's evaluation and the rekindle teacher-scoring stage call it.
- :func:`score_file` streams a table that may be larger than memory (Parquet, TSV,
  JSONL) in chunks of ``chunk_rows`` and writes ``query_id, doc_id, score`` (TSV,
  Parquet, JSONL by extension, or a TREC run for ``.run``/``.trec``) atomically.
  Under ``torchrun`` every rank scores a contiguous slice and rank 0 merges them.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rerank.atomic import check_output
from rerank.encoding import PairEncoder
from rerank.errors import RerankError, input_error
from rerank.inference import (
    check_limits,
    eval_mode,
    plan_batches,
    resolve_device,
    torch_threads,
)
from rerank.model import RerankModel
from rerank.precision import DEFAULT_PRECISION, Precision, resolve_precision
from rerank.streaming import output_format, progress_bar, score_pairs_file
from rerank.tables.chunks import scan_pairs
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


# -- files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_file` did."""

    rows: int
    seconds: float
    precision: str
    device: str
    world_size: int = 1
    rank: int = 0
    backend: str = "torch"
    threads: int = 0

    @property
    def pairs_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


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


def score_file(
    model_dir: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    max_first_length: int | None = None,
    max_tokens: int | None = None,
    chunk_rows: int = 8192,
    heads: Sequence[str] | None = None,
    precision: Precision = DEFAULT_PRECISION,
    device: str | None = None,
    progress: bool | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> ScoreSummary:
    """Score a pairs table with a saved model and write the scores, streaming.

    Parameters
    ----------
    model_dir
        A saved model directory (``RerankModel.save_pretrained``, or any HF encoder).
    data_path
        ``.parquet``, ``.tsv`` (header) or ``.jsonl`` with ``query_id, doc_id, query,
        title, summary`` (other columns such as ``label`` are ignored).
    out_path
        ``.tsv``, ``.parquet`` or ``.jsonl`` (``query_id, doc_id`` and one column per
        head: ``score`` by default), or ``.run``/``.trec`` (a TREC run; one head only).
        Table rows keep the input order. Written atomically: on any error nothing appears.
    batch_size, max_tokens, chunk_rows
        At most ``batch_size`` pairs and (if given) ``max_tokens`` padded tokens a batch;
        ``chunk_rows`` rows read, tokenized and length-sorted at a time (the memory).
    max_length, max_first_length
        Truncation (:class:`rerank.encoding.PairEncoder`); ``None``: the lengths the model
        was trained with (``config.json`` ``rerank`` section), else 256 and 64.
    heads
        Heads to write, one column each (named after the head); ``None``: the primary
        head as ``score``.
    precision, device, threads
        ``fp32``, ``bf16`` or ``auto`` (bf16 where the device computes it natively;
        :data:`rerank.precision.DEFAULT_PRECISION`, as ``rerank score``); ``cpu``,
        ``cuda:1``... (``None``: CUDA when available, ``LOCAL_RANK``); CPU threads
        (``None``: torch's default, the physical cores).
    progress
        Progress bar with pairs/s and ETA on stderr (``None``: only on a terminal).
    backend
        ``torch``, ``onnx``, ``openvino`` (an export of ``rerank export``) or ``auto``:
        what the directory holds (:func:`rerank.backends.resolve_backend`). ``precision``
        may also be ``int8`` there (the int8 export).

    Notes
    -----
    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank scores a contiguous slice of the
    rows into part files beside ``out_path``, merged by rank 0; the output directory
    must be shared by the ranks (one machine, or a shared file system).
    """
    check_limits(batch_size=batch_size, chunk_rows=chunk_rows, max_tokens=max_tokens)
    if max_length is not None and max_length < 8:
        raise RerankError(f"max_length: expected at least 8 tokens, got {max_length}")
    fmt = output_format(out_path, n_heads=len(heads) if heads else 1)
    check_output(out_path, {"--data": data_path})
    lazy, source = scan_pairs(data_path)
    dev = resolve_device(device)
    from rerank.backends import resolve_backend

    kind = resolve_backend(model_dir, backend, precision=precision, device=device)
    options = dict(
        fmt=fmt, precision=precision, threads=threads, heads=heads, progress=progress,
        batch_size=batch_size, max_tokens=max_tokens, chunk_rows=chunk_rows,
        max_length=max_length, max_first_length=max_first_length,
    )  # fmt: skip
    if kind != "torch":  # an exported graph: the same streaming, another forward
        from rerank.inference import score_exported_file

        return score_exported_file(model_dir, lazy, source, out_path, backend=kind, **options)
    return _score_file_torch(model_dir, lazy, source, out_path, device=dev, **options)


def _score_file_torch(
    model_dir: str | os.PathLike[str],
    lazy: pl.LazyFrame,
    source: Any,
    out_path: str | os.PathLike[str],
    *,
    fmt: str,
    device: torch.device,
    precision: Precision,
    threads: int | None,
    heads: Sequence[str] | None,
    batch_size: int,
    max_tokens: int | None,
    chunk_rows: int,
    max_length: int | None,
    max_first_length: int | None,
    progress: bool | None,
) -> ScoreSummary:
    """:func:`score_file` with the PyTorch model (the checked scan and output format)."""
    model = load_scoring_model(model_dir, device=device)
    names = _check_heads(model, heads)
    prec = resolve_precision(precision, device)
    encoder = model.pair_encoder(max_length=max_length, max_first_length=max_first_length)
    model.check_max_length(encoder.max_length)

    def scores_of(chunk: pl.DataFrame, bar: Any) -> np.ndarray:
        return _score_encoded(
            model,
            encoder,
            chunk,
            heads=names,
            batch_size=batch_size,
            max_tokens=max_tokens,
            precision=prec,
            bar=bar,
        )

    with eval_mode(model), torch_threads(threads):
        shards, seconds = score_pairs_file(
            lazy,
            source,
            out_path,
            scores_of,
            model=model_dir,
            fmt=fmt,
            columns=list(names) if heads else ["score"],
            chunk_rows=chunk_rows,
            progress=progress,
        )
    threads_used = threads or torch.get_num_threads()
    return ScoreSummary(
        shards.rows, seconds, prec, str(device), shards.world, shards.rank, "torch", threads_used
    )


def rerank_run(
    model_dir: str | os.PathLike[str],
    run_path: str | os.PathLike[str],
    queries_path: str | os.PathLike[str],
    corpus_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    depth: int | None = 100,
    scorer: Any = None,
    **options: Any,
) -> ScoreSummary:
    """Re-rank a first-stage TREC run: score each query's top ``depth`` documents.

    Parameters
    ----------
    model_dir
        A saved model directory.
    run_path
        The first-stage run: TREC (``.run``/``.trec``) or a table ``query_id, doc_id, score``.
    queries_path, corpus_path
        Query and document texts, as ``rerank pairs`` reads them
        (:func:`rerank.data.read_queries`, :func:`rerank.data.read_documents`: a corpus
        may have ``text`` only, without a title; ``.gz`` and ``.csv`` work too).
    out_path
        The re-ranked output; ``.run``/``.trec`` writes a TREC run ranked by the model's
        score, a table keeps the first-stage order.
    depth
        Documents re-ranked per query (the first stage's best first); ``None``: all. The
        rest of the run is left out of the output.
    scorer
        Scores the pairs table: :func:`score_file` (default; a cross-encoder) or
        :func:`rerank.dense.score_file` (a bi-encoder).
    options
        Passed to ``scorer`` (``batch_size``, ``precision``, ``device``...).

    Examples
    --------
    >>> rerank_run("model", "bm25.run", "queries.tsv", "corpus.jsonl", "model.run")  # doctest: +SKIP
    """
    import tempfile

    from rerank.data import read_scores
    from rerank.pairs import read_documents, read_queries, run_pairs

    output_format(out_path, n_heads=len(options.get("heads") or ()) or 1)
    run = read_scores(run_path)
    pairs = run_pairs(
        run, read_queries(queries_path), read_documents(corpus_path), depth=depth, run_path=run_path
    )
    parent = Path(out_path).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rerank-run.", dir=parent) as scratch:
        pairs_path = Path(scratch) / "pairs.parquet"
        pairs.write_parquet(pairs_path)
        return (scorer or score_file)(model_dir, pairs_path, out_path, **options)
