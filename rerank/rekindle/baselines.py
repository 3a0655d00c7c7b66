"""The free baselines of a cycle report and the paired comparisons against them.

A trained re-ranker is worth shipping only if it beats what a search team already has
for free: the first stage (BM25) and a general sentence-embedding model used zero-shot as
a bi-encoder (all-MiniLM-L6-v2 was trained on a billion sentence pairs; on the Cranfield
sample it beats a cross-encoder fine-tuned on 135 queries). This module scores that
**zero-shot dense** row, fuses a model with it (:func:`fuse`), and compares the cycle's
final model with every other row on the same queries (:func:`paired_rows`), with 95%
bootstrap intervals and randomization p-values from :mod:`rerank.measures.significance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "FUSION_WEIGHTS",
    "choose_fusion_weight",
    "compare_rows",
    "dense_scores_stage",
    "fuse",
    "fuse_with_dense",
    "paired_rows",
    "per_query",
]

FUSION_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
"""Weights of the dense expert tried by :func:`choose_fusion_weight` (0: the model alone)."""


def dense_scores_stage(model: str, split: str, where: Path, *, batch_size: int = 64) -> str:
    """Score a labeled split with the zero-shot bi-encoder ``model``; the scores' path."""
    from rerank.data import read_pairs, write_table
    from rerank.dense import BiEncoder

    frame = read_pairs(split, labels="required")
    # fp32: the baseline exactly as sentence-transformers users get it
    encoder = BiEncoder.from_pretrained(model, precision="fp32")
    scores = encoder.score_frame(frame, batch_size=batch_size)
    path = where / "scores.parquet"
    write_table(frame.select("query_id", "doc_id").with_columns(pl.Series("score", scores)), path)
    return str(path)


def fuse(model_scores: str | Path, dense_scores: str | Path, weight: float) -> pl.DataFrame:
    """``(1 - weight) * z(model) + weight * z(dense)``, z-scored within each query.

    Both inputs are score files (``query_id, doc_id, score``) of the same candidates; the
    same as ``rerank fuse MODEL DENSE --weights 1-w w`` (:mod:`rerank.fusion`).
    """
    from rerank.data import read_scores
    from rerank.fusion import fuse_frames

    return fuse_frames(
        [read_scores(model_scores), read_scores(dense_scores)],
        [1.0 - weight, weight],
        names=[str(model_scores), str(dense_scores)],
    )


def choose_fusion_weight(
    split: str, model_scores: str | Path, dense_scores: str | Path, *, measure: str = "ndcg@10"
) -> tuple[float, dict[str, float]]:
    """The weight of :data:`FUSION_WEIGHTS` with the best ``measure`` on ``split`` (eval).

    Ties go to the smaller weight (less of the dense expert). Returns the weight and the
    measure at every weight, for the report.
    """
    from rerank.data import read_pairs
    from rerank.measures import evaluate

    labels = read_pairs(split, labels="required").select("query_id", "doc_id", "label")
    curve: dict[str, float] = {}
    for w in FUSION_WEIGHTS:
        scored = labels.join(fuse(model_scores, dense_scores, w), on=["query_id", "doc_id"])
        curve[f"{w:.1f}"] = float(evaluate(scored, [measure]).aggregate[measure])
    best = max(curve.items(), key=lambda kv: (kv[1], -float(kv[0])))
    return float(best[0]), curve


def per_query(split: str, scores: str | Path) -> dict[str, dict[str, Any]]:
    """Per-query nDCG@10 and PNR counts of a score file on a labeled split.

    Returns ``{"ndcg@10": {qid: value}, "pnr": {qid: (concordant, discordant)}}``.
    """
    from rerank.evaluation import evaluate_files

    report = evaluate_files(
        split, scores, measures=["pnr", "ndcg@10"], unmatched="drop", per_query=True
    )
    table = report.per_query
    assert table is not None
    ids = table["query_id"].to_list()
    return {
        "ndcg@10": dict(zip(ids, table["ndcg@10"].to_list(), strict=True)),
        "pnr": dict(
            zip(
                ids,
                zip(table["concordant"].to_list(), table["discordant"].to_list(), strict=True),
                strict=True,
            )
        ),
    }


def paired_rows(
    final: str,
    values: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    seed: int = 0,
    others: Sequence[str] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The final model against every other row, paired over the split's queries.

    ``values[row]`` is :func:`per_query` of that row. Returns
    ``{other: {measure: {"delta", "ci95", "p_randomization", "wins"}}}`` where ``delta`` is
    ``final - other`` and ``wins`` is true only when the whole 95% interval is above 0.
    """
    from rerank.measures.significance import paired_comparison, paired_ratio_comparison

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for other in others or [r for r in values if r != final]:
        if other == final or other not in values:
            continue
        a, b = values[other], values[final]
        ndcg = paired_comparison(a["ndcg@10"], b["ndcg@10"], seed=seed)
        pnr = paired_ratio_comparison(a["pnr"], b["pnr"], seed=seed)
        out[other] = {
            name: {
                "delta": r.delta,
                "ci95": [float(x) for x in r.ci95],
                "p_randomization": r.p_randomization,
                "wins": bool(np.isfinite(r.ci95[0]) and r.ci95[0] > 0),
            }
            for name, r in (("pnr", pnr), ("ndcg@10", ndcg))
        }
    return out


def fuse_with_dense(
    cfg: Any,
    where: Path,
    row: str,
    results: dict[str, dict[str, dict[str, float]]],
    scores: dict[str, dict[str, str]],
    measures: Sequence[str],
) -> dict[str, Any]:
    """Add the row ``<row> + dense`` (the weight chosen on eval) to ``results``/``scores``.

    ``cfg`` is the cycle config; ``scores[row][split]`` and ``scores["dense"][split]`` are
    the score files of both splits. Returns the chosen weight and the eval curve.
    """
    from rerank.data import write_table
    from rerank.evaluation import evaluate_files
    from rerank.rekindle.stages import slug

    c = cfg.cycle
    weight, curve = choose_fusion_weight(c.eval, scores[row]["eval"], scores["dense"]["eval"])
    name = f"{row} + dense"
    results[name], scores[name] = {}, {}
    for split, split_path in {"eval": c.eval, "test": c.test}.items():
        path = where / f"{slug(name)}-{split}" / "scores.parquet"
        write_table(fuse(scores[row][split], scores["dense"][split], weight), path)
        rep = evaluate_files(split_path, path, measures=list(measures), unmatched="drop")
        results[name][split] = {k: v for k, v in rep.as_dict().items() if k in measures}
        scores[name][split] = str(path)
    return {"row": row, "weight": weight, "eval_ndcg@10_by_weight": curve}


def compare_rows(
    eval_split: str, test_split: str, scores: dict[str, dict[str, str]], final: str, *, seed: int
) -> dict[str, Any]:
    """``final`` minus every other row, paired per query, on both splits (95% intervals)."""
    if final not in scores:
        return {}
    out = {}
    for split, split_path in {"eval": eval_split, "test": test_split}.items():
        values = {row: per_query(split_path, paths[split]) for row, paths in scores.items()}
        out[split] = paired_rows(final, values, seed=seed)
    return out
