"""Evaluation during training: the eval split's ranking measures, and keeping ``best/``.

Every ``train.eval_every`` steps and at the end, PNR and nDCG@10 of the primary head
(:func:`rerank.measures.evaluate`), or a caller's own ``evaluator(model)`` (GLUE task
metrics); the best model by ``train.metric_for_best`` goes to ``best/``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rerank.batching import GroupedData, pad_rows
from rerank.config import Config

__all__ = ["Evaluator", "evaluate", "evaluate_ranking", "make_evaluator"]

log = logging.getLogger(__name__)

Evaluator = Callable[[Any], dict[str, float]]


def evaluate_ranking(model: Any, data: GroupedData, cfg: Config, bf16: bool) -> dict[str, float]:
    """PNR, nDCG@10 and ``train.metric_for_best`` of the primary head on ``data``."""
    from rerank.inference import run_batches, torch_forward
    from rerank.measures import evaluate as measure

    # The one inference core and precision policy of `rerank score` (encoder bf16 where
    # training runs bf16, pooler and head fp32; not autocast), so that the figures that
    # choose best/ are the ones `rerank score` + `rerank evaluate` report for it.
    order = np.argsort(-data.lengths, kind="stable")
    size = cfg.data.eval_batch_size
    chunks = (order[start : start + size] for start in range(0, len(order), size))
    batches = ((rows, pad_rows(data, rows)) for rows in chunks)
    with torch_forward(model, (model.primary,), "bf16" if bf16 else "fp32") as forward:
        scores = run_batches(forward, batches, data.n_rows)[:, 0]
    run = pl.DataFrame(
        {
            "query_id": np.repeat(np.array(data.query_ids), np.diff(data.group_offsets)),
            "doc_id": data.doc_ids,
            "label": data.targets["label"].astype(np.int64),
            "score": scores.astype(np.float64),
        }
    )
    measures = list(dict.fromkeys(["pnr", "ndcg@10", cfg.train.metric_for_best]))
    result = measure(run, measures)
    return {k: float(result.aggregate[k]) for k in measures}


def make_evaluator(
    cfg: Config,
    eval_frame: pl.DataFrame | None,
    encoder: Any,
    bf16: bool,
    given: Evaluator | None,
    main: bool,
) -> Evaluator | None:
    """The run's evaluator (rank 0 only): ``given``, else the eval split's ranking measures.

    An unknown ``train.metric_for_best`` fails here, before training.
    """
    tc = cfg.train
    if tc.eval_every and eval_frame is None and given is None and main:
        log.warning("train.eval_every is set but there is no eval data (data.eval): no evaluation")
    if not main:
        return None
    if given is not None or eval_frame is None:
        return given
    data = GroupedData.from_frame(eval_frame, encoder, targets=["label"], source="eval data")
    if tc.metric_for_best not in ("pnr", "pnr_macro"):
        from rerank.measures.ir import parse_measure

        parse_measure(tc.metric_for_best)  # an unknown name fails now, not after training
    return lambda model: evaluate_ranking(model, data, cfg, bf16)


def evaluate(run: Any, at: Any, out_dir: Path, report: Any, threads: int) -> dict[str, float]:
    """Evaluate ``run.model`` at step ``at.step``; save it to ``best/`` when it improved."""
    started = time.perf_counter()
    tc, model = run.cfg.train, run.model
    metrics = run.evaluator(model)
    # numba's OpenMP layer (the PNR kernels) shares torch's libgomp and resets its
    # thread count on the way out; without this, training after the first
    # evaluation silently runs on a different number of threads.
    torch.set_num_threads(threads)
    value = metrics[tc.metric_for_best]
    improved = at.best["value"] is None or value > at.best["value"]
    if improved:
        at.best = {"value": value, "step": at.step}
        model.card_facts.update(step=at.step, total_steps=run.total, eval=metrics)
        model.save_pretrained(out_dir / "best")
    report.eval_line(at.step, metrics, improved, time.perf_counter() - started)
    return metrics
