"""GLUE examples and teacher scores in the shapes the one training loop reads.

The loop (:func:`rerank.train.train`) trains on query-grouped tables. A GLUE example is
a group of one: ``query_id = doc_id = example_id``, ``query`` the first sentence,
``summary`` the second (empty for single-sentence tasks, which are encoded without it),
``title`` empty and ``label`` the class index (Int64) or STS-B score (Float64). With
``data.list_size = 1`` a batch is ``data.groups_per_batch`` examples; the row losses
(``cross_entropy``, ``kl_div``) and ``pointwise_mse`` on one-row lists are the ordinary
per-example losses.

Teacher scores of a GLUE teacher go into the teacher-score store
(:mod:`rerank.rekindle.store`) through :func:`glue_scorer`: one ``Float64`` column for
a regression teacher, one ``List(Float64)`` column of per-class logits for a
classification teacher (the ``kl_div`` target).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from rerank.glue.tasks import GlueTask

__all__ = ["glue_scorer", "subsample", "training_frame"]


def training_frame(frame: pl.DataFrame, task: GlueTask) -> pl.DataFrame:
    """GLUE reader output -> ``query_id, doc_id, query, title, summary, label`` (one group each).

    Examples
    --------
    >>> from rerank.glue.tasks import get_task
    >>> glue = pl.DataFrame({"example_id": ["7"], "sentence1": ["A cat."],
    ...                      "sentence2": ["A dog."], "label": [1]})
    >>> training_frame(glue, get_task("rte")).row(0)
    ('7', '7', 'A cat.', '', 'A dog.', 1)
    """
    second = pl.col("sentence2") if task.input == "pair" else pl.lit("")
    return frame.select(
        pl.col("example_id").alias("query_id"),
        pl.col("example_id").alias("doc_id"),
        pl.col("sentence1").fill_null("").alias("query"),
        pl.lit("", dtype=pl.String).alias("title"),
        second.fill_null("").cast(pl.String).alias("summary"),
        pl.col("label"),
    )


def subsample(frame: pl.DataFrame, n: int, *, seed: int = 0) -> pl.DataFrame:
    """``n`` rows drawn with ``numpy.random.default_rng(seed)``, in their original order.

    ``n <= 0`` or ``n >= frame.height`` returns ``frame`` unchanged.
    """
    if n <= 0 or n >= frame.height:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(frame.height, size=n, replace=False))
    return frame[keep.tolist()]


def glue_scorer(
    task: GlueTask, *, batch_size: int = 64, precision: str = "auto"
) -> Callable[[Path, pl.DataFrame, str | None, int], pl.Series]:
    """A teacher scorer for :func:`rerank.rekindle.store.build_store` that knows the task.

    The teacher reads each row as the task does (a single-sentence teacher sees only
    ``query``) and returns its head's output: per-class logits (``List(Float64)``) or a
    value (``Float64``).
    """

    def score(path: Path, rows: pl.DataFrame, head: str | None, max_length: int) -> pl.Series:
        from rerank.glue.predict import predict
        from rerank.model import RerankModel

        model = RerankModel.from_pretrained(path)
        out = predict(
            model,
            rows,
            task,
            head=head,
            batch_size=batch_size,
            max_length=max_length,
            precision=precision,
        ).astype(np.float64)
        if out.ndim == 2:
            return pl.Series(out.tolist(), dtype=pl.List(pl.Float64))
        return pl.Series(out, dtype=pl.Float64)

    return score
