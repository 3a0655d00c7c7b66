"""Streaming pairs tables in and score tables out, chunk by chunk and shard by shard.

The plumbing of :func:`rerank.score.score_file`: a pairs table is scanned lazily
(polars ``scan_parquet``/``scan_csv``/``scan_ndjson``) and read ``chunk_rows`` rows at
a time (:mod:`rerank.tables.chunks`), so inputs larger than memory stream through. Each chunk's scores go to a small
Parquet part file in a scratch directory beside the output; when every chunk (of every
rank, under ``torchrun``) is done, the parts are merged in input order into the output,
atomically. On any error the scratch directory goes and no output appears; a scratch
directory left by a killed run (``kill -9``) is removed by the next run writing the
same output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rerank.atomic import atomic_path, glob_escape, process_alive, write_error
from rerank.data import write_trec_run
from rerank.errors import RerankError, input_error
from rerank.tables.chunks import count_rows, iter_chunks
from rerank.tables.files import Source

__all__ = [
    "Shards",
    "make_parts_dir",
    "output_format",
    "progress_bar",
    "score_pairs_file",
    "stream_scores",
    "write_parts",
]

log = logging.getLogger(__name__)

_OUTPUTS = {
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".run": "trec",
    ".trec": "trec",
}


def output_format(path: str | os.PathLike[str], *, n_heads: int = 1) -> str:
    """Check an output path up front; return ``tsv``, ``parquet``, ``jsonl`` or ``trec``."""
    kind = _OUTPUTS.get(Path(path).suffix.lower())
    if kind is None:
        raise input_error(path, "unknown output format; use .tsv, .parquet, .jsonl, .run or .trec")
    if kind == "trec" and n_heads != 1:
        raise input_error(path, f"a TREC run holds one score; {n_heads} heads asked for")
    if Path(path).is_dir():
        raise input_error(path, "is a directory; expected an output file name")
    return kind


def make_parts_dir(out_path: str | os.PathLike[str]) -> str | RerankError:
    """A scratch directory beside the output (so an unwritable place fails before scoring).

    It holds an ``owner`` file (host and process id); scratch directories of the same
    output whose owner is gone (a run killed with ``kill -9``) are removed first.
    """
    out = Path(out_path)
    made = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(out)
        made = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".parts", dir=out.parent)
        (Path(made) / "owner").write_text(f"{socket.gethostname()} {os.getpid()}\n")
        return made
    except OSError as err:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        return write_error(out_path, err) or input_error(
            out_path, f"cannot write here: {err.strerror or err}"
        )


def remove_stale_parts(out: Path) -> list[Path]:
    """Remove scratch directories of ``out`` whose run is no longer alive; return them.

    A directory without an ``owner`` file (an interrupted start) or owned by a process of
    this host that no longer exists is stale; one owned by another host is left alone
    (the output directory may be shared by several machines).
    """
    removed = []
    for parts in out.parent.glob(f".{glob_escape(out.name)}.*.parts"):
        if parts.is_dir() and not _owner_alive(parts / "owner"):
            shutil.rmtree(parts, ignore_errors=True)
            removed.append(parts)
    return removed


def _owner_alive(owner: Path) -> bool:
    try:
        host, pid = owner.read_text().split()
        return process_alive(host, int(pid))
    except (OSError, ValueError):
        return False  # no owner file, or a damaged one


def part_path(parts_dir: str | os.PathLike[str], rank: int, offset: int) -> Path:
    # zero-padded so that sorting the names restores the input order across ranks
    return Path(parts_dir) / f"part-{rank:05d}-{offset:012d}.parquet"


def write_parts(
    parts_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: str,
    columns: Sequence[str],
) -> None:
    """Merge the part files (in name order) into ``out_path``, atomically.

    Tables are streamed from the parts to the output (polars sinks); a TREC run is
    ranked per query in memory (ids and scores only) by :func:`rerank.data.write_trec_run`.
    """
    parts = sorted(Path(parts_dir).glob("part-*.parquet"))
    schema = {"query_id": pl.String, "doc_id": pl.String, **dict.fromkeys(columns, pl.Float64)}
    lazy = pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=schema)
    if fmt == "trec":
        write_trec_run(lazy.rename({columns[0]: "score"}).collect(), out_path)
        return
    if fmt == "tsv":
        unsafe = pl.col("query_id", "doc_id").str.contains(r"[\t\n\r]").any()
        if lazy.select(unsafe).collect().row(0) != (False, False):
            raise input_error(
                out_path,
                "an id holds a tab or line break, which TSV cannot represent; "
                "write .parquet or .jsonl instead",
            )
    try:
        with atomic_path(out_path) as tmp:
            if fmt == "parquet":
                lazy.sink_parquet(tmp)
            elif fmt == "tsv":
                lazy.sink_csv(tmp, separator="\t", quote_style="never")
            else:
                lazy.sink_ndjson(tmp)
    except OSError as err:
        raise input_error(out_path, f"cannot write: {err.strerror or err}") from None


def stream_scores(
    lazy: pl.LazyFrame,
    source: Source,
    out_path: str | os.PathLike[str],
    score_chunk: Callable[[pl.DataFrame, Any], pl.DataFrame],
    *,
    fmt: str,
    columns: Sequence[str],
    chunk_rows: int,
    progress: bool | None,
) -> Shards:
    """Run ``score_chunk`` over every chunk of the table and write the merged output.

    ``score_chunk(chunk, bar)`` returns ``query_id, doc_id`` and the score ``columns``
    of the chunk's rows, in order, and advances the progress ``bar`` (or ``None``).
    Under ``torchrun`` each rank runs its slice; errors of any rank reach every rank
    as one :class:`RerankError`, and nothing is written then.
    """
    total = count_rows(lazy, source)
    shards = Shards.from_env()
    try:
        made = make_parts_dir(out_path) if shards.rank == 0 else None
        parts_dir = shards.broadcast(made)
        if isinstance(parts_dir, RerankError):
            raise parts_dir
        error: str | None = None
        start, stop = shards.slice(total)
        try:
            with progress_bar(stop - start, progress if shards.rank == 0 else False) as bar:
                for offset, chunk in iter_chunks(lazy, source, start, stop, chunk_rows):
                    table = score_chunk(chunk, bar)
                    table.write_parquet(part_path(parts_dir, shards.rank, offset))
        except RerankError as err:
            error = str(err)
        except BaseException as err:
            mapped = write_error(out_path, err) if isinstance(err, Exception) else None
            if mapped is not None:  # a part file could not be written (full disk)
                error = str(mapped)
            elif shards.world == 1 or not isinstance(err, Exception):
                shutil.rmtree(parts_dir, ignore_errors=True)
                raise
            else:
                log.exception("rank %d failed while scoring", shards.rank)
                error = f"rank {shards.rank} failed while scoring (see its traceback)"
        errors = [e for e in shards.gather(error) if e]
        if shards.rank == 0:
            try:
                if not errors:
                    write_parts(parts_dir, out_path, fmt, columns)
            except RerankError as err:
                errors.append(str(err))
            finally:
                shutil.rmtree(parts_dir, ignore_errors=True)
        errors = shards.broadcast(errors)
        if errors:
            raise RerankError(errors[0])
        return dataclasses.replace(shards, rows=total)
    finally:
        shards.close()


def score_pairs_file(
    lazy: pl.LazyFrame,
    source: Source,
    out_path: str | os.PathLike[str],
    scores_of: Callable[[pl.DataFrame, Any], Any],
    *,
    model: str | os.PathLike[str] | None,
    fmt: str,
    columns: Sequence[str],
    chunk_rows: int,
    progress: bool | None,
) -> tuple[Shards, float]:
    """Every scorer's file loop: :func:`stream_scores` with the one score table per chunk.

    ``scores_of(chunk, bar)`` gives the chunk's scores, ``[n]`` or ``[n, len(columns)]``
    (row order), and advances ``bar``; non-finite scores are refused naming ``model``
    (:func:`rerank.inference.check_finite`). Returns the shards and the seconds taken.
    """
    import numpy as np

    from rerank.inference import check_finite

    def score_chunk(chunk: pl.DataFrame, bar: Any) -> pl.DataFrame:
        scores = np.asarray(scores_of(chunk, bar)).reshape(chunk.height, -1)
        check_finite(scores, chunk, model)
        return chunk.select("query_id", "doc_id").with_columns(
            pl.Series(c, scores[:, j], dtype=pl.Float64) for j, c in enumerate(columns)
        )

    t0 = time.perf_counter()
    shards = stream_scores(
        lazy,
        source,
        out_path,
        score_chunk,
        fmt=fmt,
        columns=columns,
        chunk_rows=chunk_rows,
        progress=progress,
    )
    return shards, time.perf_counter() - t0


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool | None) -> Iterator[Any]:
    """A tqdm bar counting pairs (pairs/s, ETA) on stderr; ``None``: only on a terminal.

    Where stderr is not a terminal (a log file) the bar is a
    :class:`rerank.progress.ProgressLog`: a log line at most every 30 s.
    """
    if enabled is False:
        yield None
        return
    from rerank.progress import ProgressLog, stderr_is_terminal

    if not stderr_is_terminal():
        yield ProgressLog(total, unit="pair", desc="scoring: ")
        return
    from tqdm import tqdm

    with tqdm(
        total=total,
        unit="pair",
        desc="scoring",
        smoothing=0.1,
        dynamic_ncols=True,
        disable=None if enabled is None else False,
    ) as bar:
        yield bar


@dataclass(frozen=True)
class Shards:
    """Rank and world size; under ``torchrun`` (``WORLD_SIZE`` > 1) a gloo process group.

    gloo only carries small Python objects here (the scratch path, error messages), so
    it serves CPU and GPU runs alike; the scores travel through the part files.
    """

    rank: int = 0
    world: int = 1
    owns_group: bool = False
    rows: int = 0  # rows of the whole table, once scored

    @classmethod
    def from_env(cls) -> Shards:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="gloo")
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    def slice(self, total: int) -> tuple[int, int]:
        """This rank's contiguous rows ``start, stop`` of ``total``."""
        return self.rank * total // self.world, (self.rank + 1) * total // self.world

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
