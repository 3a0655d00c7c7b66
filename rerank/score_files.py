"""Scoring files: a pairs table in, ``query_id, doc_id, score`` out, streaming.

:func:`score_file` scores with a cross-encoder (PyTorch, or an exported ONNX Runtime /
OpenVINO graph: :func:`rerank.inference.score_exported_file`), :func:`dense_score_file`
with a bi-encoder (:class:`rerank.dense.BiEncoder`), :func:`rerank_run` re-ranks a
first-stage TREC run with either. All of them stream through the one file loop,
:func:`rerank.streaming.score_pairs_file`: chunks of ``chunk_rows`` rows, ``torchrun``
shards, non-finite scores refused, the output written atomically. The in-memory core is
:func:`rerank.score.score_frame`; these are importable from :mod:`rerank.score` (and
:func:`dense_score_file` as ``rerank.dense.score_file``).
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
from rerank.errors import RerankError, input_error
from rerank.inference import check_limits, eval_mode, resolve_device, torch_threads
from rerank.precision import DEFAULT_PRECISION, Precision, resolve_precision
from rerank.streaming import output_format, score_pairs_file
from rerank.tables.chunks import scan_pairs

__all__ = ["ScoreSummary", "dense_score_file", "rerank_run", "score_file"]

log = logging.getLogger(__name__)


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
    from rerank.score import _check_heads, _score_encoded, load_scoring_model

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


def dense_score_file(
    model: Any,
    data_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    max_tokens: int | None = None,
    max_length: int | None = None,
    chunk_rows: int = 8192,
    precision: Precision = DEFAULT_PRECISION,
    device: str | None = None,
    progress: bool | None = None,
) -> ScoreSummary:
    """Score a pairs table with a bi-encoder and write the scores, streaming.

    ``rerank.dense.score_file``, the bi-encoder counterpart of :func:`score_file`: the same
    inputs (``query_id, doc_id, query, title, summary``), outputs (``.tsv``, ``.parquet``,
    ``.jsonl`` with ``query_id, doc_id, score`` in input order, or a TREC run for
    ``.run``/``.trec``), chunking, ``torchrun`` sharding and atomic write (nothing appears
    on an error). ``model`` is a directory (or ``"default"``) for
    :meth:`BiEncoder.from_pretrained`, or a loaded :class:`BiEncoder`; ``max_length`` is
    its ``max_seq_length`` (``None``: the checkpoint's). Distinct texts are encoded once
    per chunk of ``chunk_rows`` rows.

    Returns
    -------
    rerank.score.ScoreSummary
    """
    from rerank.dense import BiEncoder

    check_limits(batch_size=batch_size, chunk_rows=chunk_rows, max_tokens=max_tokens)
    if max_length is not None and max_length < 2:
        raise RerankError(f"max_length: expected at least 2 tokens, got {max_length}")
    fmt = output_format(out_path)
    if Path(out_path).resolve() == Path(data_path).resolve():
        raise input_error(out_path, "is also the input --data; choose another output file")
    lazy, source = scan_pairs(data_path)
    if isinstance(model, BiEncoder):
        dense = model
    else:
        dense = BiEncoder.from_pretrained(
            model, device=resolve_device(device), max_seq_length=max_length, precision=precision
        )

    def scores_of(chunk: pl.DataFrame, bar: Any) -> np.ndarray:
        scores = dense.score_frame(chunk, batch_size=batch_size, max_tokens=max_tokens)
        if bar is not None:
            bar.update(chunk.height)
        return scores

    shards, seconds = score_pairs_file(
        lazy,
        source,
        out_path,
        scores_of,
        model=dense.path,
        fmt=fmt,
        columns=["score"],
        chunk_rows=chunk_rows,
        progress=progress,
    )
    prec = resolve_precision(dense.precision, dense.device)
    return ScoreSummary(shards.rows, seconds, prec, str(dense.device), shards.world, shards.rank)
