"""What a run tells while it trains: ``log.jsonl``, a tqdm bar or progress lines, trackers.

A bar on a terminal; in a log file (or with ``train.progress`` off, as in the cycle) a
progress line at most every 30 s instead (:mod:`rerank.progress`). Losses are summed on
the device and read (``.item()``) only when a line is logged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from rerank.batching import Batch
from rerank.config import Config
from rerank.progress import ProgressLog, Tracker, stderr_is_terminal
from rerank.training import checkpoint as ckpt
from rerank.training.processes import Dist

__all__ = ["Report"]

log = logging.getLogger(__name__)


class Report:
    """The run's log, bar and trackers, and the loss sums of the current logging window."""

    def __init__(self, cfg: Config, out_dir: Path, dist: Dist, total: int, start: int) -> None:
        from tqdm.auto import tqdm

        tc = cfg.train
        self.cfg, self.dist, self.log_path = cfg, dist, out_dir / "log.jsonl"
        shown = dist.main and tc.progress and stderr_is_terminal()
        self.bar = tqdm(
            total=total, initial=start, unit="step", disable=not shown, dynamic_ncols=True
        )
        self.lines = (
            ProgressLog(total, start=start, logger=log) if dist.main and not shown else None
        )
        self.tracker = Tracker(tc.report_to, out_dir, enabled=dist.main)  # train.report_to
        self.sums = torch.zeros(len(cfg.objective) + 1, device=dist.device)
        self.window = {"rows": 0, "tokens": 0, "t": time.perf_counter(), "n": 0}

    def add(self, loss: torch.Tensor, values: list[torch.Tensor], batch: Batch) -> None:
        """Count one micro-batch: its losses (scaled by ``grad_accum``), rows and tokens."""
        grad_accum, world = self.cfg.train.grad_accum, self.dist.world
        self.sums += torch.stack([loss.detach(), *(v.detach() for v in values)]) / grad_accum
        self.window["rows"] += batch.n_rows * world
        self.window["tokens"] += batch.stats["tokens"] * world

    def stepped(self) -> None:
        self.window["n"] += 1
        self.bar.update(1)

    def train_line(self, step: int, lr: float, epoch: int) -> None:
        """Log the window's mean losses and throughput, then start a new window."""
        record = self._record(step, lr, epoch)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", pairs_s=f"{record['pairs_per_s']:.1f}")
        if self.lines is not None:
            self.lines.report(step, loss=record["loss"], pairs_per_s=record["pairs_per_s"])
        self.tracker.scalars("train", {k: v for k, v in record.items() if k != "step"}, step)
        if self.dist.main:
            ckpt.append_log(self.log_path, record)
        self.sums.zero_()
        self.window.update(rows=0, tokens=0, t=time.perf_counter(), n=0)

    def eval_line(self, step: int, metrics: dict[str, float], best: bool, seconds: float) -> None:
        """Log an evaluation (its ``seconds`` do not count as training throughput)."""
        ckpt.append_log(self.log_path, {"step": step, "eval": metrics, "best": best})
        self.tracker.scalars("eval", metrics, step)
        self.bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        self.window["t"] += seconds

    def close(self) -> None:
        self.bar.close()
        self.tracker.close()

    def _record(self, step: int, lr: float, epoch: int) -> dict[str, Any]:
        sums = self.sums
        if self.dist.world > 1:
            torch.distributed.all_reduce(sums)
            sums /= self.dist.world
        n = max(1, self.window["n"])
        seconds = max(time.perf_counter() - self.window["t"], 1e-9)
        values = (sums / n).tolist()
        record: dict[str, Any] = {"step": step, "epoch": epoch, "lr": lr, "loss": values[0]}
        for i, term in enumerate(self.cfg.objective):
            record[f"loss/{i}:{term.loss}"] = values[i + 1]
        record["pairs_per_s"] = self.window["rows"] / seconds
        record["tokens_per_s"] = self.window["tokens"] / seconds
        return record
