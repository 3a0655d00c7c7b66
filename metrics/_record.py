"""What the scripts making the metrics records share (a module beside them, not a package).

The repository and its commit, how a script was run, logged subprocesses run a few at a
time, the mean and sample standard deviation of a list of figures, the record writer,
and the stage records (``done.json``, :mod:`rerank.pipeline`'s one schema) of a cycle.
A script run as ``python metrics/<name>.py`` imports it as ``_record``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def git(*args: str) -> str:
    """``git ARGS`` in the repository (its stdout, stripped; empty when git fails)."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def command_line() -> str:
    """How this script was run, for the record."""
    return "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation); ``None`` where there are too few values."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def run_logged(cmd: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None) -> None:
    """Run ``cmd`` in the repository, appending the command and its output to ``log``.

    A failure stops the script (one line naming the log).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        done = subprocess.run(
            list(cmd),
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    if done.returncode:
        raise SystemExit(f"{Path(cmd[0]).name} {cmd[1]} failed (exit {done.returncode}); see {log}")


def run_jobs(jobs: Sequence[Callable[[], None]], at_once: int) -> None:
    """Run ``jobs`` (each typically :func:`run_logged`), ``at_once`` at a time, in order."""
    with ThreadPoolExecutor(max(1, at_once)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def write_record(name: str, record: dict, text: str, *, sort_keys: bool = False) -> None:
    """``metrics/<name>.json`` (``record``) and ``metrics/<name>.md`` (``text``), atomically."""
    from rerank.atomic import atomic_path

    out = ROOT / "metrics" / name
    data = json.dumps(record, indent=2, sort_keys=sort_keys) + "\n"
    for suffix, body in ((".json", data), (".md", text)):
        with atomic_path(out.with_suffix(suffix)) as tmp:
            tmp.write_text(body)
    print(text)


def stage_records(root: Path) -> Iterator[dict[str, Any]]:
    """Every finished stage's ``done.json`` under ``root`` (a cycle's output), in path order."""
    from rerank.pipeline import DONE, read_done

    for path in sorted(root.rglob(DONE)):
        yield read_done(path)
