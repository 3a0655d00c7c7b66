"""The inference core: encoded (query, document) pairs -> head outputs, batch by batch.

:func:`score_texts` tokenizes a chunk of pairs once, cuts it into length-sorted batches
(:func:`rerank.score.plan_batches`), pads each batch to its longest pair, calls a
``forward`` function and puts the outputs back in input order. ``forward`` is what
differs between backends: a PyTorch model under the precision policy of
:mod:`rerank.precision`, or an exported ONNX Runtime / OpenVINO graph
(:mod:`rerank.backends`).

:func:`score_exported_file` is ``rerank score`` on an exported graph: the same streaming,
sharding, progress bar and atomic output as :func:`rerank.score.score_file` (it uses the
same :func:`rerank.streaming.stream_scores`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from rerank.errors import RerankError

__all__ = ["exported_forward", "score_exported_file", "score_texts", "torch_threads"]

Forward = Callable[[dict[str, Any]], Any]


def score_texts(
    forward: Forward,
    encoder: Any,
    texts: pl.DataFrame,
    *,
    n_outputs: int = 1,
    batch_size: int = 64,
    max_tokens: int | None = None,
    bar: Any = None,
) -> np.ndarray:
    """Outputs ``[n, n_outputs]`` (float32) of ``texts`` (columns query, title, summary).

    Parameters
    ----------
    forward
        ``forward(batch) -> [b]`` or ``[b, n_outputs]`` (array or tensor), where ``batch``
        is :meth:`rerank.encoding.PairEncoder.collate` output (int64 tensors).
    encoder
        The :class:`rerank.encoding.PairEncoder` (truncation policy and lengths).
    batch_size, max_tokens
        Batch limits (:func:`rerank.score.plan_batches`); batches are longest first.
    bar
        A progress bar advanced by the pairs of each batch, or ``None``.
    """
    from rerank.score import plan_batches

    n = texts.height
    out = np.empty((n, n_outputs), dtype=np.float32)
    if n == 0:
        return out
    encoded = encoder.encode(
        texts.get_column("query").to_list(),
        list(zip(texts["title"].to_list(), texts["summary"].to_list(), strict=True)),
    )
    for index in plan_batches(encoded.lengths(), batch_size=batch_size, max_tokens=max_tokens):
        scores = forward(encoder.collate(encoded.select(index)))
        if hasattr(scores, "detach"):
            scores = scores.detach().float().cpu().numpy()
        out[index] = np.asarray(scores, dtype=np.float32).reshape(len(index), n_outputs)
        if bar is not None:
            bar.update(len(index))
    return out


def exported_forward(runner: Callable[[dict[str, np.ndarray]], np.ndarray]) -> Forward:
    """``forward`` of an exported graph (:class:`rerank.backends.ExportedRunner`)."""

    def forward(batch: dict[str, Any]) -> np.ndarray:
        return runner({k: v.numpy() for k, v in batch.items()})

    return forward


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the context (``None``: unchanged)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise RerankError(f"threads: expected a positive integer, got {threads}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_finite(
    scores: np.ndarray, chunk: pl.DataFrame, model_dir: str | os.PathLike[str]
) -> None:
    """Refuse non-finite scores (damaged weights, a diverged model): no file that looks fine."""
    bad = ~np.isfinite(scores).reshape(len(scores), -1).all(axis=1)
    if bad.any():
        i = int(bad.argmax())
        raise RerankError(
            f"{model_dir}: the model gives a non-finite score ({scores[i].tolist()}) "
            f"to (query_id {chunk[i, 'query_id']!r}, doc_id {chunk[i, 'doc_id']!r}); "
            "its weights are damaged or its training diverged; nothing was written"
        )


def score_exported_file(
    model_dir: str | os.PathLike[str],
    lazy: pl.LazyFrame,
    source: Any,
    out_path: str | os.PathLike[str],
    *,
    fmt: str,
    backend: str,
    precision: str,
    threads: int | None,
    heads: Sequence[str] | None,
    batch_size: int,
    max_length: int | None,
    max_first_length: int | None,
    max_tokens: int | None,
    chunk_rows: int,
    progress: bool | None,
) -> Any:
    """:func:`rerank.score.score_file` with an exported graph (``backend`` onnx/openvino).

    ``lazy``, ``source`` and ``fmt`` are the checked input scan and output format
    (:func:`rerank.streaming.scan_pairs`, :func:`rerank.streaming.output_format`).
    Returns a :class:`rerank.score.ScoreSummary`.
    """
    from rerank.backends import check_primary_score, load_runner, pair_encoder
    from rerank.score import ScoreSummary
    from rerank.streaming import stream_scores

    check_primary_score(model_dir, heads)
    encoder = pair_encoder(model_dir, max_length=max_length, max_first_length=max_first_length)
    runner = load_runner(model_dir, backend, precision=precision, threads=threads)
    forward = exported_forward(runner)
    columns = list(heads) if heads else ["score"]

    def score_chunk(chunk: pl.DataFrame, bar: Any) -> pl.DataFrame:
        scores = score_texts(
            forward, encoder, chunk, batch_size=batch_size, max_tokens=max_tokens, bar=bar
        )
        check_finite(scores, chunk, model_dir)
        return chunk.select("query_id", "doc_id").with_columns(
            pl.Series(columns[0], scores[:, 0], dtype=pl.Float64)
        )

    t0 = time.perf_counter()
    shards = stream_scores(
        lazy,
        source,
        out_path,
        score_chunk,
        fmt=fmt,
        columns=columns,
        chunk_rows=chunk_rows,
        progress=progress,
    )
    return ScoreSummary(
        shards.rows,
        time.perf_counter() - t0,
        runner.precision,
        "cpu",
        shards.world,
        shards.rank,
        backend=backend,
        threads=runner.threads,
    )
