"""Progress of long work as log lines, for runs whose stderr is a file, not a terminal.

A tqdm bar redraws one line with carriage returns: fine on a terminal, unreadable (or
silent, when it is turned off as ``rerank cycle`` does) in a log file. Where no bar is
shown, training and scoring log a plain line instead, at most every ``every_s`` seconds
and at the end: what is done of the total, the rate, the time left, and for training
the loss. ``rerank train`` and ``rerank cycle`` log at INFO, so the lines appear there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "EVERY_S",
    "TRACKERS",
    "ProgressLog",
    "Tracker",
    "format_duration",
    "plot_training_log",
    "stderr_is_terminal",
]

#: Seconds between two progress lines.
EVERY_S = 30.0


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (where a tqdm bar is shown instead of log lines)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """``H:MM:SS``.

    Examples
    --------
    >>> format_duration(3725.4)
    '1:02:05'
    """
    s = int(max(seconds, 0) + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressLog:
    """Log ``what done/total (pct), rate, ETA`` lines at most every ``every_s`` seconds.

    Parameters
    ----------
    total
        Units of the whole job (steps, pairs).
    start
        Units already done when this process began (a resumed run): the rate and ETA
        count only the work done here.
    unit
        Name of a unit (``"step"``, ``"pair"``).
    logger
        Where lines go (INFO).
    every_s
        Least seconds between two lines; the first unit and the last always log.

    Examples
    --------
    >>> log = ProgressLog(100, unit="step", every_s=0)
    >>> log.line(50, loss=0.25).split(" (")[0]
    'step 50/100'
    """

    def __init__(
        self,
        total: int,
        *,
        start: int = 0,
        unit: str = "step",
        logger: logging.Logger | None = None,
        every_s: float = EVERY_S,
        desc: str = "",
    ) -> None:
        self.total = max(int(total), 0)
        self.start = self.done = int(start)
        self.unit = unit
        self.logger = logger or logging.getLogger("rerank.progress")
        self.every_s = every_s
        self.desc = desc
        self.t0 = time.perf_counter()
        self.last: float | None = None

    def line(self, done: int, **fields: float) -> str:
        """The text of a progress line at ``done`` units (``fields``: e.g. ``loss``)."""
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.desc}{self.unit} {done:,}/{self.total:,}{pct}"]
        parts += [f"{k} {v:.4f}" for k, v in fields.items()]
        parts.append(f"{rate:,.2f} {self.unit}s/s")
        if rate > 0 and self.total:
            parts.append(f"ETA {format_duration((self.total - done) / rate)}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        return ", ".join(parts)

    def update(self, n: int = 1, **fields: float) -> None:
        """``n`` more units done (tqdm's ``update``); logs when a line is due."""
        self.report(self.done + n, **fields)

    def report(self, done: int, *, force: bool = False, **fields: float) -> None:
        """``done`` units done in all; log a line if one is due (or ``force``)."""
        self.done = done
        now = time.perf_counter()
        due = self.last is None or now - self.last >= self.every_s or done >= self.total
        if due or force:
            self.last = now
            self.logger.info("%s", self.line(done, **fields))

    # tqdm-like no-ops, so that a ProgressLog can stand in for a bar
    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def plot_training_log(log_path: str | os.PathLike[str], png_path: str | os.PathLike[str]) -> bool:
    """Plot ``log.jsonl`` (loss per logged step, each objective term, eval measures) as a PNG.

    Written atomically beside the log by the training loop at the end of a run
    (``loss.png``). Returns whether there was anything to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rerank.atomic import atomic_path

    steps: list[dict[str, Any]] = []
    evals: list[tuple[int, dict[str, float]]] = []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "eval" in record:
            evals.append((record["step"], record["eval"]))
        elif "loss" in record:
            steps.append(record)
    if not steps:
        return False
    terms = [k for k in steps[0] if k.startswith("loss/")]
    panels = 2 if evals else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    xs = [r["step"] for r in steps]
    ax.plot(xs, [r["loss"] for r in steps], label="loss", linewidth=1.5)
    if len(terms) > 1:
        for term in terms:
            ax.plot(xs, [r.get(term) for r in steps], label=term[5:], linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_title("training loss")
    ax.legend(fontsize=7)
    if evals:
        ax = axes[0][1]
        names = list(evals[0][1])
        for name in names:
            ax.plot([s for s, _ in evals], [m.get(name) for _, m in evals], marker="o", label=name)
        ax.set_xlabel("step")
        ax.set_title("evaluation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


#: Experiment trackers ``train.report_to`` may name.
TRACKERS = ("tensorboard",)


class Tracker:
    """Scalars to the experiment trackers of ``train.report_to`` (TensorBoard).

    ``tensorboard`` writes event files under ``<output_dir>/tensorboard`` (``tensorboard
    --logdir <output_dir>/tensorboard``): ``train/loss``, each objective term, ``train/lr``,
    the throughput, and ``eval/<measure>`` at every evaluation. It needs the
    ``tensorboard`` package; without it the run stops at once with a one-line error.
    """

    def __init__(self, names: list[str], out_dir: str | os.PathLike[str], *, enabled: bool):
        from rerank.errors import RerankError

        unknown = [n for n in names if n not in TRACKERS]
        if unknown:
            raise RerankError(
                f"train.report_to: unknown tracker {unknown[0]!r}; available: {', '.join(TRACKERS)}"
            )
        self.writers: list[Any] = []
        if enabled and "tensorboard" in names:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RerankError(
                    "train.report_to: 'tensorboard' needs the tensorboard package "
                    "(pip install tensorboard)"
                ) from None
            self.writers.append(SummaryWriter(str(Path(out_dir) / "tensorboard")))

    def scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        """Log every number of ``values`` as ``<prefix>/<name>`` at ``step``."""
        for writer in self.writers:
            for name, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    writer.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
