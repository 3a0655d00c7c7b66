"""The files a run writes under ``train.output_dir``, and refusing to mix two runs there."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from rerank.errors import RerankError

__all__ = ["RUN_OUTPUTS", "prepare_output_dir", "remove_outputs"]

# What a run writes under train.output_dir (checkpoint.py adds .checkpoint.old).
RUN_OUTPUTS = (
    "config.toml",
    "log.jsonl",
    "loss.png",
    "tensorboard",
    "checkpoint",
    ".checkpoint.old",
    "best",
    "final",
)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def remove_outputs(out_dir: Path, before: set[str] | None) -> None:
    """Remove the outputs a failed run wrote (never a file that was there before it)."""
    for name in RUN_OUTPUTS:
        if before is None or name not in before:
            _remove(out_dir / name)
    if before is None:
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # only when empty: this run created it


def prepare_output_dir(out_dir: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a directory holding files unless resuming or overwriting.

    ``resume`` continues (or, without a checkpoint, starts over in) the directory;
    ``overwrite`` removes an earlier run's outputs (:data:`RUN_OUTPUTS`) first, and
    nothing else. Without either, a directory that exists and is not empty is refused:
    training into it would replace ``final/`` and ``config.toml`` and mix two runs'
    ``log.jsonl``. Used by ``rerank train``; library callers (the cycles) manage their
    own stage directories. Under ``torchrun`` only rank 0 looks (the others would find
    the files rank 0 is writing).
    """
    if int(os.environ.get("RANK", "0")) != 0:
        return
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise RerankError(f"train.output_dir: {path} is a file; expected a directory")
    if resume and overwrite:
        raise RerankError("--resume continues a run and --overwrite starts over: choose one")
    held = sorted(os.listdir(path)) if path.is_dir() else []
    if not held or resume:
        return
    if not overwrite:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise RerankError(
            f"train.output_dir: {path} already holds files ({shown}); choose another "
            "directory, --resume the run in it, or --overwrite its outputs "
            f"({', '.join(n for n in RUN_OUTPUTS if not n.startswith('.'))})"
        )
    for name in RUN_OUTPUTS:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
