"""GLUE fine-tuning and expert-guided pre-training: configurations of the one training loop.

Nothing here trains by itself. Each function reads GLUE data, turns it into the loop's
frames (:mod:`rerank.glue.frames`) and calls :func:`rerank.train.train` with

- the task's head (``model.heads``; the task head is primary, so a GLUE teacher is an
  ordinary HF ``AutoModelForSequenceClassification`` directory),
- the task's loss (``cross_entropy`` / ``pointwise_mse`` on ``label`` for fine-tuning,
  ``kl_div`` / ``pointwise_mse`` on ``teacher:<task>`` for distillation),
- single-sentence encoding for CoLA and SST-2,
- an evaluator computing the task's GLUE metrics on the dev split, so the best checkpoint
  is chosen by the task's primary metric (Spearman, MCC, accuracy).

Configuration is the ordinary :class:`rerank.config.Config` plus a ``[glue]`` section
(:class:`GlueConfig`); a rekindle run is the rekindle helper's
:class:`rerank.rekindle.pretrain.RekindleConfig` whose teachers are named after their GLUE
tasks (``rekindle.teachers = { stsb = { path = ... } }``; the student head learning from
teacher ``stsb`` is head ``stsb``). Heads and objective terms a config leaves at their
ranking defaults are filled in from the task registry (:func:`apply_task_defaults`).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rerank.config import Config, HeadConfig, LossTerm, doc
from rerank.errors import RerankError
from rerank.glue.frames import glue_scorer, subsample, training_frame
from rerank.glue.readers import GlueSplits, read_splits
from rerank.glue.tasks import GlueTask, get_task
from rerank.rekindle.pretrain import RekindleConfig
from rerank.tables.columns import teacher_column

__all__ = [
    "GlueConfig",
    "GlueSection",
    "apply_task_defaults",
    "check_rekindle",
    "finetune",
    "load_splits",
    "pretrain",
    "score_teachers",
]

log = logging.getLogger(__name__)


@dataclass
class GlueSection:
    task: str = field(default="", metadata=doc("GLUE task: stsb, mrpc, rte, cola, sst2, ..."))
    data_dir: str = field(default="", metadata=doc("the GLUE root or the task's folder", path=True))
    head: str = field(default="", metadata=doc("head trained and evaluated; empty: the task"))
    max_train: int = field(default=0, metadata=doc("seeded subsample of train; 0: all"))
    max_eval: int = field(default=0, metadata=doc("seeded subsample of dev; 0: all"))
    sample_seed: int = field(default=0, metadata=doc("seed of the subsamples"))
    split_seed: int = field(default=0, metadata=doc("seed of made splits (MRPC dev, QNLI)"))
    on_error: Literal["raise", "skip"] = field(
        default="raise", metadata=doc("malformed rows: raise, or skip and count them")
    )


@dataclass
class GlueConfig(Config):
    glue: GlueSection = field(default_factory=GlueSection)


def head_config(task: GlueTask) -> HeadConfig:
    """The :class:`HeadConfig` of a task's head."""
    spec = task.head_spec()
    return HeadConfig(kind=spec.kind, num_outputs=spec.num_outputs, low=spec.low, high=spec.high)


def _is_ranking_default(cfg: Config) -> bool:
    return set(cfg.model.heads) == {"score"} and cfg.model.heads["score"] == HeadConfig()


def apply_task_defaults(cfg: Config, tasks: list[GlueTask], *, target: str = "label") -> Config:
    """Fill in what a GLUE config left at the ranking defaults (a copy).

    - ``model.heads``: one head per task (named after it) when the config has only the
      default ``score`` head; ``model.primary``: the first task.
    - ``objective``: a term with ``loss = "task"`` becomes the task's loss, for the task
      named by its ``head`` or, with the default head, one term per task: the fine-tune
      loss on ``label`` (``target="label"``) or the distillation loss on
      ``teacher:<task>`` (``target="teacher"``; ``params`` such as the ``kl_div``
      temperature are kept for classification tasks). Other terms (``mlm``) stay. An
      objective left at the ranking default means ``[{loss = "task"}]``.
    - ``train.metric_for_best``: the first task's primary metric when left at ``pnr``.
    - ``data.list_size``: 1 (every example is its own group).
    """
    cfg = copy.deepcopy(cfg)
    if _is_ranking_default(cfg):
        cfg.model.heads = {t.name: head_config(t) for t in tasks}
        cfg.model.primary = cfg.model.primary or tasks[0].name
    kd = target == "teacher"
    if cfg.objective == [LossTerm()]:
        cfg.objective = [LossTerm(loss="task")]
    names = {t.name for t in tasks}
    objective: list[LossTerm] = []
    for term in cfg.objective:
        if term.loss != "task":
            objective.append(term)
            continue
        for t in tasks:
            if term.head in names and term.head != t.name:
                continue
            objective.append(
                LossTerm(
                    loss=t.kd_loss if kd else t.finetune_loss,
                    head=t.name,
                    target=teacher_column(t.name) if kd else "label",
                    weight=term.weight,
                    params=dict(term.params) if t.kd_loss == "kl_div" and kd else {},
                )
            )
    cfg.objective = objective
    if cfg.train.metric_for_best == "pnr":
        cfg.train.metric_for_best = tasks[0].primary_metric
    cfg.data.list_size = 1
    return cfg


def load_splits(section: GlueSection) -> tuple[GlueTask, GlueSplits]:
    """Read the task's splits as ``[glue]`` says (subsamples applied)."""
    if not section.task:
        raise RerankError("glue config: key 'glue.task' is required")
    if not section.data_dir:
        raise RerankError("glue config: key 'glue.data_dir' is required (the GLUE data folder)")
    task = get_task(section.task)
    splits = read_splits(
        task, section.data_dir, split_seed=section.split_seed, on_error=section.on_error
    )
    notes = []
    if section.max_train and section.max_train < splits.train.height:
        notes.append(f"train: seeded subsample of {section.max_train} of {splits.train.height}")
        splits.train = subsample(splits.train, section.max_train, seed=section.sample_seed)
    if section.max_eval and section.max_eval < splits.dev.height:
        notes.append(f"dev: seeded subsample of {section.max_eval} of {splits.dev.height}")
        splits.dev = subsample(splits.dev, section.max_eval, seed=section.sample_seed)
    for note in notes:
        log.info("%s: %s", task.name, note)
    splits.notes.extend(notes)
    return task, splits


def _evaluator(task: GlueTask, dev: pl.DataFrame, head: str, cfg: Config) -> Any:
    from rerank.glue.predict import evaluate_model

    def evaluate(model: Any) -> dict[str, float]:
        # at the input lengths the training loop gave the model (cfg.model's)
        report = evaluate_model(model, dev, task, head=head, batch_size=cfg.data.eval_batch_size)
        # A constant prediction has no correlation (NaN); for checkpoint selection it
        # counts as the worst one, -1, so that a later real value can still win.
        return {k: -1.0 if math.isnan(v) else v for k, v in report.items()}

    return evaluate


def finetune(cfg: GlueConfig, *, max_steps_this_run: int | None = None) -> Any:
    """Fine-tune ``model.path`` on the task's train split, selecting on dev.

    Returns the loop's :class:`rerank.train.TrainResult`; ``best/`` holds the model with
    the best dev ``train.metric_for_best``.
    """
    from rerank.train import train

    task, splits = load_splits(cfg.glue)
    run = apply_task_defaults(cfg, [task])
    head = cfg.glue.head or task.name
    if head not in run.model.heads:
        raise RerankError(
            f"glue config: head '{head}' is not among model.heads ({list(run.model.heads)})"
        )
    run.data.train = run.data.train or str(Path(cfg.glue.data_dir))
    return train(
        run,
        train_frame=training_frame(splits.train, task),
        evaluator=_evaluator(task, splits.dev, head, run),
        single_sentence=task.input == "single",
        max_steps_this_run=max_steps_this_run,
    )


def score_teachers(cfg: RekindleConfig) -> Path:
    """Score ``rekindle.data`` with every GLUE teacher into the store; return its path.

    Teachers are named after their tasks; each reads the pairs as its task does (a
    single-sentence teacher sees only the first sentence) and stores per-class logits
    (classification) or its value (STS-B). Scoring is skipped while data and weights are
    unchanged (:func:`rerank.rekindle.store.build_store`).
    """
    from rerank.rekindle.pretrain import store_path
    from rerank.rekindle.store import Teacher, build_store

    rk = cfg.rekindle
    if not rk.data or not rk.teachers:
        raise RerankError(
            "glue rekindle config: keys 'rekindle.data' and 'rekindle.teachers' are required"
        )
    scorers = {
        Path(t.path).resolve(): glue_scorer(get_task(name), batch_size=cfg.data.eval_batch_size)
        for name, t in rk.teachers.items()
    }

    def scorer(path: Path, rows: pl.DataFrame, head: str | None, max_length: int) -> pl.Series:
        return scorers[Path(path).resolve()](path, rows, head, max_length)

    store = store_path(cfg)
    build_store(
        rk.data,
        [Teacher(n, Path(t.path), t.head or None) for n, t in rk.teachers.items()],
        store,
        max_length=rk.score_max_length or None,  # None: each teacher's own lengths
        scorer=scorer,
    )
    return store


def check_rekindle(cfg: RekindleConfig, tasks: list[GlueTask]) -> None:
    """Refuse rekindle options GLUE teachers cannot honour (one line).

    ``rekindle.standardize`` z-scores score columns; a classification teacher's per-class
    logits are the KL target as they are.
    """
    logits = [t.name for t in tasks if t.head_spec().kind == "classification"]
    if cfg.rekindle.standardize and logits:
        raise RerankError(
            "glue rekindle config: key 'rekindle.standardize' applies to score teachers only; "
            f"{', '.join(logits)} give per-class logits"
        )


def pretrain(
    cfg: RekindleConfig,
    *,
    frame: pl.DataFrame | None = None,
    max_steps_this_run: int | None = None,
) -> Any:
    """Expert-guided pre-training of a student on GLUE teachers (one: UEGP; several: MoEGP).

    The ranking rekindle (:func:`rerank.rekindle.pretrain.pretrain`: snapshots, resume,
    ``rekindle.standardize``) with the GLUE teachers' scorer and task defaults: the
    student learns every teacher of ``rekindle.teachers`` on the head of the same
    name, with the sum of the KD terms plus the ``mlm`` term (see
    :func:`apply_task_defaults`). It sees each sentence pair, or only the first sentence
    when every teacher is single-sentence (a sentence that starts two pairs then counts
    once). In MoEGP across pair and single-sentence tasks, the single-sentence heads
    learn, from the pair, what their teacher said of its first sentence.

    Parameters
    ----------
    cfg
        The rekindle configuration (``model.path``: the student's initial encoder).
    frame
        Already scored rows (pairs + ``teacher:<task>`` columns); default: score
        ``rekindle.data`` into the store first (:func:`score_teachers`).
    max_steps_this_run
        Stop early, as if interrupted (tests).

    Returns
    -------
    rerank.rekindle.pretrain.PretrainResult
    """
    from rerank.rekindle import pretrain as rekindle
    from rerank.rekindle.store import read_store

    tasks = [get_task(name) for name in cfg.rekindle.teachers]
    check_rekindle(cfg, tasks)
    if frame is None:
        frame, _ = read_store(score_teachers(cfg))
    run = apply_task_defaults(cfg, tasks, target="teacher")
    single = all(t.input == "single" for t in tasks)
    if single:
        frame = frame.unique(subset="query", keep="first", maintain_order=True)
    return rekindle.pretrain(
        run, frame=frame, single_sentence=single, max_steps_this_run=max_steps_this_run
    )
