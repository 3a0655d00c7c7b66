"""Progress of long work as log lines, for runs whose stderr is a file, not a terminal.

A tqdm bar redraws one line with carriage returns: fine on a terminal, unreadable (or
silent, when it is turned off as ``rerank cycle`` does) in a log file. Where no bar is
shown, training and scoring log a plain line instead, at most every ``every_s`` seconds
and at the end: what is done of the total, the rate, the time left, and for training
the loss. ``rerank train`` and ``rerank cycle`` log at INFO, so the lines appear there.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["EVERY_S", "ProgressLog", "format_duration", "stderr_is_terminal"]

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
