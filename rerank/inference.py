"""The inference core: encoded (query, document) pairs -> head outputs, batch by batch.

One loop (:func:`run_batches`) and one precision policy (:func:`torch_forward`, which
applies :func:`rerank.precision.inference_precision`: encoder in bf16 where asked, pooler
and heads in fp32) for every scorer: ``rerank score`` / :func:`rerank.score.score_frame`
(and through it teacher scoring and the rekindle stage evaluations), the training loop's
evaluation (:func:`rerank.training.evaluation.evaluate_ranking`) and GLUE prediction
(:func:`rerank.glue.predict.predict`). The numbers that choose ``best/`` are therefore the
ones ``rerank score`` + ``rerank evaluate`` report at the same precision (tested).

:func:`score_texts` tokenizes a chunk of pairs once, cuts it into length-sorted batches
(:func:`plan_batches`), pads each batch to its longest pair, calls a
``forward`` function and puts the outputs back in input order. ``forward`` is what
differs between backends: a PyTorch model (:func:`torch_forward`), or an exported ONNX
Runtime / OpenVINO graph (:func:`exported_forward`, :mod:`rerank.backends`).

:func:`score_exported_file` is ``rerank score`` on an exported graph: the same streaming,
sharding, progress bar and atomic output as :func:`rerank.score.score_file` (it uses the
same :func:`rerank.streaming.stream_scores`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from rerank.errors import RerankError

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_finite",
    "check_limits",
    "eval_mode",
    "exported_forward",
    "plan_batches",
    "resolve_device",
    "run_batches",
    "score_encoded",
    "score_exported_file",
    "score_texts",
    "torch_forward",
    "torch_threads",
]

Forward = Callable[[dict[str, Any]], Any]


def plan_batches(
    lengths: Sequence[int] | np.ndarray,
    *,
    batch_size: int,
    max_tokens: int | None = None,
    pad_to_multiple_of: int = 8,
) -> list[np.ndarray]:
    """Cut inputs into length-sorted batches (longest first).

    A batch holds at most ``batch_size`` inputs and, with ``max_tokens``, at most that
    many tokens once padded to its longest input (rounded up to ``pad_to_multiple_of``);
    an input longer than the budget still gets a batch of its own.

    Returns
    -------
    list of numpy.ndarray
        Indices into ``lengths``, one array per batch; together a permutation.

    Examples
    --------
    >>> [b.tolist() for b in plan_batches([3, 9, 5, 9], batch_size=2)]
    [[1, 3], [2, 0]]
    >>> [b.tolist() for b in plan_batches([3, 9, 5, 9], batch_size=4, max_tokens=32)]
    [[1, 3], [2, 0]]
    """
    from rerank.encoding import padded_width  # (encoding imports torch; this module not yet)

    check_limits(batch_size=batch_size, max_tokens=max_tokens)
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        if max_tokens is not None:
            padded = padded_width(int(lengths[order[start]]), pad_to_multiple_of)  # longest first
            stop = min(stop, start + max(1, max_tokens // max(padded, 1)))
        batches.append(order[start:stop])
        start = stop
    return batches


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """``model`` in eval mode under ``torch.inference_mode``; its train/eval mode restored."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def resolve_device(device: str | None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:1``...; ``None`` or ``auto``: CUDA (``LOCAL_RANK``) when available."""
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(device)


def check_limits(*, batch_size: int, chunk_rows: int = 1, max_tokens: int | None = None) -> None:
    """Refuse batch and chunk limits that are not positive (one line each)."""
    for name, value in (("chunk_rows", chunk_rows), ("batch_size", batch_size)):
        if value < 1:
            raise RerankError(f"{name}: expected a positive integer, got {value}")
    if max_tokens is not None and max_tokens < 1:
        raise RerankError(f"max_tokens: expected a positive integer, got {max_tokens}")


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
        Batch limits (:func:`plan_batches`); batches are longest first.
    bar
        A progress bar advanced by the pairs of each batch, or ``None``.
    """
    if texts.height == 0:
        return np.empty((0, n_outputs), dtype=np.float32)
    encoded = encoder.encode(
        texts.get_column("query").to_list(),
        list(zip(texts["title"].to_list(), texts["summary"].to_list(), strict=True)),
    )
    return score_encoded(
        forward,
        encoder,
        encoded,
        n_outputs=n_outputs,
        batch_size=batch_size,
        max_tokens=max_tokens,
        bar=bar,
    )


def score_encoded(
    forward: Forward,
    encoder: Any,
    encoded: Any,
    *,
    n_outputs: int = 1,
    batch_size: int = 64,
    max_tokens: int | None = None,
    bar: Any = None,
) -> np.ndarray:
    """:func:`run_batches` over already tokenized inputs (:class:`rerank.encoding.Encoded`),
    in length-sorted batches padded to their longest input."""
    plan = plan_batches(encoded.lengths(), batch_size=batch_size, max_tokens=max_tokens)
    batches = ((index, encoder.collate(encoded.select(index))) for index in plan)
    return run_batches(forward, batches, len(encoded), n_outputs=n_outputs, bar=bar)


def run_batches(
    forward: Forward,
    batches: Iterable[tuple[np.ndarray, dict[str, Any]]],
    n: int,
    *,
    n_outputs: int = 1,
    bar: Any = None,
) -> np.ndarray:
    """The core loop: ``forward`` over ``(rows, batch)`` pairs into ``[n, n_outputs]`` float32.

    ``rows`` are the indices (into the ``n`` outputs) of the inputs in ``batch``; rows not
    named by any batch stay uninitialised. Every scorer of the package comes here: ``rerank
    score`` / :func:`rerank.score.score_frame` (and so the rekindle teacher scoring and
    stage evaluations), the training loop's evaluation and GLUE prediction.
    """
    out = np.empty((n, n_outputs), dtype=np.float32)
    for rows, batch in batches:
        scores = forward(batch)
        if hasattr(scores, "detach"):
            scores = scores.detach().float().cpu().numpy()
        out[rows] = np.asarray(scores, dtype=np.float32).reshape(len(rows), n_outputs)
        if bar is not None:
            bar.update(len(rows))
    return out


@contextlib.contextmanager
def torch_forward(
    model: Any, heads: Sequence[str], precision: str, *, width: int = 1
) -> Iterator[Forward]:
    """``forward(batch) -> [b, len(heads) * width]`` of a :class:`rerank.model.RerankModel`.

    The one precision policy (:func:`rerank.precision.inference_precision`: ``bf16`` runs
    the encoder in bf16 and the pooler and heads in fp32; ``fp32``), in eval mode under
    ``torch.inference_mode`` (the train/eval mode is restored on leaving). ``width``: the
    outputs of a classification head (``heads`` then has one name).
    """
    import torch

    from rerank.precision import inference_precision

    device = next(model.parameters()).device
    heads = tuple(heads)
    # pinned host memory makes the copy to a GPU asynchronous (it overlaps the tokenizing
    # and padding of the next batch); on a CPU the batch is used as it is
    pin = device.type == "cuda"

    def forward(batch: dict[str, Any]) -> torch.Tensor:
        batch = {
            k: (v.pin_memory() if pin else v).to(device, non_blocking=pin) for k, v in batch.items()
        }
        result = model(**batch, heads=heads)
        columns = []
        for head in heads:
            scores = result[head]
            if width == 1 and scores.dim() != 1:
                raise RerankError(f"head '{head}' gives {scores.shape[-1]} outputs, not a score")
            columns.append(scores.float().reshape(len(scores), -1))
        return torch.cat(columns, dim=1)

    with eval_mode(model), inference_precision(model, precision):
        yield forward


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
    (:func:`rerank.tables.chunks.scan_pairs`, :func:`rerank.streaming.output_format`).
    Returns a :class:`rerank.score.ScoreSummary`.
    """
    from rerank.backends import check_primary_score, load_runner, pair_encoder
    from rerank.score import ScoreSummary
    from rerank.streaming import score_pairs_file

    check_primary_score(model_dir, heads)
    encoder = pair_encoder(model_dir, max_length=max_length, max_first_length=max_first_length)
    runner = load_runner(model_dir, backend, precision=precision, threads=threads)
    forward = exported_forward(runner)

    def scores_of(chunk: pl.DataFrame, bar: Any) -> np.ndarray:
        return score_texts(
            forward, encoder, chunk, batch_size=batch_size, max_tokens=max_tokens, bar=bar
        )[:, :1]

    shards, seconds = score_pairs_file(
        lazy,
        source,
        out_path,
        scores_of,
        model=model_dir,
        fmt=fmt,
        columns=list(heads) if heads else ["score"],
        chunk_rows=chunk_rows,
        progress=progress,
    )
    return ScoreSummary(
        shards.rows,
        seconds,
        runner.precision,
        "cpu",
        shards.world,
        shards.rank,
        backend=backend,
        threads=runner.threads,
    )
