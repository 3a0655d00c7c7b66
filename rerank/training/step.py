"""One optimizer step: learning rate, forward, the objective's terms, backward, update."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from rerank.batching import Batch
from rerank.config import Config
from rerank.errors import RerankError
from rerank.losses import LOSSES

__all__ = ["check_finite", "loss_terms", "lr_at", "model_forward", "optimizer_step"]


def lr_at(
    step: int,
    *,
    total_steps: int,
    lr_max: float,
    lr_min: float = 0.0,
    warmup_steps: int = 0,
    power: float = 1.0,
) -> float:
    """Learning rate of the update with 0-based index ``step``.

    Linear warm-up, ``lr_max * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    then ``lr_min + (lr_max - lr_min) * (1 - p) ** power`` with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)``: the polynomial decay of
    BERT-style schedules (``power=1`` is linear), reaching ``lr_min`` after the last step.

    Examples
    --------
    >>> [lr_at(s, total_steps=6, lr_max=1.0, warmup_steps=2) for s in range(6)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    if step < warmup_steps:
        return lr_max * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr_min + (lr_max - lr_min) * max(0.0, 1.0 - progress) ** power


def model_forward(model: Any, batch: Batch, heads: tuple[str, ...], mlm: bool) -> dict:
    """The heads' scores (and MLM logits) of ``batch``: one forward call per backward."""
    x = batch.inputs
    types = x.get("token_type_ids")
    if not mlm:
        return model(x["input_ids"], x["attention_mask"], types, heads=heads)
    if x["mlm_input_ids"] is x["input_ids"]:  # one pass over the masked inputs
        return model(
            x["input_ids"],
            x["attention_mask"],
            types,
            heads=heads,
            mlm_positions=x["mlm_positions"],
        )
    # Clean rows for the heads and masked rows for MLM in one forward call (one DDP
    # forward per backward); the heads' outputs on the masked half are dropped.
    n = x["input_ids"].shape[0]
    out = model(
        torch.cat([x["input_ids"], x["mlm_input_ids"]]),
        torch.cat([x["attention_mask"], x["attention_mask"]]),
        None if types is None else torch.cat([types, types]),
        heads=heads,
        mlm_positions=torch.cat([torch.zeros_like(x["mlm_positions"]), x["mlm_positions"]]),
    )
    return {k: (v if k == "mlm" else v[:n]) for k, v in out.items()}


def loss_terms(out: dict, batch: Batch, cfg: Config) -> list[torch.Tensor]:
    """Each objective term's loss: its head's output judged against its target column."""
    values = []
    for term in cfg.objective:
        spec = LOSSES[term.loss]
        if spec.kind == "mlm":
            values.append(spec.fn(out["mlm"], batch.inputs["mlm_labels"]))
        elif spec.kind == "row":
            values.append(spec.fn(out[term.head], batch.targets[term.target], **term.params))
        else:
            scores = batch.grouped(out[term.head])
            target = batch.grouped(batch.targets[term.target])
            values.append(spec.fn(scores, target, batch.mask, **term.params))
    return values


def optimizer_step(run: Any, batches: Iterator[Batch], at: Any, lr: float, report: Any) -> None:
    """Accumulate ``train.grad_accum`` batches and update the weights once.

    ``run`` is the :class:`rerank.training.setup.Run`, ``at`` its
    :class:`rerank.training.resume.Position` (advanced here: data position, step, and
    ``diverged``, the 1-based step of the first non-finite loss or gradient norm, kept on
    the device so that a GPU never waits on it), ``report`` the
    :class:`rerank.training.reporting.Report` summing the losses.
    """
    cfg, dist, tc = run.cfg, run.dist, run.cfg.train
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    # Dropout randomness is a function of (seed, step, rank): resume-exact by design.
    torch.manual_seed((tc.seed * 1_000_003 + at.step) * 64 + dist.rank)
    finite = torch.ones((), dtype=torch.bool, device=dist.device)
    for micro in range(tc.grad_accum):
        batch = next(batches).to(dist.device)
        sync = micro == tc.grad_accum - 1 or dist.world == 1
        with contextlib.nullcontext() if sync else run.net.no_sync(), run.autocast:
            out = model_forward(run.net, batch, run.heads, run.has_mlm)
            values = loss_terms(out, batch, cfg)
            loss = sum(t.weight * v for t, v in zip(cfg.objective, values, strict=True))
        (loss / tc.grad_accum).backward()
        at.epoch, at.position = batch.epoch, batch.position + 1
        report.add(loss, values, batch)
        finite = finite & torch.isfinite(loss.detach())
    if tc.clip_norm:
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.clip_norm)
        finite = finite & torch.isfinite(norm)
    at.diverged = torch.where((at.diverged == 0) & ~finite, at.step + 1, at.diverged)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    at.step += 1


def check_finite(diverged: torch.Tensor, cfg: Config, dist: Any) -> None:
    """Stop the run (before anything is saved) when a step's loss or gradient diverged."""
    if dist.world > 1:
        torch.distributed.all_reduce(diverged, op=torch.distributed.ReduceOp.MAX)
    step = int(diverged.item())
    if step:
        raise RerankError(
            f"training diverged: the loss or its gradient is not finite at step {step} "
            f"(train.lr_max = {cfg.train.lr_max:g}); nothing was saved from that step on. "
            "Lower train.lr_max, or check the training targets"
        )
