"""Readers for GLUE task files, in their canonical and common non-canonical layouts.

Every reader returns one frame per file with the columns

``example_id`` (String), ``sentence1`` (String), ``sentence2`` (String; null for the
single-sentence tasks CoLA and SST-2) and ``label`` (Int64 class index in the task's
label order, or Float64 for STS-B; null when the file has no label column).

Layouts (the task's column aliases in :mod:`rerank.glue.tasks` decide which column is which):

- canonical GLUE TSVs (``glue_data/<TASK>/{train,dev}.tsv``: header line, no quoting);
  canonical CoLA has no header and four fields (source, label, mark, sentence);
- the Hugging Face ``glue`` export (``sentence1 sentence2 label idx`` and the like);
- the original MSRP files (``msr_paraphrase_{train,test}.txt``, with a UTF-8 BOM);
- a lower-cased CoLA copy: ``sentence<TAB>label`` without a header, or an ``x y`` header.

Fields are split on tabs only: GLUE text contains unbalanced quotes, so no quoting is
applied. A row with the wrong number of fields or an unparsable label is an error
naming the file, line and column (``on_error="skip"`` drops such rows and logs how many,
for the canonical QQP/MNLI releases, known to hold a few broken lines).

:func:`read_splits` finds a task's train/dev(/test) files in a directory and makes the
splits that are missing with a seeded, deterministic hold-out (MRPC dev from the MSRP
train file, QNLI train from its dev file); the result says what it did.
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from rerank.errors import RerankError, input_error
from rerank.glue.tasks import GlueTask, get_task
from rerank.tables.checks import first_repeat

log = logging.getLogger(__name__)

__all__ = ["GlueSplits", "holdout_split", "read_glue", "read_splits"]

COLUMNS = ("example_id", "sentence1", "sentence2", "label")

# Held-out sizes for the splits the shipped data lacks. MRPC: GLUE's own dev size (408 of
# the 4,076 MSRP train pairs). QNLI: 1,000 of the 5,463 GLUE dev pairs stay dev.
MRPC_DEV_SIZE = 408
QNLI_DEV_SIZE = 1000
SPLIT_SEED = 0


def read_glue(
    task: str | GlueTask,
    path: str | os.PathLike[str],
    *,
    labeled: bool = True,
    on_error: Literal["raise", "skip"] = "raise",
) -> pl.DataFrame:
    """Read one GLUE task file into ``example_id, sentence1, sentence2, label``.

    Parameters
    ----------
    task
        Task name (``"stsb"``, ``"STS-B"`` ...) or a :class:`GlueTask`.
    path
        A ``.tsv``/``.txt`` file, optionally ``.gz``.
    labeled
        Require a label column (``False`` reads unlabeled test files; ``label`` is null).
    on_error
        ``"raise"``: the first malformed row raises :class:`RerankError`;
        ``"skip"``: malformed rows are dropped and counted in the log.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "dev.tsv"
    >>> _ = p.write_text("sentence1\\tsentence2\\tlabel\\tidx\\nA cat.\\tA dog.\\t1\\t0\\n")
    >>> read_glue("rte", p).rows()
    [('0', 'A cat.', 'A dog.', 1)]
    """
    task = get_task(task) if isinstance(task, str) else task
    lines = _lines(path)
    if not lines or not lines[0].strip():
        raise input_error(path, "the file is empty", row=1)
    first = lines[0].split("\t")
    s1, s2, lab, ident, start, n_fields = _layout(task, first, path, labeled)
    ids: list[str] = []
    s1s: list[str] = []
    s2s: list[str | None] = []
    labels: list[int | float | None] = []
    skipped: list[RerankError] = []
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.split("\t")
        try:
            if len(fields) != n_fields:
                raise input_error(
                    path, f"expected {n_fields} tab-separated fields, got {len(fields)}", row=number
                )
            label = None
            if lab is not None:
                try:
                    label = task.parse_label(fields[lab[0]])
                except ValueError as err:
                    raise input_error(path, str(err), row=number, column=lab[1]) from None
        except RerankError as err:
            if on_error == "raise":
                raise
            skipped.append(err)
            continue
        ids.append(fields[ident].strip() if ident is not None else str(len(ids) + len(skipped)))
        s1s.append(fields[s1])
        s2s.append(fields[s2] if s2 is not None else None)
        labels.append(label)
    if skipped:
        log.warning("%s: skipped %d malformed rows (first: %s)", path, len(skipped), skipped[0])
    return _frame(task, ids, s1s, s2s, labels, path, start)


def _frame(
    task: GlueTask,
    ids: list[str],
    s1s: list[str],
    s2s: list[str | None],
    labels: list[int | float | None],
    path: str | os.PathLike[str],
    start: int,
) -> pl.DataFrame:
    """The task's frame of the parsed rows; example ids are unique."""
    if not ids:
        raise input_error(path, "no rows")
    frame = pl.DataFrame(
        {"example_id": ids, "sentence1": s1s, "sentence2": s2s, "label": labels},
        schema={
            "example_id": pl.String,
            "sentence1": pl.String,
            "sentence2": pl.String,
            "label": pl.Float64 if task.is_regression else pl.Int64,
        },
    )
    at = first_repeat(frame, ["example_id"])
    if at is not None:
        raise input_error(
            path,
            f"example id {frame['example_id'][at]!r} occurs more than once",
            row=at + start + 1,
            column="example_id",
        )
    return frame


def _lines(path: str | os.PathLike[str]) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise input_error(path, "no such file")
    raw = p.read_bytes()
    if p.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")  # the MSRP files start with a BOM
    except UnicodeDecodeError as err:
        raise input_error(path, f"not UTF-8 text (byte {err.start})") from None
    # split on newlines only: str.splitlines would also split on \x1c, \u2028 ... in the text
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _layout(
    task: GlueTask, first: list[str], path: str | os.PathLike[str], labeled: bool
) -> tuple[int, int | None, tuple[int, str] | None, int | None, int, int]:
    """(sentence1, sentence2, (label, name), example_id) field indices, first data line, fields."""
    header = [f.strip() for f in first]
    s1 = _pick(header, task.sentence1)
    if s1 is not None:
        s2 = _pick(header, task.sentence2) if task.input == "pair" else None
        if task.input == "pair" and s2 is None:
            raise input_error(path, f"missing column {_alts(task.sentence2)}; have {header}", row=1)
        lab = _pick(header, task.label)
        if lab is None and labeled:
            raise input_error(path, f"missing column {_alts(task.label)}; have {header}", row=1)
        ident = _pick(header, task.example_id)
        label = (lab, header[lab]) if lab is not None else None
        return s1, s2, label, ident, 1, len(header)
    if len(first) in task.headerless:
        a, b, lab = task.headerless[len(first)]
        return a, b, (lab, "label"), None, 0, len(first)
    counts = " or ".join(str(n) for n in task.headerless)
    without = f", or {counts} tab-separated fields without a header" if counts else ""
    raise input_error(
        path,
        f"expected a {task.name} header naming {_alts(task.sentence1)}{without}; "
        f"got {len(first)} fields: {header[:6]}",
        row=1,
    )


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def _alts(names: tuple[str, ...]) -> str:
    return " or ".join(repr(n) for n in names)


# --- splits ---------------------------------------------------------------------------------


@dataclass
class GlueSplits:
    """A task's splits and how they were made.

    ``test`` is a *labeled* test split when one exists (MRPC's MSRP test file); canonical
    GLUE test files have no labels and are not read here. ``notes`` says which files were
    read and which splits were made by a seeded hold-out.
    """

    task: GlueTask
    train: pl.DataFrame
    dev: pl.DataFrame
    test: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def holdout_split(
    frame: pl.DataFrame, size: int, *, seed: int = SPLIT_SEED
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` into (rest, held out ``size`` rows), both in their original order.

    The held-out rows are the first ``size`` of ``numpy.random.default_rng(seed)
    .permutation(n)``: the same file and seed always give the same split.

    Examples
    --------
    >>> rest, held = holdout_split(pl.DataFrame({"x": range(10)}), 3, seed=0)
    >>> held["x"].to_list(), rest.height
    ([2, 4, 6], 7)
    """
    if not 0 < size < frame.height:
        raise RerankError(f"holdout_split: cannot hold out {size} of {frame.height} rows")
    order = np.random.default_rng(seed).permutation(frame.height)
    held = np.zeros(frame.height, dtype=bool)
    held[order[:size]] = True
    mask = pl.Series(held)
    return frame.filter(~mask), frame.filter(mask)


def read_splits(
    task: str | GlueTask,
    directory: str | os.PathLike[str],
    *,
    split_seed: int = SPLIT_SEED,
    on_error: Literal["raise", "skip"] = "raise",
) -> GlueSplits:
    """Find and read a task's splits in ``directory`` (the task folder or the GLUE root).

    Files looked for: ``train.tsv[.gz]``, ``dev.tsv`` (MNLI: ``dev_matched.tsv``; the
    lower-cased CoLA: ``in_domain_dev.tsv`` + ``out_of_domain_dev.tsv``, which together
    are GLUE's CoLA dev set), MRPC's ``msr_paraphrase_{train,test}.txt``. A missing
    split is made from another by :func:`holdout_split` with ``split_seed`` (kept apart
    from the training seed so that every training seed sees the same dev set):

    - MRPC without ``dev.tsv``: 408 of the MSRP train pairs (GLUE's dev size) become dev;
      the MSRP test file (= GLUE's MRPC test set, labeled) is the test split.
    - QNLI without ``train.tsv``: 1,000 of the dev pairs stay dev, the rest become train.
    """
    task = get_task(task) if isinstance(task, str) else task
    folder = _task_folder(task, Path(directory))
    notes: list[str] = []

    def find(*names: str) -> Path | None:
        return next((folder / n for n in names if (folder / n).is_file()), None)

    def read(path: Path) -> pl.DataFrame:
        notes.append(f"read {path}")
        return read_glue(task, path, on_error=on_error)

    train_path = find("train.tsv", "train.tsv.gz", "msr_paraphrase_train.txt")
    dev_names = ("dev_matched.tsv",) if task.name == "mnli" else ("dev.tsv", "dev.tsv.gz")
    dev_path = find(*dev_names)
    train = read(train_path) if train_path else None
    dev = read(dev_path) if dev_path else None
    if dev is None and find("in_domain_dev.tsv") and find("out_of_domain_dev.tsv"):
        parts = [read(folder / n) for n in ("in_domain_dev.tsv", "out_of_domain_dev.tsv")]
        dev = pl.concat(
            [
                part.with_columns((pl.lit(tag) + pl.col("example_id")).alias("example_id"))
                for tag, part in zip(("in-", "out-"), parts, strict=True)
            ]
        )
        notes.append("dev = in-domain + out-of-domain dev (GLUE's CoLA dev set)")
    test_path = find("msr_paraphrase_test.txt") if task.name == "mrpc" else None
    test = read(test_path) if test_path else None
    if train is not None and dev is None and task.name == "mrpc":
        train, dev = holdout_split(train, MRPC_DEV_SIZE, seed=split_seed)
        notes.append(
            f"no MRPC dev file: dev = {dev.height} pairs held out of the train file "
            f"(seed {split_seed}), train = the other {train.height}"
        )
    elif train is None and dev is not None and task.name == "qnli":
        train, dev = holdout_split(dev, QNLI_DEV_SIZE, seed=split_seed)
        notes.append(
            f"no QNLI train file: train = {train.height} pairs of the GLUE dev file, "
            f"dev = the other {dev.height} (seed {split_seed}); not comparable to GLUE dev"
        )
    if train is None or dev is None:
        which = "train" if train is None else "dev"
        raise input_error(folder, f"no {task.name} {which} file found")
    for note in notes:
        log.info("%s: %s", task.name, note)
    return GlueSplits(task, train, dev, test, notes)


def _task_folder(task: GlueTask, directory: Path) -> Path:
    if not directory.is_dir():
        raise input_error(directory, "no such directory")
    for name in task.dirs:
        if (directory / name).is_dir():
            return directory / name
    return directory
