"""Where a run stands (:class:`Position`), and continuing it exactly from a checkpoint.

The data order is a pure function of ``(seed, epoch)``, MLM masking of the batch serial,
and dropout is reseeded from ``(seed, step, rank)`` at every step, so a run resumed from
``checkpoint/`` (model, optimizer, RNG states, data position) ends with the same weights
as an unbroken one. Resuming with other data, learning rate or steps than the
checkpoint's is allowed and warned about, naming what changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rerank.config import Config, to_toml
from rerank.errors import RerankError
from rerank.training import checkpoint as ckpt
from rerank.training.processes import Dist

__all__ = ["Position", "changes_since", "checkpoint_state", "data_bytes", "restore", "save"]

log = logging.getLogger(__name__)


@dataclass
class Position:
    """Step, data position, best evaluation so far, and the first diverged step (0: none)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"value": None, "step": None})
    diverged: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))


def checkpoint_state(cfg: Config, out_dir: Path, dist: Dist) -> dict | None:
    """The checkpoint's state when resuming (``None``: start at step 0); refuses to
    overwrite an earlier run's checkpoint without ``train.resume``."""
    resume = cfg.train.resume
    state = ckpt.load_state(out_dir) if resume else None
    if state is None and ckpt.exists(out_dir) and not resume:
        raise RerankError(
            f"{out_dir}: holds a checkpoint of an earlier run; resume it (--resume) "
            "or choose another train.output_dir"
        )
    if resume and state is None and dist.main:
        log.warning("%s: no checkpoint to resume from; starting at step 0", out_dir)
    if state is not None and dist.main:
        for change in changes_since(state, cfg):
            log.warning("resuming with %s", change)
    return state


def restore(
    state: dict | None, out_dir: Path, optimizer: torch.optim.Optimizer, dist: Dist
) -> Position:
    """The position to start from: the checkpoint's (optimizer and RNGs restored) or 0."""
    at = Position(diverged=torch.zeros((), dtype=torch.long, device=dist.device))
    if state is None:
        return at
    if state.get("world", 1) != dist.world:
        raise RerankError(
            f"{out_dir}: the checkpoint was written by {state.get('world', 1)} process(es); "
            f"resume it with as many (the data position is per process), not {dist.world}"
        )
    optimizer.load_state_dict(ckpt.load_optimizer(out_dir))
    ckpt.restore_rng(out_dir, state)
    at.step, at.epoch, at.position = state["step"], state["epoch"], state["position"]
    at.best = state["best"]
    return at


def save(out_dir: Path, run: Any, at: Position) -> None:
    """Write ``checkpoint/`` (rank 0) at ``at``; every rank waits for it."""
    if run.dist.main:
        state = {
            "step": at.step,
            "epoch": at.epoch,
            "position": at.position,
            "best": at.best,
            "world": run.dist.world,
            "config": to_toml(run.cfg),
            "data_bytes": data_bytes(run.cfg),
        }
        ckpt.save(out_dir, run.model, run.optimizer, state)
    run.dist.barrier()


def data_bytes(cfg: Config) -> int | None:
    """The size of ``data.train`` (a resumed run warns when it changed)."""
    path = Path(cfg.data.train) if cfg.data.train else None
    return path.stat().st_size if path is not None and path.is_file() else None


# Settings whose change on --resume is allowed but changes the run (warned about).
_RESUME_KEYS = (
    ("data", "train"),
    ("data", "eval"),
    ("train", "lr_max"),
    ("train", "lr_min"),
    ("train", "warmup_steps"),
    ("train", "power"),
    ("train", "steps"),
    ("train", "epochs"),
    ("train", "grad_accum"),
    ("train", "seed"),
)


def changes_since(state: dict, cfg: Config) -> list[str]:
    """What differs between the checkpoint's run and this one, e.g. ``train.lr_max 3e-05 -> 1e-4``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        old = tomllib.loads(state.get("config") or "")
    except tomllib.TOMLDecodeError:
        return []
    changes = []
    for section, key in _RESUME_KEYS:
        if section not in old or key not in old[section]:
            continue
        was, now = old[section][key], getattr(getattr(cfg, section), key)
        if was != now:
            changes.append(f"{section}.{key} {was!r} -> {now!r}")
    size = data_bytes(cfg)
    saved = state.get("data_bytes")
    if (
        saved is not None
        and size is not None
        and saved != size
        and not any(c.startswith("data.train ") for c in changes)
    ):
        changes.append(f"data.train changed since the checkpoint ({saved:,} -> {size:,} bytes)")
    return changes
