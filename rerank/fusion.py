"""Score fusion: several scorers of the same candidates mixed into one ranking.

A cross-encoder, a zero-shot bi-encoder and a first-stage BM25 score the same candidates on
scales that have nothing in common (raw logits, cosines in [-1, 1], unbounded BM25 sums).
Each scorer's scores are first z-scored **within each query** (mean 0, standard deviation
1 over that query's candidates; a query whose scores are all equal gets 0), then mixed
with weights: ``sum_k w_k * z_k``. Per query, because that needs only the candidates of
the query at hand, which is what a re-ranker sees at serving time, never statistics of a
whole collection. This is the usual interpolation of a re-ranker with its first stage
(e.g. Lin et al., *Pretrained Transformers for Text Ranking*, 2021, section 3.2.3).

Examples
--------
>>> import polars as pl
>>> a = pl.DataFrame({"query_id": ["q"] * 3, "doc_id": ["x", "y", "z"], "score": [9.0, 5.0, 1.0]})
>>> b = pl.DataFrame({"query_id": ["q"] * 3, "doc_id": ["x", "y", "z"], "score": [0.1, 0.3, 0.2]})
>>> fuse_frames([a, b], [0.5, 0.5])["score"].round(3).to_list()
[0.0, 0.612, -0.612]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import polars as pl

from rerank.errors import RerankError, input_error

__all__ = ["fuse_files", "fuse_frames", "zscore_per_query"]

KEYS = ["query_id", "doc_id"]


def zscore_per_query(column: str) -> pl.Expr:
    """``column`` z-scored within each ``query_id`` (0 where a query's scores are all equal)."""
    mean = pl.col(column).mean().over("query_id")
    std = pl.col(column).std(ddof=0).over("query_id")
    return pl.when(std > 0).then((pl.col(column) - mean) / std).otherwise(0.0)


def fuse_frames(
    frames: Sequence[pl.DataFrame], weights: Sequence[float], *, names: Sequence[str] | None = None
) -> pl.DataFrame:
    """``sum_k weights[k] * z(frames[k].score)``, z-scored per query; rows of the first frame.

    Parameters
    ----------
    frames
        Score tables ``query_id, doc_id, score`` of the same candidates (any row order).
    weights
        One finite weight per frame.
    names
        How errors name each frame (file names); default ``scores 1``, ``scores 2``, ...

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, score`` in the first frame's row order.

    Raises
    ------
    RerankError
        When the counts differ, a weight is not finite, or a candidate of one frame is
        missing from another (naming the first such pair).
    """
    names = list(names or [f"scores {i + 1}" for i in range(len(frames))])
    if len(frames) < 2 or len(weights) != len(frames):
        raise RerankError(
            f"fusion: expected two or more score tables and one weight each, got "
            f"{len(frames)} table(s) and {len(weights)} weight(s)"
        )
    if not all(math.isfinite(w) for w in weights):
        raise RerankError(f"fusion: weights must be finite numbers, got {list(weights)}")
    first = frames[0].select(*KEYS, pl.col("score").alias("s0"))
    joined = first
    for k, frame in enumerate(frames[1:], start=1):
        other = frame.select(*KEYS, pl.col("score").alias(f"s{k}"))
        joined = joined.join(other, on=KEYS, how="left", maintain_order="left")
        missing = joined.filter(pl.col(f"s{k}").is_null())
        extra = other.height - (joined.height - missing.height)
        if missing.height or extra:
            if missing.height:
                q, d = missing.row(0)[:2]
                where, what = names[k], f"lacks ({q}, {d}), a candidate of {names[0]}"
            else:
                where, what = names[k], f"has {extra} candidate(s) that {names[0]} lacks"
            raise input_error(where, f"{what}; fused score tables must hold the same candidates")
    score = sum(w * zscore_per_query(f"s{k}") for k, w in enumerate(weights))
    return joined.select(*KEYS, pl.lit(0.0).add(score).cast(pl.Float64).alias("score"))


def fuse_files(
    paths: Sequence[str | os.PathLike[str]], weights: Sequence[float], out: str | os.PathLike[str]
) -> int:
    """Read score files (tables or TREC runs), fuse them, write ``out``; the rows written."""
    from rerank.atomic import check_output
    from rerank.data import read_scores, write_table

    check_output(out, {f"SCORES {i + 1}": p for i, p in enumerate(paths)})
    fused = fuse_frames(
        [read_scores(p) for p in paths], weights, names=[os.fspath(p) for p in paths]
    )
    write_table(fused, out, tag="rerank-fuse")
    return fused.height
