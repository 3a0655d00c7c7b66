"""The stage runner of both cycles: the ranking cycle and the GLUE cycle.

A cycle (:mod:`rerank.rekindle.cycle`, :mod:`rerank.glue.cycle`) is a sequence of stages,
each a function returning a JSON-able result, each in its own folder. :class:`Pipeline`
runs a stage at most once: the stage's ``done.json``, written last and atomically, holds
its result, and a stage whose ``done.json`` exists is skipped, so a killed cycle re-run
with the same command continues where it stopped. One schema, for every stage of either
cycle::

    {"schema": 1, "stage": "teacher", "tags": {"kind": "teacher"}, "seconds": 12.5,
     "result": {...}}

``tags`` say what the stage is (``kind``; in the GLUE cycle also ``seed``, ``task`` and
the report ``row``), so that scripts aggregating a cycle's stages (``metrics/``) read
them instead of parsing folder names. ``seconds`` is the wall time of the run that
finished the stage.

A training stage (:meth:`Pipeline.train`) resumes from its last checkpoint when a killed
run left one (``train.save_every``; :func:`stage_config` sets ``cycle.checkpoint_every``
when the recipe has none) and starts clean otherwise; once it finishes, its checkpoint
is removed (it only served to resume).

:func:`stage_config` is the one place where a cycle turns a recipe into a stage's
training config (the ``[finetune]`` / ``[pretrain]`` TOML, its ``set`` overrides, then
what the cycle owns: output folder, seed, threads, checkpoints, init). The config
sections both cycles share are defined here once: :class:`CycleSection`,
:class:`RecipeSection`, :class:`PretrainSection`, :class:`PairsSection`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rerank.atomic import atomic_path
from rerank.config import Config, apply_overrides, doc, from_toml
from rerank.errors import RerankError

__all__ = [
    "DONE",
    "SCHEMA",
    "CycleSection",
    "PairsSection",
    "Pipeline",
    "PretrainSection",
    "RecipeSection",
    "check_finished",
    "read_done",
    "release_memory",
    "resume_or_clear",
    "stage_config",
]

log = logging.getLogger(__name__)

DONE = "done.json"
SCHEMA = 1
_FIELDS = ("stage", "seconds", "result")

C = TypeVar("C", bound=Config)


# -- the config sections both cycles share ----------------------------------------------


@dataclass
class CycleSection:
    name: str = field(default="cycle", metadata=doc("title of the report"))
    output_dir: str = field(default="runs/cycle", metadata=doc("all stages go here", path=True))
    checkpoint_every: int = field(
        default=20,
        metadata=doc(
            "train.save_every of training stages whose recipe has none (a killed stage "
            "resumes from its last checkpoint)"
        ),
    )
    num_threads: int = field(default=0, metadata=doc("torch CPU threads; 0: automatic"))


@dataclass
class RecipeSection:
    config: str = field(
        default="",
        metadata=doc(
            "the recipe: a training TOML ('rerank train' / 'rerank glue train' for "
            "[finetune], 'rerank rekindle' for [pretrain])",
            path=True,
        ),
    )
    set: list[str] = field(default_factory=list, metadata=doc("--set overrides of the recipe"))


@dataclass
class PretrainSection(RecipeSection):
    student: str = field(
        default="default", metadata=doc("student init (a general pretrained encoder)", path=True)
    )
    num_layers: int = field(default=0, metadata=doc("grow the student by stacking; 0: keep"))


@dataclass
class PairsSection:
    data: str = field(
        default="",
        metadata=doc("unlabeled pairs (query_id, doc_id, query, title, summary)", path=True),
    )
    corpus: str = field(default="", metadata=doc("or: build them from these documents", path=True))


# -- stage configs ------------------------------------------------------------------------


def stage_config(
    recipe: RecipeSection,
    cls: type[C],
    cycle: CycleSection,
    *,
    output_dir: str | Path,
    seed: int,
    model: str | None = None,
    num_layers: int | None = None,
) -> C:
    """A stage's training config: the recipe, its ``set`` overrides, then what the cycle owns.

    The cycle owns the output folder, the seed, the torch threads, the checkpoint cadence
    (``cycle.checkpoint_every`` when the recipe saves none, so that a killed stage
    resumes) and the progress bar (off). ``model`` / ``num_layers`` replace the recipe's
    init when given. Every stage of both cycles is built here, so a teacher and the
    students it is compared with differ only in what the caller changes.
    """
    cfg = from_toml(recipe.config, cls)
    apply_overrides(cfg, list(recipe.set))
    if model is not None:
        cfg.model.path = str(model)
    if num_layers is not None:
        cfg.model.num_layers = num_layers
    train = cfg.train
    train.output_dir = str(output_dir)
    train.seed = seed
    train.progress = False
    if cycle.num_threads:
        train.num_threads = cycle.num_threads
    if not train.save_every:
        train.save_every = cycle.checkpoint_every
    return cfg


def resume_or_clear(cfg: Config) -> None:
    """Resume from a checkpoint when a killed run left one; else clear its leftovers."""
    from rerank.training import checkpoint as ckpt

    where = Path(cfg.train.output_dir)
    if ckpt.exists(where):
        cfg.train.resume = True
    elif where.exists():
        shutil.rmtree(where)


def check_finished(result: Any, where: Path) -> None:
    """A training stage that stopped early is an error, never a finished stage."""
    if not result.finished:
        raise RerankError(
            f"{where}: training stopped at step {result.steps} of {result.total_steps}"
        )


# -- the runner ---------------------------------------------------------------------------


def read_done(marker: Path) -> dict[str, Any]:
    """A stage's ``done.json`` (one line naming the file when it is not one)."""
    try:
        record = json.loads(marker.read_text())
    except json.JSONDecodeError as err:
        raise RerankError(f"{marker}: not a stage record ({err.msg}); delete it to rerun") from err
    missing = [k for k in _FIELDS if k not in record]
    if missing:
        raise RerankError(
            f"{marker}: a stage record without {', '.join(missing)} (written by an older "
            "rerank); delete it to rerun the stage"
        )
    return record


class Pipeline:
    """Runs a cycle's stages at most once; ``done.json`` (written last) marks a finished one.

    ``timings`` holds the seconds each stage took in this invocation (0.0: skipped),
    ``ran`` the stages run now, ``records`` every stage's ``done.json``.
    """

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.ran: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}

    def run(
        self,
        name: str,
        where: Path,
        fn: Callable[[], dict[str, Any]],
        *,
        tags: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The stage's result: read from ``where/done.json``, or computed by ``fn`` now."""
        marker = Path(where) / DONE
        if marker.is_file():
            record = read_done(marker)
            self.timings[name] = 0.0
        else:
            log.info("cycle: stage %s -> %s", name, where)
            start = time.perf_counter()
            result = fn()
            release_memory()
            seconds = round(time.perf_counter() - start, 2)
            record = {
                "schema": SCHEMA,
                "stage": name,
                "tags": dict(tags or {}),
                "seconds": seconds,
                "result": result,
            }
            with atomic_path(marker) as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
            self.timings[name] = seconds
            self.ran.append(name)
        self.records[name] = record
        return record["result"]

    def train(
        self,
        name: str,
        where: Path,
        config: Callable[[], C],
        trainer: Callable[[C], dict[str, Any]],
        *,
        tags: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A training stage: ``trainer(config())``, resuming a killed run's checkpoint.

        ``config`` is built only when the stage runs (a finished stage needs no recipe);
        its ``train.output_dir`` is where a checkpoint is looked for.
        """

        def stage() -> dict[str, Any]:
            cfg = config()
            resume_or_clear(cfg)
            result = trainer(cfg)
            _drop_checkpoint(Path(cfg.train.output_dir))
            return result

        return self.run(name, where, stage, tags=tags)


def _drop_checkpoint(out_dir: Path) -> None:
    """A finished stage's checkpoint only served to resume it: free its disk (model and
    optimizer state, about 3x the model) before the stage is marked done."""
    from rerank.training import checkpoint as ckpt

    for name in (ckpt.NAME, f".{ckpt.NAME}.old"):
        shutil.rmtree(out_dir / name, ignore_errors=True)


def release_memory() -> None:
    """Give freed heap memory back to the OS between training runs in one process.

    A training run on CPU leaves its peak (about 3 GB for MiniLM with MLM at 32 x 128
    tokens) in glibc's heap after it returns; a process that runs many stages (the cycle,
    the pre-training slices) would otherwise hold the sum of those peaks. Measured:
    2.9 GB resident after a run, 0.56 GB after ``malloc_trim``.
    """
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass
