"""Everything a run needs before its first step, built in one order (:func:`build_run`).

The order matters for exact resume: the RNGs are seeded right before the model is built
(fresh heads draw their initial weights), and a checkpoint's RNG states are put back only
after everything that draws has been built (:func:`rerank.training.resume.restore`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import torch

from rerank.batching import GroupBatcher, GroupedData, Transform
from rerank.config import Config
from rerank.errors import RerankError
from rerank.losses import LOSSES
from rerank.precision import resolve_precision
from rerank.training import checkpoint as ckpt
from rerank.training.batches import make_batcher
from rerank.training.evaluation import Evaluator, make_evaluator
from rerank.training.frames import load_frames, target_columns
from rerank.training.masking import mlm_transform
from rerank.training.model import build_model, use_cpu_attention
from rerank.training.optimizer import make_optimizer
from rerank.training.processes import Dist

__all__ = ["Inputs", "Run", "build_run"]


@dataclass
class Inputs:
    """What a caller of :func:`rerank.train.train` may give instead of the config's files."""

    train_frame: pl.DataFrame | None = None
    eval_frame: pl.DataFrame | None = None
    transform: Transform | None = None
    evaluator: Evaluator | None = None
    single: bool = False


@dataclass
class Run:
    """The parts of a run: model (``net``: its DDP wrapper), optimizer, batches, evaluator."""

    cfg: Config
    dist: Dist
    model: Any
    net: Any
    optimizer: torch.optim.Optimizer
    batcher: GroupBatcher
    evaluator: Evaluator | None
    heads: tuple[str, ...]
    has_mlm: bool
    total: int
    autocast: contextlib.AbstractContextManager


def use_bf16(setting: bool | str, device: torch.device) -> bool:
    """``train.bf16``: ``"auto"`` is bf16 where the device computes it natively."""
    if setting != "auto":
        return bool(setting)
    return resolve_precision("auto", device) == "bf16"


def build_run(cfg: Config, dist: Dist, state: dict | None, inputs: Inputs) -> Run:
    """Read the data, build model, batches, evaluator and optimizer (``state``: resuming)."""
    tc = cfg.train
    source = ckpt.model_dir(Path(tc.output_dir)) if state else cfg.model.resolved_path()
    if not Path(source).is_dir():
        raise RerankError(f"{source}: model directory does not exist")
    train_frame, eval_frame = load_frames(cfg, inputs.train_frame, inputs.eval_frame)
    targets = target_columns(cfg)
    has_mlm = any(t.loss == "mlm" for t in cfg.objective)
    ckpt.seed_everything(tc.seed)
    mlm = has_mlm if cfg.model.mlm == "auto" else bool(cfg.model.mlm)
    model = build_model(cfg, Path(source), mlm=mlm, train_frame=train_frame).to(dist.device)
    encoder = model.pair_encoder()  # the input lengths just set
    transform = inputs.transform
    if has_mlm and transform is None:
        transform = mlm_transform(model, cfg)
    name = Path(cfg.data.train).name or "training data"
    data = GroupedData.from_frame(
        train_frame, encoder, targets=targets, source=name, single=inputs.single
    )
    batcher = make_batcher(cfg, data, dist, targets=targets, transform=transform)
    per_epoch = max(1, batcher.batches_per_epoch(0) // tc.grad_accum)
    bf16 = use_bf16(tc.bf16, dist.device)
    evaluator = make_evaluator(cfg, eval_frame, encoder, bf16, inputs.evaluator, dist.main)
    if dist.device.type == "cpu":
        use_cpu_attention(model)
    optimizer = make_optimizer(model, cfg)
    heads = tuple(dict.fromkeys(t.head for t in cfg.objective if LOSSES[t.loss].kind != "mlm"))
    net: Any = model
    if dist.world > 1:
        unused = set(model.specs) - set(heads) or (mlm and not has_mlm)
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=bool(unused))
    return Run(
        cfg=cfg,
        dist=dist,
        model=model,
        net=net,
        optimizer=optimizer,
        batcher=batcher,
        evaluator=evaluator,
        heads=heads,
        has_mlm=has_mlm,
        total=tc.steps or max(1, math.ceil(tc.epochs * per_epoch)),
        autocast=torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=bf16),
    )
