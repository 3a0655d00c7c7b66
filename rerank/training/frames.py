"""The tables a run trains and evaluates on, each read (and validated) once.

A target column other than ``label`` (a teacher's scores, ``teacher:<name>``) comes
with the pairs through :func:`rerank.data.read_pairs` (``targets=``), which checks that
every value is a finite number and names file, row and column otherwise. Frames given in
memory (the rekindle and GLUE stages) get the same check of their target columns.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rerank.config import Config
from rerank.data import check_targets, read_pairs
from rerank.errors import RerankError

__all__ = ["load_frames", "target_columns"]


def target_columns(cfg: Config) -> list[str]:
    """The columns the objective's terms judge against (``label``, ``teacher:t1`` ...)."""
    return list(dict.fromkeys(t.target for t in cfg.objective if t.loss != "mlm"))


def load_frames(
    cfg: Config, train_frame: pl.DataFrame | None, eval_frame: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The training and eval frames: the ones given, else read from ``data.train``/``data.eval``."""
    targets = target_columns(cfg)
    scores = [t for t in targets if t != "label"]
    label_range = tuple(cfg.data.label_range)
    if train_frame is None:
        train_frame = read_pairs(cfg.data.train, label_range=label_range, targets=scores)
        where = Path(cfg.data.train).name
    else:
        check_targets(train_frame, scores, "the training frame")
        where = "training frame"
    if "label" in targets and "label" not in train_frame.columns:
        i = next(k for k, t in enumerate(cfg.objective) if t.loss != "mlm" and t.target == "label")
        raise RerankError(
            f"{where}: the training data has no 'label' column, but objective term {i} "
            f"('{cfg.objective[i].loss}') trains on labels"
        )
    if eval_frame is None and cfg.data.eval:
        eval_frame = read_pairs(cfg.data.eval, labels="required", label_range=label_range)
    return train_frame, eval_frame
