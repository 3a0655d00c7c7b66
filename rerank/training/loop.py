"""The one training loop: restore, step, evaluate, save (see :mod:`rerank.training`)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from rerank.batching import Transform
from rerank.config import Config, validate, write_config
from rerank.errors import RerankError
from rerank.progress import plot_training_log
from rerank.training import checkpoint as ckpt
from rerank.training import resume
from rerank.training.evaluation import Evaluator, evaluate
from rerank.training.outputs import remove_outputs
from rerank.training.processes import Dist, init_distributed, run_threads
from rerank.training.reporting import Report
from rerank.training.resume import Position
from rerank.training.setup import Inputs, Run, build_run
from rerank.training.step import check_finite, lr_at, optimizer_step

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    output_dir: Path
    final_dir: Path | None
    best_dir: Path | None
    steps: int
    total_steps: int
    finished: bool
    seconds: float
    metrics: dict[str, float]
    best_metric: float | None
    best_step: int | None
    skipped_groups: int


def train(
    config: Config,
    *,
    train_frame: pl.DataFrame | None = None,
    eval_frame: pl.DataFrame | None = None,
    transform: Transform | None = None,
    max_steps_this_run: int | None = None,
    evaluator: Evaluator | None = None,
    single_sentence: bool = False,
) -> TrainResult:
    """Train as ``config`` says and return what happened.

    Parameters
    ----------
    config
        The resolved configuration (validated here).
    train_frame, eval_frame
        Data given in memory instead of ``data.train``/``data.eval`` (the rekindle stage
        passes pairs with teacher-score columns this way).
    transform
        Batch transform (``transform(inputs, step=serial) -> inputs``); default: BERT
        MLM masking when the objective has an ``mlm`` term.
    max_steps_this_run
        Stop after this many optimizer steps *in total* without finishing (as if the run
        were interrupted; the last checkpoint is what a resumed run continues from).
    evaluator
        ``evaluator(model) -> {metric: value}`` instead of the ranking evaluation of the
        eval split (GLUE task metrics); ``train.metric_for_best`` must be one of its keys.
    single_sentence
        Encode the ``query`` column alone (single-sentence tasks: GLUE CoLA, SST-2).
    """
    cfg = validate(config)
    out_dir = Path(cfg.train.output_dir).resolve()
    cfg.train.output_dir = str(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RerankError(f"train.output_dir: {out_dir} is a file; expected a directory")
    before = set(os.listdir(out_dir)) if out_dir.is_dir() else None
    inputs = Inputs(train_frame, eval_frame, transform, evaluator, single_sentence)
    dist = init_distributed()
    try:
        with run_threads(cfg.train, dist):
            return _train(cfg, out_dir, inputs, dist, max_steps_this_run)
    except RerankError:
        if dist.main and not ckpt.exists(out_dir):
            remove_outputs(out_dir, before)
        raise
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _train(
    cfg: Config, out_dir: Path, inputs: Inputs, dist: Dist, max_steps_this_run: int | None
) -> TrainResult:
    started = time.perf_counter()
    state = resume.checkpoint_state(cfg, out_dir, dist)
    run = build_run(cfg, dist, state, inputs)
    at = resume.restore(state, out_dir, run.optimizer, dist)
    if dist.main:
        # lines after the checkpoint (all of them when starting over) would be repeated
        ckpt.truncate_log(out_dir / "log.jsonl", at.step)
        write_config(cfg, out_dir / "config.toml")
    dist.barrier()
    report = Report(cfg, out_dir, dist, run.total, at.step)
    batches = run.batcher.iter_from(at.epoch, at.position)
    stop = run.total if max_steps_this_run is None else min(run.total, max_steps_this_run)
    threads = torch.get_num_threads()
    metrics: dict[str, float] = {}
    tc = cfg.train
    while at.step < stop:
        lr = lr_at(
            at.step,
            total_steps=run.total,
            lr_max=tc.lr_max,
            lr_min=tc.lr_min,
            warmup_steps=tc.warmup_steps,
            power=tc.power,
        )
        optimizer_step(run, batches, at, lr, report)
        report.stepped()
        evaluated = _after_step(run, at, out_dir, report, lr, stop, threads)
        metrics = metrics if evaluated is None else evaluated
    report.close()
    return _finish(run, at, out_dir, metrics, started)


def _after_step(
    run: Run, at: Position, out_dir: Path, report: Report, lr: float, stop: int, threads: int
) -> dict[str, float] | None:
    """Log, evaluate and save as ``train`` says at this step; the metrics if evaluated."""
    tc, step = run.cfg.train, at.step
    last = step == run.total
    evaluating = run.evaluator is not None and (
        (tc.eval_every and step % tc.eval_every == 0) or last
    )
    saving = bool(tc.save_every) and (step % tc.save_every == 0 or last)
    logging_now = step % tc.log_every == 0 or last or step == stop
    if evaluating or saving or logging_now:
        check_finite(at.diverged, run.cfg, run.dist)
    if logging_now:
        report.train_line(step, lr, at.epoch)
    metrics = evaluate(run, at, out_dir, report, threads) if evaluating else None
    if saving:
        resume.save(out_dir, run, at)
    return metrics


def _finish(run: Run, at: Position, out_dir: Path, metrics: dict, started: float) -> TrainResult:
    """Save ``final/`` when the run finished, plot its log, and say what happened."""
    dist, model = run.dist, run.model
    finished = at.step >= run.total
    final_dir = None
    if finished and dist.main:
        final_dir = out_dir / "final"
        model.card_facts.update(step=at.step, total_steps=run.total, eval=metrics)
        model.save_pretrained(final_dir)
    if dist.main:  # loss.png beside log.jsonl: the loss curve and the eval measures
        try:
            plot_training_log(out_dir / "log.jsonl", out_dir / "loss.png")
        except (OSError, ValueError, RuntimeError) as err:  # the run itself succeeded
            log.warning("%s: could not plot the training log: %s", out_dir / "loss.png", err)
    dist.barrier()
    return TrainResult(
        output_dir=out_dir,
        final_dir=final_dir,
        best_dir=out_dir / "best" if at.best["step"] is not None else None,
        steps=at.step,
        total_steps=run.total,
        finished=finished,
        seconds=time.perf_counter() - started,
        metrics=metrics,
        best_metric=at.best["value"],
        best_step=at.best["step"],
        skipped_groups=run.batcher.skipped,
    )
