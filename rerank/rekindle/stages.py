"""The stages of the rekindle cycle: each a function returning a JSON-able result.

:class:`Stages` runs a stage at most once: its ``done.json`` (written last, atomically)
holds the result, and a stage whose ``done.json`` exists is skipped. Training stages resume
from their last checkpoint when one exists and start clean otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from rerank.atomic import atomic_path
from rerank.config import Config, HeadConfig, apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.rekindle.cycle_config import CycleConfig
from rerank.rekindle.pretrain import (
    RekindleConfig,
    TeacherConfig,
    ablate,
    pretrain,
    release_memory,
)

log = logging.getLogger(__name__)

DONE = "done.json"

# -- stage bookkeeping -------------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


class Stages:
    """Runs stages at most once; ``done.json`` (written last) marks a complete stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.ran: list[str] = []

    def run(self, name: str, where: Path, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = where / DONE
        if marker.is_file():
            self.timings[name] = 0.0
            return json.loads(marker.read_text())["result"]
        log.info("cycle: stage %s -> %s", name, where)
        start = time.perf_counter()
        result = fn()
        release_memory()
        seconds = time.perf_counter() - start
        _write_json(marker, {"stage": name, "seconds": round(seconds, 2), "result": result})
        self.timings[name] = round(seconds, 2)
        self.ran.append(name)
        return result


def fresh_or_resume(cfg: Config, where: Path) -> None:
    """Resume from a checkpoint when one exists; otherwise clear leftovers of a killed run."""
    from rerank.training import checkpoint as ckpt

    if ckpt.exists(where):
        cfg.train.resume = True
    elif where.exists():
        shutil.rmtree(where)


def model_of(result: dict[str, Any]) -> str:
    return result["best"] or result["final"]


def finetune_config(cfg: CycleConfig, output_dir: Path, model: str, num_layers: int = 0) -> Config:
    """The fine-tune recipe, identical for teacher, plain student and rekindled student."""
    c = cfg.cycle
    r = from_toml(cfg.finetune.config, Config)
    apply_overrides(r, list(cfg.finetune.set))
    r.model.path = model
    r.model.num_layers = num_layers
    _continue_primary_head(r)
    # Selection on the eval split when the recipe evaluates during training; without
    # eval_every the loop would only evaluate the final model, which the eval stage does.
    r.data.eval = c.eval if r.train.eval_every else ""
    r.train.output_dir = str(output_dir)
    r.train.seed = c.seed
    r.train.progress = False
    if c.num_threads:
        r.train.num_threads = c.num_threads
    if not r.train.save_every:
        r.train.save_every = c.checkpoint_every
    return r


def _continue_primary_head(r: Config) -> None:
    """Fine-tune the head a MoEGP student distilled from its first expert, not a fresh one.

    A multi-teacher student's primary head is named after its expert (``dense``, ``t1``);
    the recipe's terms judge head ``score``. The recipe is pointed at the saved primary so
    the fine-tune continues the distilled head (the HF classifier) instead of a new head.
    """
    meta = Path(r.model.path) / "config.json"
    if not meta.is_file():
        return
    primary = json.loads(meta.read_text()).get("rerank", {}).get("primary")
    if not primary or primary in r.model.heads or list(r.model.heads) != ["score"]:
        return
    r.model.heads = {primary: r.model.heads["score"]}
    r.model.primary = primary
    for term in r.objective:
        if term.head == "score":
            term.head = primary


def train_stage(cfg: Config, where: Path) -> dict[str, Any]:
    from rerank.train import train

    fresh_or_resume(cfg, where)
    result = train(cfg)
    if not result.finished:
        raise RerankError(
            f"{where}: training stopped at step {result.steps} of {result.total_steps}"
        )
    return {
        "final": str(result.final_dir),
        "best": str(result.best_dir) if result.best_dir else None,
        "best_step": result.best_step,
        "best_metric": result.best_metric,
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
    }


def pairs_stage(cfg: CycleConfig, where: Path) -> dict[str, Any]:
    from rerank.data import read_pairs, write_table

    p = cfg.pairs
    if p.data:
        frame = read_pairs(p.data, labels="optional")
        frame = frame.select("query_id", "doc_id", "query", "title", "summary")
    else:
        from rerank.pairs import build_pairs, read_documents, read_judged, read_queries

        exclude = read_judged(p.exclude_judged) if p.exclude_judged else None
        frame = build_pairs(
            read_queries(p.queries), read_documents(p.corpus), k=p.k, exclude=exclude
        )
    if p.max_queries:
        keep = frame.get_column("query_id").unique(maintain_order=True).head(p.max_queries)
        frame = frame.filter(pl.col("query_id").is_in(keep.implode()))
    path = where / "pairs.parquet"
    write_table(frame, path)
    return {"path": str(path), "rows": frame.height, "queries": frame["query_id"].n_unique()}


def query_subset(path: str, n: int, dest: Path) -> str:
    """The rows of the first ``n`` queries (in file order) of a labeled split."""
    from rerank.data import read_pairs, write_table

    if dest.is_file():
        return str(dest)
    frame = read_pairs(path, labels="required")
    keep = frame.get_column("query_id").unique(maintain_order=True).head(n)
    write_table(frame.filter(pl.col("query_id").is_in(keep.implode())), dest)
    return str(dest)


def pretrain_config(
    cfg: CycleConfig,
    variant: str,
    where: Path,
    teacher: str,
    pairs: str,
    store: Path,
    eval_path: str | None,
) -> RekindleConfig:
    c = cfg.cycle
    r = from_toml(cfg.pretrain.config, RekindleConfig)
    apply_overrides(r, list(cfg.pretrain.set))
    r = ablate(r, variant)
    r.rekindle.teachers = experts(cfg, r, teacher)
    _objective_per_expert(r, list(r.rekindle.teachers))
    r.rekindle.data = pairs
    r.rekindle.store = str(store)
    r.model.path = cfg.pretrain.student
    r.model.num_layers = cfg.pretrain.num_layers
    r.train.output_dir = str(where)
    r.train.seed = c.seed
    r.train.progress = False
    if c.num_threads:
        r.train.num_threads = c.num_threads
    if eval_path and variant != "mlm":
        r.data.eval = eval_path
        r.train.eval_every = r.rekindle.snapshot_every or r.train.eval_every
    else:
        r.data.eval = ""
    if not r.train.save_every:
        r.train.save_every = r.rekindle.snapshot_every or c.checkpoint_every
    return r


def experts(cfg: CycleConfig, base: RekindleConfig, teacher: str) -> dict[str, TeacherConfig]:
    """The store's teachers: the experts named by ``pretrain.teachers``, in that order.

    The fine-tuned cross-encoder keeps the rekindle TOML's teacher name (its one
    ``rekindle.teachers`` entry, ``t1`` in the shipped TOMLs) and the dense expert is
    ``dense``, so store columns are ``teacher:t1`` and ``teacher:dense``.
    """
    if len(base.rekindle.teachers) != 1:
        raise RerankError(
            f"{cfg.pretrain.config}: the cycle fills in its experts itself; 'rekindle.teachers' "
            f"must name one template teacher, got {len(base.rekindle.teachers)}"
        )
    (name,) = base.rekindle.teachers
    out: dict[str, TeacherConfig] = {}
    for expert in cfg.pretrain.teachers:
        if expert == "teacher":
            out[name] = TeacherConfig(path=teacher, kind="cross-encoder")
        else:
            out["dense"] = TeacherConfig(path=cfg.cycle.dense, kind="bi-encoder")
    return out


def _objective_per_expert(r: RekindleConfig, names: list[str]) -> None:
    """Point the TOML's KD terms at the experts: one set of terms (and a head) per expert.

    One expert: its terms train the primary head (UEGP). Several (MoEGP): expert ``k``'s
    copy of every KD term trains head ``k`` (the first expert's head is the primary one,
    the head the fine-tune continues); the MLM term stays once, on that head.
    """
    kd = [t for t in r.objective if t.loss != "mlm"]
    mlm = [t for t in r.objective if t.loss == "mlm"]
    if len(names) == 1:
        for t in kd:
            t.target = f"teacher:{names[0]}"
        return
    r.model.heads = {n: HeadConfig() for n in names}
    r.model.primary = names[0]
    r.objective = [
        dataclasses.replace(t, head=n, target=f"teacher:{n}") for n in names for t in kd
    ] + [dataclasses.replace(t, head=names[0]) for t in mlm]


def pretrain_stage(rcfg: RekindleConfig, where: Path) -> dict[str, Any]:
    from rerank.training import checkpoint as ckpt

    if ckpt.exists(where):
        rcfg.train.resume = True
    elif where.exists():
        shutil.rmtree(where)
    result = pretrain(rcfg)
    if not result.train.finished:
        raise RerankError(f"{where}: pre-training stopped at step {result.train.steps}")
    curve = _eval_curve(where / "log.jsonl")
    return {
        "final": str(result.train.final_dir),
        "steps": result.train.steps,
        "seconds": round(result.train.seconds, 2),
        "scored": list(result.scored),
        "snapshots": {str(k): str(v) for k, v in result.snapshots.items()},
        "zero_shot": curve,
    }


def score_stage(
    cfg: CycleConfig, base: RekindleConfig, teacher: str, pairs: str, store: Path
) -> dict[str, Any]:
    from rerank.rekindle.store import Teacher, build_store

    teachers = [
        Teacher(name, Path(t.path), None, t.kind) for name, t in experts(cfg, base, teacher).items()
    ]
    built = build_store(
        pairs,
        teachers,
        store,
        max_length=base.rekindle.score_max_length or base.model.max_length,
    )
    return {"store": str(store), "scored": list(built.scored), "reused": list(built.reused)}


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("_")


def _eval_curve(log_path: Path) -> list[list[float]]:
    """``[[step, eval pnr], ...]`` from a training log."""
    points = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if "eval" in record and "pnr" in record["eval"]:
                points[int(record["step"])] = float(record["eval"]["pnr"])
    return [[s, v] for s, v in sorted(points.items())]


def evaluate_stage(
    model_dir: str, split: str, where: Path, cfg: CycleConfig, max_length: int, query_length: int
) -> dict[str, Any]:
    import torch

    from rerank.data import read_pairs, write_table
    from rerank.evaluation import evaluate_files
    from rerank.model import RerankModel
    from rerank.score import score_frame

    if cfg.cycle.num_threads:
        torch.set_num_threads(cfg.cycle.num_threads)
    frame = read_pairs(split, labels="required")
    model = RerankModel.from_pretrained(model_dir)
    scores = score_frame(
        model,
        frame,
        batch_size=cfg.cycle.score_batch_size,
        max_length=max_length,
        max_first_length=query_length,
    )
    path = where / "scores.parquet"
    write_table(frame.select("query_id", "doc_id").with_columns(pl.Series("score", scores)), path)
    report = evaluate_files(split, path, measures=report_measures(cfg))
    return {k: v for k, v in report.as_dict().items() if k in report_measures(cfg)}


def report_measures(cfg: CycleConfig) -> list[str]:
    return list(dict.fromkeys(["pnr", "ndcg@10", *cfg.cycle.measures]))
