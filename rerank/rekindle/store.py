"""The teacher-score store: rekindle pairs scored once by one or more teachers.

A teacher is any expert that gives a (query, document) pair a number: a ranking model (a
*cross-encoder*, :mod:`rerank.score`), a sentence-embedding model used zero-shot (a
*bi-encoder*: cosine of the two texts' embeddings, :mod:`rerank.dense`), or a first-stage
*run* (a TREC run or a scored table ``query_id, doc_id, score`` such as BM25's, read by
:func:`rerank.data.read_scores` and joined onto the rekindle rows by ``(query_id,
doc_id)``; every rekindle pair must be in it). ``kind = "auto"`` takes a file for a run and
detects a directory's kind as ``rerank score --kind auto`` does
(:func:`rerank.dense.detect_kind`).

A store is one Parquet file: the rekindle rows (``query_id, doc_id, query, title,
summary``) plus one ``Float64`` column ``teacher:<name>`` per teacher, the targets of
expert-guided pre-training. Its provenance lives in the Parquet key-value metadata under
``rerank.provenance`` (JSON), so data and provenance can never drift apart::

    {"data": {"path": ..., "sha256": ..., "rows": 5998},
     "teachers": {"t1": {"kind": "cross-encoder", "path": ..., "head": "score",
                         "max_length": 192, "weights": {"model.safetensors": "<sha256>"}},
                  "dense": {"kind": "bi-encoder", "path": "default", "head": null,
                            "max_length": null, "weights": {"model.safetensors": ...,
                            "modules.json": ..., "1_Pooling/config.json": ...}},
                  "bm25": {"kind": "run", "path": "bm25.run", "head": null,
                           "max_length": null, "sha256": "<sha256 of the run file>"}},
     "created": "2025-01-01T00:00:00+00:00", "rerank_version": "0.1.0"}

Scoring is expensive, so :func:`build_store` reuses what it can: a teacher column is kept
when the data file's hash and the teacher's record (kind, weight hashes, head, max length;
a run's file hash) are unchanged, and only changed or new teachers are scored. A
cross-encoder's weights hash is the sha256 of ``model.safetensors`` (and of
``rerank_heads.safetensors`` when the teacher has extra heads), so retraining a teacher in
place is noticed even when its path stays the same; a bi-encoder's covers its weights,
tokenizer and pooling configs (:func:`rerank.dense.scoring_files`). A bi-encoder scores at
its checkpoint's own ``max_seq_length``; ``max_length`` applies to cross-encoders. A
record without ``kind`` (a store built before kinds) is a cross-encoder's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rerank import __version__
from rerank.atomic import atomic_path
from rerank.errors import RerankError, input_error
from rerank.tables.columns import PAIRS, teacher_column

__all__ = [
    "TEACHER_KINDS",
    "StoreResult",
    "Teacher",
    "TeacherKind",
    "build_store",
    "file_sha256",
    "read_provenance",
    "read_store",
    "teacher_column",
    "teacher_kind",
]

log = logging.getLogger(__name__)

PROVENANCE_KEY = "rerank.provenance"
WEIGHT_FILES = ("model.safetensors", "rerank_heads.safetensors")

Scorer = Callable[[Path, pl.DataFrame, str | None, int], "pl.Series"]
"""``(teacher_dir, rows, head, max_length) -> scores``: how a cross-encoder teacher scores rows."""

TeacherKind = Literal["auto", "cross-encoder", "bi-encoder", "run"]
TEACHER_KINDS: tuple[str, ...] = ("auto", "cross-encoder", "bi-encoder", "run")


@dataclass(frozen=True)
class Teacher:
    """A teacher: a model directory or a run file, and how it scores.

    Parameters
    ----------
    name
        Column suffix (``teacher:<name>``) and, in multi-teacher rekindle, the name of the
        student head that learns from it.
    path
        The teacher's model directory (``"default"``: all-MiniLM-L6-v2), or a run file.
    head
        Which of a cross-encoder teacher's heads scores (``None``: its primary head).
    kind
        ``cross-encoder``, ``bi-encoder``, ``run`` or ``auto`` (see :func:`teacher_kind`).
    """

    name: str
    path: Path
    head: str | None = None
    kind: TeacherKind = "auto"

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in ":/\\ \t"):
            raise RerankError(
                f"Teacher: name '{self.name}' must be non-empty without ':', '/', or spaces"
            )
        if self.kind not in TEACHER_KINDS:
            raise RerankError(
                f"teacher '{self.name}': kind must be one of {', '.join(TEACHER_KINDS)}, "
                f"got '{self.kind}'"
            )
        if self.head and self.kind in ("bi-encoder", "run"):
            raise RerankError(f"teacher '{self.name}': a {self.kind} teacher has no head to choose")


def teacher_kind(teacher: Teacher) -> str:
    """The teacher's kind, ``auto`` resolved: a file is a run, a directory is detected.

    A directory with a trained ranking head is a cross-encoder, a sentence-transformers
    directory (or ``"default"``) without one a bi-encoder, any other a cross-encoder
    (:func:`rerank.dense.detect_kind`, as ``rerank score --kind auto``).
    """
    if teacher.kind != "auto":
        return teacher.kind
    if Path(teacher.path).is_file():
        kind = "run"
    else:
        from rerank.dense import detect_kind

        kind = detect_kind(teacher.path)
    if kind != "cross-encoder" and teacher.head:
        raise RerankError(f"teacher '{teacher.name}': a {kind} teacher has no head to choose")
    return kind


@dataclass(frozen=True)
class StoreResult:
    """What :func:`build_store` did: the store path, teachers scored and teachers reused."""

    path: Path
    scored: tuple[str, ...]
    reused: tuple[str, ...]


def file_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _weights_hashes(path: Path) -> dict[str, str]:
    if not (path / "model.safetensors").is_file():
        raise RerankError(f"{path}: no model.safetensors: expected a saved teacher model directory")
    return {name: file_sha256(path / name) for name in WEIGHT_FILES if (path / name).is_file()}


def _teacher_record(teacher: Teacher, max_length: int | None) -> dict[str, Any]:
    kind = teacher_kind(teacher)
    path = Path(teacher.path)
    record: dict[str, Any] = {"kind": kind, "path": str(teacher.path), "head": None}
    if kind == "run":
        if not path.is_file():
            raise input_error(path, f"teacher '{teacher.name}': run file does not exist")
        return {**record, "max_length": None, "sha256": file_sha256(path)}
    if kind == "bi-encoder":
        from rerank.dense import resolve_model_path, scoring_files

        root = resolve_model_path(teacher.path)
        files = {f.relative_to(root).as_posix(): file_sha256(f) for f in scoring_files(root)}
        return {**record, "max_length": None, "weights": files}
    from rerank.model import saved_input_lengths

    return {
        **record,
        "head": teacher.head,
        "weights": _weights_hashes(path),
        "max_length": max_length or saved_input_lengths(path)["max_length"],
    }


def _same_scoring(old: dict[str, Any], new: dict[str, Any]) -> bool:
    # The path may move (a copied run directory); the kind, weights (or the run file's
    # hash), head and length decide. A record from before kinds is a cross-encoder's.
    if old.get("kind", "cross-encoder") != new["kind"]:
        return False
    keys = ("head", "max_length", "weights", "sha256")
    return all(old.get(k) == new.get(k) for k in keys)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record of a store (``{}`` when the file has none)."""
    try:
        meta = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.ComputeError) as err:
        raise input_error(path, f"cannot read Parquet metadata: {err}") from err
    raw = meta.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def read_store(path: str | os.PathLike[str]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read a store: its rows (with every ``teacher:<name>`` column) and its provenance."""
    if not Path(path).is_file():
        raise input_error(path, "teacher-score store does not exist (run the scoring stage first)")
    return pl.read_parquet(path), read_provenance(path)


def _default_scorer(path: Path, rows: pl.DataFrame, head: str | None, max_length: int) -> pl.Series:
    from rerank.model import RerankModel
    from rerank.score import score_frame

    model = RerankModel.from_pretrained(path)
    scores = score_frame(
        model, rows, heads=None if head is None else (head,), max_length=max_length, progress=True
    )
    return pl.Series(scores.reshape(len(rows), -1)[:, 0], dtype=pl.Float64)


def _bi_encoder_scores(path: Path, rows: pl.DataFrame) -> pl.Series:
    from rerank.dense import BiEncoder

    scores = BiEncoder.from_pretrained(path).score_frame(rows, progress=True)
    return pl.Series(scores, dtype=pl.Float64)


def _run_scores(path: Path, rows: pl.DataFrame) -> pl.Series:
    """The run's score of every rekindle row, joined by ``(query_id, doc_id)``."""
    from rerank.data import read_scores

    ids = ["query_id", "doc_id"]
    run = read_scores(path).select(*ids, pl.col("score").alias("_run_score"))
    keys = rows.select(pl.col(c).cast(pl.String) for c in ids).with_row_index("_row")
    joined = keys.join(run, on=ids, how="left").sort("_row")
    missing = joined.filter(pl.col("_run_score").is_null())
    if missing.height:
        q, d = missing.row(0)[1:3]
        raise input_error(
            path,
            f"the run has no score for (query_id {q!r}, doc_id {d!r}) of the rekindle data "
            f"({missing.height} of {rows.height} rekindle pairs missing); a run teacher must "
            "score every rekindle pair",
        )
    return joined.get_column("_run_score").alias("score")


def build_store(
    data: str | os.PathLike[str],
    teachers: Sequence[Teacher],
    out: str | os.PathLike[str],
    *,
    max_length: int | None = None,
    scorer: Scorer | None = None,
) -> StoreResult:
    """Score the rekindle rows of ``data`` with every teacher into the store ``out``.

    Parameters
    ----------
    data
        Unlabeled rekindle pairs (``query_id, doc_id, query, title, summary``; a
        ``label`` column, if any, is ignored), in any format :mod:`rerank.data` reads.
    teachers
        The teachers; their names must be distinct.
    out
        The store (``.parquet``). Written atomically.
    max_length
        Token length the cross-encoder teachers score at (part of the provenance);
        ``None``: each teacher's own input lengths, saved with it
        (:func:`rerank.model.saved_input_lengths`), its query cap included.
    scorer
        How a cross-encoder teacher scores rows (default: :func:`rerank.score.score_frame`
        on the loaded model). Tests pass a cheap one. Bi-encoder teachers score with
        :class:`rerank.dense.BiEncoder`, run teachers by the join above.

    Returns
    -------
    StoreResult
        Which teachers were scored and which reused from an existing store. When every
        teacher is reused and nothing else changed, the file is left untouched.
    """
    names = [t.name for t in teachers]
    data, out = _check_inputs(Path(data), names, Path(out))
    data_record = {"path": str(data), "sha256": file_sha256(data)}
    records = {t.name: _teacher_record(t, max_length) for t in teachers}

    old_frame: pl.DataFrame | None = None
    old: dict[str, Any] = {}
    if out.is_file():
        old = read_provenance(out)
        if old.get("data", {}).get("sha256") == data_record["sha256"]:
            old_frame = pl.read_parquet(out)
        else:
            log.info("%s: rekindle data changed since the store was built; rescoring all", out)
    reuse = {
        name
        for name, rec in records.items()
        if old_frame is not None
        and teacher_column(name) in old_frame.columns
        and _same_scoring(old.get("teachers", {}).get(name, {}), rec)
    }
    if reuse == set(names) and set(old.get("teachers", {})) == set(names):
        log.info("%s: every teacher's scores are up to date; reusing the store", out)
        return StoreResult(out, (), tuple(names))

    rows = _read_rows(data) if old_frame is None else old_frame.select(PAIRS)
    columns = [
        old_frame.get_column(teacher_column(t.name))
        if old_frame is not None and t.name in reuse
        else _scores(t, records[t.name], rows, scorer or _default_scorer)
        for t in teachers
    ]
    frame = rows.with_columns(columns)
    provenance = {
        "data": {**data_record, "rows": rows.height},
        "teachers": records,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rerank_version": __version__,
    }
    with atomic_path(out) as tmp:
        frame.write_parquet(tmp, metadata={PROVENANCE_KEY: json.dumps(provenance, sort_keys=True)})
    scored = tuple(n for n in names if n not in reuse)
    return StoreResult(out, scored, tuple(n for n in names if n in reuse))


def _check_inputs(data: Path, names: list[str], out: Path) -> tuple[Path, Path]:
    if not names:
        raise RerankError("build_store: at least one teacher is needed")
    if len(set(names)) != len(names):
        raise RerankError(f"build_store: teacher names must be distinct, got {names}")
    if out.suffix != ".parquet":
        raise input_error(out, "the teacher-score store must be a .parquet file")
    if not data.is_file():
        raise input_error(data, "rekindle data file does not exist")
    return data, out


def _scores(
    teacher: Teacher, record: dict[str, Any], rows: pl.DataFrame, scorer: Scorer
) -> pl.Series:
    """Teacher ``teacher``'s column of the store: its score of every row.

    ``record`` is the teacher's provenance record: its kind and the input length it
    scores at.
    """
    kind = record["kind"]
    log.info(
        "scoring %d rekindle pairs with %s teacher '%s' (%s)",
        rows.height,
        kind,
        teacher.name,
        teacher.path,
    )
    if kind == "run":
        scores = _run_scores(Path(teacher.path), rows)
    elif kind == "bi-encoder":
        scores = _bi_encoder_scores(Path(teacher.path), rows)
    else:
        scores = scorer(Path(teacher.path), rows, teacher.head, record["max_length"])
    if len(scores) != rows.height:
        raise RerankError(
            f"teacher '{teacher.name}': scorer returned {len(scores)} scores for {rows.height} rows"
        )
    # a classification teacher (GLUE) returns per-class logits as a List(Float64) column
    nested = isinstance(scores, pl.Series) and scores.dtype.is_nested()
    return pl.Series(teacher_column(teacher.name), scores, dtype=None if nested else pl.Float64)


def _read_rows(path: Path) -> pl.DataFrame:
    from rerank.data import read_pairs

    return read_pairs(path, labels="optional").select(PAIRS)
