"""Expert-guided pre-training: the student learns the teachers' scores (and MLM).

This is a configuration of the one training loop (:func:`rerank.train.train`), not a new
loop. A :class:`RekindleConfig` is an ordinary training :class:`rerank.config.Config` plus
a ``[rekindle]`` section naming the unlabeled pairs and the teachers; :func:`pretrain`
scores the pairs once into the teacher-score store (:mod:`rerank.rekindle.store`), points
``data.train`` at the store and trains on the objective, whose targets are the store's
``teacher:<name>`` columns. A single teacher (UEGP) in ``data/cranfield/rekindle.toml``::

    [model]
    path = "default"                  # a general pretrained encoder, not the teacher
    [rekindle]
    data = "rekindle.parquet"
    teachers = { t1 = { path = "../../runs/cranfield/teacher/best" } }
    [[objective]]
    loss = "pointwise_mse"
    target = "teacher:t1"
    [[objective]]
    loss = "pairwise_mse"
    target = "teacher:t1"
    [[objective]]
    loss = "mlm"
    weight = 0.1

Several teachers (MoEGP) get one student head each (``model.heads = {t1 = {}, t2 = {}}``)
and one KD term per head. A teacher is any expert (``kind``, default ``auto``): a
cross-encoder, a sentence-embedding model used zero-shot as a bi-encoder, or a first-stage
run (:mod:`rerank.rekindle.store`); kinds mix freely::

    [rekindle]
    standardize = true                # cosines and BM25 scores live on different scales
    [rekindle.teachers.t1]
    path = "../../runs/cranfield/teacher/best"
    [rekindle.teachers.dense]
    path = "default"
    kind = "bi-encoder"
    [rekindle.teachers.bm25]
    path = "bm25_rekindle.run"        # a file: kind "run" (auto)

The ablations are objectives: ``kd+mlm`` (all terms), ``kd`` (without the ``mlm`` term),
``mlm`` (only it); :func:`ablate` derives them from one config.

Snapshots: with ``rekindle.snapshot_every = N`` the student's weights at steps N, 2N, ...
are kept under ``snapshots/step-<k>`` (the checkpoints for the paper's Figure 3). The loop
keeps only its latest checkpoint, so the run is driven in slices of N steps, each resuming
the checkpoint of the one before; slicing does not change the result (resume is exact).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerank.config import Config, doc
from rerank.errors import RerankError
from rerank.pipeline import release_memory
from rerank.tables.columns import teacher_column

__all__ = [
    "VARIANTS",
    "PretrainResult",
    "RekindleConfig",
    "RekindleSection",
    "TeacherConfig",
    "ablate",
    "pretrain",
    "release_memory",
    "snapshots",
]

log = logging.getLogger(__name__)

Variant = Literal["kd+mlm", "kd", "mlm"]
VARIANTS: tuple[str, ...] = ("kd+mlm", "kd", "mlm")


@dataclass
class TeacherConfig:
    path: str = field(
        default="",
        metadata=doc(
            "the teacher: a model directory ('default': all-MiniLM-L6-v2) or a run file "
            "(.run/.trec, or a table query_id, doc_id, score)",
            path=True,
        ),
    )
    head: str = field(
        default="", metadata=doc("cross-encoder teacher head that scores; empty: its primary")
    )
    kind: Literal["auto", "cross-encoder", "bi-encoder", "run"] = field(
        default="auto",
        metadata=doc(
            "cross-encoder (a ranking model), bi-encoder (cosine of a sentence-embedding "
            "model), run (first-stage scores joined by query_id, doc_id) or auto: a file is "
            "a run, a directory as `rerank score --kind auto` detects it"
        ),
    )


@dataclass
class RekindleSection:
    data: str = field(
        default="",
        metadata=doc("unlabeled pairs query_id, doc_id, query, title, summary", path=True),
    )
    teachers: dict[str, TeacherConfig] = field(
        default_factory=dict, metadata=doc("name -> teacher; targets are 'teacher:<name>'")
    )
    store: str = field(
        default="",
        metadata=doc(
            "teacher-score store (.parquet); empty: <output_dir>/teacher_scores.parquet", path=True
        ),
    )
    score_max_length: int = field(
        default=0,
        metadata=doc(
            "tokens a cross-encoder teacher scores at; 0: the input lengths saved with it"
        ),
    )
    snapshot_every: int = field(
        default=0, metadata=doc("keep the student's weights every N steps (Figure 3); 0: never")
    )
    standardize: bool = field(
        default=False,
        metadata=doc("train on z-scored teacher columns (mean 0, std 1 over the store)"),
    )


@dataclass
class RekindleConfig(Config):
    rekindle: RekindleSection = field(default_factory=RekindleSection)


@dataclass
class PretrainResult:
    """What :func:`pretrain` did: the loop's result, the store, and the snapshots kept."""

    train: Any
    store: Path
    scored: tuple[str, ...]
    snapshots: dict[int, Path]


def ablate(cfg: RekindleConfig, variant: str) -> RekindleConfig:
    """A copy of ``cfg`` whose objective is the ablation ``variant``.

    ``kd+mlm``: every term; ``kd``: the non-MLM terms; ``mlm``: the MLM term only.
    """
    if variant not in VARIANTS:
        raise RerankError(
            f"rekindle variant: expected one of {', '.join(VARIANTS)}, got '{variant}'"
        )
    out = copy.deepcopy(cfg)
    mlm = [t for t in out.objective if t.loss == "mlm"]
    kd = [t for t in out.objective if t.loss != "mlm"]
    wanted = {"kd+mlm": kd + mlm, "kd": kd, "mlm": mlm}[variant]
    if not wanted or (variant == "kd+mlm" and not (kd and mlm)):
        raise RerankError(
            f"rekindle variant '{variant}': the objective lacks the terms it needs "
            f"(have {', '.join(t.loss for t in out.objective)})"
        )
    out.objective = [t for t in out.objective if t in wanted]
    return out


def _check(cfg: RekindleConfig) -> None:
    rk = cfg.rekindle
    if not rk.data:
        raise RerankError("rekindle config: key 'rekindle.data' is required (the unlabeled pairs)")
    if not rk.teachers:
        raise RerankError("rekindle config: key 'rekindle.teachers' must name at least one teacher")
    for name, teacher in rk.teachers.items():
        if not teacher.path:
            raise RerankError(f"rekindle config: key 'rekindle.teachers.{name}.path' is required")
    known = {teacher_column(n) for n in rk.teachers}
    for i, term in enumerate(cfg.objective):
        if term.loss == "mlm":
            continue
        if term.target not in known:
            raise RerankError(
                f"rekindle config: objective.{i}.target: expected one of {', '.join(sorted(known))} "
                f"(expert-guided pre-training uses no labels), got '{term.target}'"
            )
    if rk.snapshot_every < 0:
        raise RerankError("rekindle config: key 'rekindle.snapshot_every' must be >= 0")


def store_path(cfg: RekindleConfig) -> Path:
    """Where the teacher-score store of ``cfg`` lives."""
    if cfg.rekindle.store:
        return Path(cfg.rekindle.store)
    return Path(cfg.train.output_dir) / "teacher_scores.parquet"


def pretrain(
    cfg: RekindleConfig,
    *,
    frame: Any = None,
    single_sentence: bool = False,
    max_steps_this_run: int | None = None,
) -> PretrainResult:
    """Score the rekindle pairs (once) and run expert-guided pre-training.

    Parameters
    ----------
    cfg
        The rekindle configuration; ``train.resume`` continues an interrupted run.
    frame
        Rows already scored by the teachers (pairs + ``teacher:<name>`` columns; GLUE
        scores with its own scorer, :func:`rerank.glue.stages.pretrain`); default: score
        ``rekindle.data`` into the store (:func:`rerank.rekindle.store.build_store`).
    single_sentence
        Encode only the first text of each row (GLUE single-sentence teachers).
    max_steps_this_run
        Stop after this many steps in total, as if interrupted (tests).
    """
    _check(cfg)
    cfg = copy.deepcopy(cfg)
    out_dir = Path(cfg.train.output_dir).resolve()
    cfg.train.output_dir = str(out_dir)
    store = store_path(cfg)
    scored: tuple[str, ...] = ()
    if frame is None:
        scored = score_teachers(cfg).scored
        cfg.data.train = str(store)
    else:
        cfg.data.train = cfg.data.train or cfg.rekindle.data
    if cfg.rekindle.standardize:
        frame = _standardized(store if frame is None else frame, cfg)

    def run(stop: int | None) -> Any:
        from rerank.train import train

        return train(
            cfg, train_frame=frame, single_sentence=single_sentence, max_steps_this_run=stop
        )

    every = cfg.rekindle.snapshot_every
    if not every:
        return PretrainResult(run(max_steps_this_run), store, scored, snapshots(out_dir))
    if cfg.train.save_every == 0 or every % cfg.train.save_every:
        # the slice boundaries must be checkpoints for the next slice to resume from
        cfg.train.save_every = every
    done = _checkpoint_step(out_dir) if cfg.train.resume else 0
    while True:
        target = (done // every + 1) * every
        if max_steps_this_run is not None:
            target = min(target, max_steps_this_run)
        result = run(target)
        release_memory()
        done = result.steps
        if done % every == 0 or result.finished:
            _keep_snapshot(out_dir, done)
        stopped = max_steps_this_run is not None and done >= max_steps_this_run
        if result.finished or stopped or done < target:
            return PretrainResult(result, store, scored, snapshots(out_dir))
        cfg.train.resume = True


def score_teachers(cfg: RekindleConfig) -> Any:
    """Build (or reuse) the teacher-score store of ``cfg``: its :class:`StoreResult`."""
    from rerank.rekindle.store import Teacher, build_store

    teachers = [
        Teacher(n, Path(t.path), t.head or None, t.kind) for n, t in cfg.rekindle.teachers.items()
    ]
    # None: each cross-encoder teacher scores at the input lengths saved with it
    max_length = cfg.rekindle.score_max_length or None
    return build_store(cfg.rekindle.data, teachers, store_path(cfg), max_length=max_length)


def _standardized(source: Any, cfg: RekindleConfig) -> Any:
    """The teacher scores with every teacher column z-scored (the stored scores stay raw).

    ``source``: the store's path, or the scored rows. Why: the KD terms' size follows the
    teacher's score scale, the MLM term's does not. A briefly trained teacher separates
    documents by a few hundredths, so raw KD terms are ~1e-3 next to an MLM term of ~1
    and the update is all MLM. Z-scoring puts every teacher on one scale; ranking is
    unchanged (an increasing affine map). Per-class logits (a GLUE classification
    teacher) are not scores on one scale: refused.
    """
    import polars as pl

    from rerank.data import read_pairs

    columns = [teacher_column(name) for name in cfg.rekindle.teachers]
    if isinstance(source, Path):  # finite scores, or one line naming file, row and column
        source = read_pairs(source, labels="optional", targets=columns)
    frame = source
    for column in columns:
        values = frame.get_column(column)
        if values.dtype.is_nested():
            raise RerankError(
                f"rekindle.standardize: teacher column '{column}' holds per-class logits; "
                "only score teachers can be z-scored"
            )
        mean, std = float(values.mean()), float(values.std() or 0.0)
        if not std > 0:
            raise RerankError(f"{column} is constant; cannot standardize it (rekindle.standardize)")
        log.info("standardizing %s (mean %.4g, std %.4g)", column, mean, std)
        frame = frame.with_columns(((pl.col(column) - mean) / std).alias(column))
    return frame


def _checkpoint_step(out_dir: Path) -> int:
    from rerank.training import checkpoint as ckpt

    state = ckpt.load_state(out_dir) if ckpt.exists(out_dir) else None
    return int(state["step"]) if state else 0


def _keep_snapshot(out_dir: Path, step: int) -> None:
    from rerank.atomic import atomic_path
    from rerank.training import checkpoint as ckpt

    dest = out_dir / "snapshots" / f"step-{step}"
    if dest.is_dir():
        return
    with atomic_path(dest, is_dir=True) as tmp:
        shutil.copytree(ckpt.model_dir(out_dir), tmp, dirs_exist_ok=True)
        (tmp / "snapshot.json").write_text(json.dumps({"step": step}) + "\n")


def snapshots(out_dir: str | Path) -> dict[int, Path]:
    """Step -> model directory of the snapshots kept under ``out_dir/snapshots``."""
    root = Path(out_dir) / "snapshots"
    found = {}
    for path in root.glob("step-*") if root.is_dir() else []:
        tail = path.name.removeprefix("step-")
        if tail.isdigit() and (path / "snapshot.json").is_file():
            found[int(tail)] = path
    return dict(sorted(found.items()))
