"""The knowledge-rekindle cycle, one resumable stage at a time.

``rerank cycle --config data/cranfield/cycle.toml`` runs, under ``cycle.output_dir``:

=====================  ==================================================================
stage (directory)      what it does
=====================  ==================================================================
``teacher/``           fine-tune the teacher with the fine-tune recipe (``[finetune]``)
``pairs/``             the rekindle pairs: the shipped file, or ``rerank pairs`` (BM25)
``pretrain/<variant>`` score the pairs with the teacher (the store, ``pairs/``), then
                       expert-guided pre-training of the student, one run per variant
                       (``kd+mlm`` first; ``kd`` for the Figure-3 comparison)
``finetune/<variant>`` the rekindled student fine-tuned with exactly the teacher's recipe
``plain/``             the student's initial encoder fine-tuned with the same recipe (the
                       "same architecture, plain fine-tune" baseline); when the student
                       *is* the teacher's architecture and initialisation, this model is
                       the teacher itself and the stage reuses it (noted in the report)
``figure/<variant>``   downstream PNR of pre-training snapshots (Figure 3): the zero-shot
                       PNR of the distilled score head on the eval split (``zero-shot``,
                       read from the pre-training log), or the eval PNR after a short
                       fine-tune of each snapshot (``finetune``)
``eval/``              every model scored on the eval and test splits; BM25 from its run
``report.*``           report.json, report.md, results.png, pretraining.png
=====================  ==================================================================

Every stage writes ``done.json`` last; a stage whose ``done.json`` exists is skipped, so a
killed cycle re-run with the same command continues. A training stage killed mid-way
resumes from its last checkpoint (``train.save_every``; the cycle sets
``cycle.checkpoint_every`` when the recipe has none). When the recipe evaluates during
training (``train.eval_every``), the eval split selects the best checkpoint of every
fine-tune; otherwise the final model is used. The test split is only ever reported.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rerank.atomic import atomic_path
from rerank.config import Config, apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.rekindle.pretrain import VARIANTS, RekindleConfig, ablate, pretrain

__all__ = ["CycleConfig", "run_cycle"]

log = logging.getLogger(__name__)

DONE = "done.json"


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class CycleSection:
    name: str = field(default="cycle", metadata=_help("title of the report"))
    output_dir: str = field(default="runs/cycle", metadata=_help("all stages go here", path=True))
    seed: int = field(default=42, metadata=_help("train.seed of every training stage"))
    eval: str = field(default="", metadata=_help("labeled eval split (selection)", path=True))
    test: str = field(default="", metadata=_help("labeled test split (reported only)", path=True))
    bm25_eval: str = field(default="", metadata=_help("BM25 run on the eval split", path=True))
    bm25_test: str = field(default="", metadata=_help("BM25 run on the test split", path=True))
    measures: list[str] = field(
        default_factory=lambda: ["pnr", "ndcg@10"], metadata=_help("measures in report.json")
    )
    variants: list[str] = field(
        default_factory=lambda: ["kd+mlm"],
        metadata=_help("pre-training variants fine-tuned and reported; the first is 'rekindled'"),
    )
    figure_variants: list[str] = field(
        default_factory=lambda: ["kd+mlm", "kd"], metadata=_help("variants of the Figure-3 plot")
    )
    figure_proxy: Literal["zero-shot", "finetune"] = field(
        default="zero-shot", metadata=_help("downstream measure of pre-training snapshots")
    )
    figure_finetune_steps: int = field(
        default=30, metadata=_help("fine-tune steps per snapshot with figure_proxy = finetune")
    )
    figure_eval_queries: int = field(
        default=0, metadata=_help("eval queries for the Figure-3 measure; 0: all")
    )
    eval_queries: int = field(
        default=0, metadata=_help("use a fixed subset of this many eval queries; 0: all")
    )
    checkpoint_every: int = field(
        default=20, metadata=_help("train.save_every of stages whose recipe has none")
    )
    num_threads: int = field(default=0, metadata=_help("torch CPU threads; 0: automatic"))
    score_batch_size: int = field(default=64, metadata=_help("pairs per scoring batch"))


@dataclass
class FinetuneSection:
    config: str = field(
        default="", metadata=_help("the fine-tune recipe (a 'rerank train' TOML)", path=True)
    )
    set: list[str] = field(
        default_factory=list, metadata=_help("--set overrides of the recipe (every fine-tune)")
    )
    teacher_model: str = field(
        default="", metadata=_help("teacher init; empty: the recipe's model.path", path=True)
    )
    teacher: str = field(
        default="", metadata=_help("an already trained teacher: skip its fine-tune", path=True)
    )


@dataclass
class PairsSection:
    data: str = field(default="", metadata=_help("unlabeled rekindle pairs", path=True))
    queries: str = field(default="", metadata=_help("or build by BM25: queries", path=True))
    corpus: str = field(default="", metadata=_help("... against these documents", path=True))
    k: int = field(default=8, metadata=_help("... top-k documents per query"))
    exclude_judged: str = field(default="", metadata=_help("... never these pairs", path=True))
    max_queries: int = field(default=0, metadata=_help("keep the first N queries; 0: all"))


@dataclass
class PretrainSection:
    config: str = field(default="", metadata=_help("the rekindle TOML", path=True))
    set: list[str] = field(default_factory=list, metadata=_help("--set overrides of it"))
    student: str = field(
        default="default", metadata=_help("student init (a general pretrained encoder)", path=True)
    )
    num_layers: int = field(default=0, metadata=_help("grow the student by stacking; 0: keep"))


@dataclass
class CycleConfig:
    cycle: CycleSection = field(default_factory=CycleSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)


# -- stage bookkeeping -------------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


class _Stages:
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
        seconds = time.perf_counter() - start
        _write_json(marker, {"stage": name, "seconds": round(seconds, 2), "result": result})
        self.timings[name] = round(seconds, 2)
        self.ran.append(name)
        return result


def _fresh_or_resume(cfg: Config, where: Path) -> None:
    """Resume from a checkpoint when one exists; otherwise clear leftovers of a killed run."""
    from rerank import checkpoint as ckpt

    if ckpt.exists(where):
        cfg.train.resume = True
    elif where.exists():
        shutil.rmtree(where)


def _model_of(result: dict[str, Any]) -> str:
    return result["best"] or result["final"]


# -- the cycle ------------------------------------------------------------------------------


def load_cycle(path: str | Path, overrides: list[str] | None = None) -> CycleConfig:
    """Read a cycle TOML and apply ``--set`` overrides."""
    cfg = from_toml(path, CycleConfig)
    apply_overrides(cfg, list(overrides or []))
    _check(cfg)
    return cfg


def _check(cfg: CycleConfig) -> None:
    c = cfg.cycle
    for key in ("eval", "test"):
        if not getattr(c, key):
            raise RerankError(f"cycle config: key 'cycle.{key}' is required (a labeled split)")
    if not cfg.finetune.config:
        raise RerankError("cycle config: key 'finetune.config' is required (the recipe)")
    if not cfg.pretrain.config:
        raise RerankError("cycle config: key 'pretrain.config' is required (the rekindle TOML)")
    if bool(cfg.pairs.data) == bool(cfg.pairs.queries and cfg.pairs.corpus):
        raise RerankError(
            "cycle config: set either 'pairs.data' or both 'pairs.queries' and 'pairs.corpus'"
        )
    for v in [*c.variants, *c.figure_variants]:
        if v not in VARIANTS:
            raise RerankError(f"cycle config: unknown variant '{v}' (valid: {', '.join(VARIANTS)})")
    if not c.variants:
        raise RerankError("cycle config: key 'cycle.variants' must name at least one variant")


def _recipe(cfg: CycleConfig, output_dir: Path, model: str, num_layers: int = 0) -> Config:
    """The fine-tune recipe, identical for teacher, plain student and rekindled student."""
    c = cfg.cycle
    r = from_toml(cfg.finetune.config, Config)
    apply_overrides(r, list(cfg.finetune.set))
    r.model.path = model
    r.model.num_layers = num_layers
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


def _train_stage(cfg: Config, where: Path) -> dict[str, Any]:
    from rerank.train import train

    _fresh_or_resume(cfg, where)
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


def _pairs_stage(cfg: CycleConfig, where: Path) -> dict[str, Any]:
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


def _query_subset(path: str, n: int, dest: Path) -> str:
    """The rows of the first ``n`` queries (in file order) of a labeled split."""
    from rerank.data import read_pairs, write_table

    if dest.is_file():
        return str(dest)
    frame = read_pairs(path, labels="required")
    keep = frame.get_column("query_id").unique(maintain_order=True).head(n)
    write_table(frame.filter(pl.col("query_id").is_in(keep.implode())), dest)
    return str(dest)


def _pretrain_config(
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
    if len(r.rekindle.teachers) != 1:
        raise RerankError(
            f"{cfg.pretrain.config}: the cycle distils its one teacher; 'rekindle.teachers' "
            f"names {len(r.rekindle.teachers)} (use 'rerank rekindle' for several)"
        )
    for t in r.rekindle.teachers.values():
        t.path = teacher
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


def _pretrain_stage(rcfg: RekindleConfig, where: Path) -> dict[str, Any]:
    from rerank import checkpoint as ckpt

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


def _score_stage(base: RekindleConfig, teacher: str, pairs: str, store: Path) -> dict[str, Any]:
    from rerank.rekindle.store import Teacher, build_store

    (name,) = base.rekindle.teachers or {"t1": None}
    built = build_store(
        pairs,
        [Teacher(name, Path(teacher))],
        store,
        max_length=base.rekindle.score_max_length or base.model.max_length,
    )
    return {"store": str(store), "scored": list(built.scored), "reused": list(built.reused)}


def _slug(name: str) -> str:
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


def _evaluate_stage(
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
    report = evaluate_files(split, path, measures=_measures(cfg))
    return {k: v for k, v in report.as_dict().items() if k in _measures(cfg)}


def _measures(cfg: CycleConfig) -> list[str]:
    return list(dict.fromkeys(["pnr", "ndcg@10", *cfg.cycle.measures]))


def run_cycle(cfg: CycleConfig) -> dict[str, Any]:
    """Run (or continue) the cycle; returns the report dict also written to ``report.json``."""
    from rerank.rekindle.report import write_report

    cfg = copy.deepcopy(cfg)
    c = cfg.cycle
    out = Path(c.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages()
    notes: list[str] = []
    if c.eval_queries:
        dest = out / "splits" / f"eval-{c.eval_queries}q.parquet"
        notes.append(f"eval rows: the first {c.eval_queries} queries of {c.eval}")
        c.eval = _query_subset(c.eval, c.eval_queries, dest)
    recipe = from_toml(cfg.finetune.config, Config)
    apply_overrides(recipe, list(cfg.finetune.set))
    teacher_init = cfg.finetune.teacher_model or recipe.model.path

    # 1. teacher
    if cfg.finetune.teacher:
        teacher_dir = cfg.finetune.teacher
        notes.append(f"teacher given ({teacher_dir}); its fine-tune was not run")
    else:
        t = stages.run(
            "teacher",
            out / "teacher",
            lambda: _train_stage(
                _recipe(cfg, out / "teacher" / "train", teacher_init), out / "teacher" / "train"
            ),
        )
        teacher_dir = _model_of(t)

    # 2. rekindle pairs
    pairs = stages.run("pairs", out / "pairs", lambda: _pairs_stage(cfg, out / "pairs"))

    # 3. teacher scores of the pairs (the store; reused while data and teacher are unchanged)
    base = from_toml(cfg.pretrain.config, RekindleConfig)
    apply_overrides(base, list(cfg.pretrain.set))
    store = out / "pairs" / "teacher_scores.parquet"
    stages.run(
        "score",
        out / "pairs" / "score",
        lambda: _score_stage(base, teacher_dir, pairs["path"], store),
    )

    # 4. expert-guided pre-training, one run per variant
    wanted = list(dict.fromkeys([*c.variants, *c.figure_variants]))
    eval_path = None
    if c.figure_proxy == "zero-shot":
        eval_path = c.eval
        if c.figure_eval_queries:
            dest = out / "splits" / f"eval-{c.figure_eval_queries}q.parquet"
            eval_path = _query_subset(c.eval, c.figure_eval_queries, dest)
    pre: dict[str, dict[str, Any]] = {}
    for v in wanted:
        where = out / "pretrain" / _slug(v)
        rcfg = _pretrain_config(
            cfg,
            v,
            where / "train",
            teacher_dir,
            pairs["path"],
            store,
            eval_path if v in c.figure_variants else None,
        )
        pre[v] = stages.run(
            f"pretrain[{v}]", where, lambda r=rcfg, w=where: _pretrain_stage(r, w / "train")
        )

    # 5. fine-tunes: rekindled students and the plain baseline
    models: dict[str, str] = {"teacher": teacher_dir}
    for i, v in enumerate(c.variants):
        where = out / "finetune" / _slug(v)
        r = stages.run(
            f"finetune[{v}]",
            where,
            lambda w=where, v=v: _train_stage(
                _recipe(cfg, w / "train", pre[v]["final"]), w / "train"
            ),
        )
        models["rekindled" if i == 0 else f"rekindled ({v})"] = _model_of(r)
    same = (
        (
            Path(str(cfg.pretrain.student)).resolve() == Path(str(teacher_init)).resolve()
            or cfg.pretrain.student == teacher_init
        )
        and cfg.pretrain.num_layers in (0, recipe.model.num_layers)
        and not cfg.finetune.teacher
    )
    if same:
        models["plain"] = teacher_dir
        notes.append(
            "the student has the teacher's architecture and initial weights, so its plain "
            "fine-tune (same recipe, same seed) is the teacher itself: row 'plain' reuses it"
        )
    else:
        r = stages.run(
            "plain",
            out / "plain",
            lambda: _train_stage(
                _recipe(
                    cfg, out / "plain" / "train", cfg.pretrain.student, cfg.pretrain.num_layers
                ),
                out / "plain" / "train",
            ),
        )
        models["plain"] = _model_of(r)

    # 6. Figure 3: downstream PNR of the pre-training snapshots
    curves: dict[str, list[list[float]]] = {}
    for v in c.figure_variants:
        if c.figure_proxy == "zero-shot":
            curves[v] = pre[v]["zero_shot"]
            continue
        points = []
        for step, snap in sorted(pre[v]["snapshots"].items(), key=lambda kv: int(kv[0])):
            where = out / "figure" / _slug(v) / f"step-{step}"

            def short(w: Path = where, s: str = snap) -> dict[str, Any]:
                from rerank.train import train

                rc = _recipe(cfg, w / "train", s)
                rc.train.steps = c.figure_finetune_steps
                rc.train.eval_every = 0
                _fresh_or_resume(rc, w / "train")
                res = train(rc)
                return {"pnr": res.metrics.get("pnr"), "steps": res.steps}

            points.append([int(step), stages.run(f"figure[{v}@{step}]", where, short)["pnr"]])
        curves[v] = points
    proxy = (
        "zero-shot PNR of the distilled score head on the eval split"
        + (f" (its first {c.figure_eval_queries} queries)" if c.figure_eval_queries else "")
        if c.figure_proxy == "zero-shot"
        else f"eval-split PNR after a {c.figure_finetune_steps}-step fine-tune of each snapshot"
    )

    # 7. evaluation
    splits = {"eval": c.eval, "test": c.test}
    results: dict[str, dict[str, dict[str, float]]] = {}
    bm25 = {"eval": c.bm25_eval, "test": c.bm25_test}
    if all(bm25.values()):
        from rerank.evaluation import evaluate_files

        results["bm25"] = {}
        for split, run_path in bm25.items():
            rep = evaluate_files(splits[split], run_path, measures=_measures(cfg), unmatched="drop")
            results["bm25"][split] = {k: v for k, v in rep.as_dict().items() if k in _measures(cfg)}
    length = (recipe.model.max_length, recipe.model.max_query_length)
    evaluated: dict[str, str] = {}
    for name, model_dir in models.items():
        results[name] = {}
        for split, split_path in splits.items():
            key = evaluated.get(model_dir)
            where = out / "eval" / f"{_slug(name)}-{split}"
            if key is not None:  # the same model under another name (plain == teacher)
                results[name][split] = results[key][split]
                continue
            results[name][split] = stages.run(
                f"eval[{name}/{split}]",
                where,
                lambda m=model_dir, s=split_path, w=where: _evaluate_stage(m, s, w, cfg, *length),
            )
        evaluated.setdefault(model_dir, name)

    # Figure-3 references: teacher and rekindled student on the rows the curves measure
    references = {}
    if c.figure_proxy == "zero-shot" and eval_path:
        from rerank.evaluation import evaluate_files

        for name in ("teacher", "rekindled"):
            scores = out / "eval" / f"{_slug(name)}-eval" / "scores.parquet"
            rep = evaluate_files(eval_path, scores, measures=["pnr"], unmatched="drop")
            references[f"{name} after fine-tune"] = float(rep.aggregate["pnr"])

    report = {
        "name": c.name,
        "results": results,
        "models": models,
        "pretraining": curves,
        "pretraining_proxy": proxy,
        "references": references,
        "timings": stages.timings,
        "stages_run": stages.ran,
        "notes": notes,
        "provenance": _provenance(cfg, store),
    }
    write_report(out, report)
    return report


def _provenance(cfg: CycleConfig, store: Path) -> dict[str, Any]:
    import dataclasses
    import subprocess

    from rerank import __version__
    from rerank.rekindle.store import read_provenance

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "rerank_version": __version__,
        "git_commit": commit,
        "config": dataclasses.asdict(cfg),
        "teacher_scores": read_provenance(store) if store.is_file() else None,
    }
