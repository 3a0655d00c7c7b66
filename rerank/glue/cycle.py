"""The GLUE rekindle cycle: teachers, rekindled students, a multi-teacher student, a report.

``rerank glue cycle --config data/glue/stsb_cycle.toml`` runs, under ``cycle.output_dir``:

=========================  =============================================================
stage (directory)          what it does
=========================  =============================================================
``pairs/``                 unlabeled sentence pairs: ``pairs.data``, or built from the
                           documents of ``pairs.corpus`` (:mod:`rerank.glue.sentences`)
``seed-S/teacher-T/``      fine-tune the initial encoder on task T (the teacher; the same
                           architecture fine-tuned directly, the plain baseline)
``seed-S/scores/``         every teacher scores the pairs once (the teacher-score store)
``seed-S/rekindle-T/``     expert-guided pre-training (UEGP) of the student on teacher T:
                           KD + MLM, from the general encoder ``pretrain.student``
``seed-S/student-T/``      the rekindled student fine-tuned with the teacher's recipe
``seed-S/rekindle-multi/`` with ``cycle.multi_teacher``: MoEGP, one head per task, the
                           sum of every teacher's KD loss + MLM
``seed-S/multi-T/``        the multi-teacher student fine-tuned on T (its head T)
``seed-S/longer-T/``       with ``cycle.equal_steps_baseline``: the teacher's recipe run for
                           as many optimizer steps as pre-training + fine-tuning of the
                           rekindled student together (a control: is a gain more steps?)
``report.json``, ``.md``   dev (and labeled test) metrics of every model, mean and
                           standard deviation over the seeds
=========================  =============================================================

Each fine-tune selects its best checkpoint on the dev split by the task's primary metric;
that checkpoint's dev metrics are reported (as GLUE dev results usually are), and its
test metrics when the task has a labeled test split (MRPC). A stage writes ``done.json``
last and is skipped when it exists, so a killed cycle re-run continues; an unfinished
stage starts over.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank.atomic import atomic_path
from rerank.config import LossTerm, apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.glue.stages import GlueConfig, GlueSection, finetune, head_config, pretrain
from rerank.glue.tasks import GlueTask, get_task
from rerank.rekindle.pretrain import RekindleConfig, TeacherConfig

__all__ = ["GlueCycleConfig", "load_cycle", "run_cycle"]

log = logging.getLogger(__name__)

DONE = "done.json"
MODELS = ("teacher", "teacher (equal steps)", "rekindled", "multi-teacher")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class CycleSection:
    name: str = field(default="GLUE", metadata=_help("title of the report"))
    output_dir: str = field(default="runs/glue", metadata=_help("all stages go here", path=True))
    tasks: list[str] = field(default_factory=lambda: ["stsb"], metadata=_help("GLUE tasks"))
    data_dir: str = field(default="", metadata=_help("the GLUE data folder", path=True))
    seeds: list[int] = field(default_factory=lambda: [42], metadata=_help("train.seed values"))
    max_train: int = field(default=0, metadata=_help("seeded train subsample per task; 0: all"))
    max_eval: int = field(default=0, metadata=_help("seeded dev subsample per task; 0: all"))
    multi_teacher: bool = field(default=False, metadata=_help("also MoEGP across the tasks"))
    equal_steps_baseline: bool = field(
        default=False,
        metadata=_help("also fine-tune the teacher for pre-training + fine-tuning steps"),
    )
    num_threads: int = field(default=0, metadata=_help("torch CPU threads; 0: automatic"))


@dataclass
class PairsSection:
    data: str = field(default="", metadata=_help("unlabeled sentence pairs", path=True))
    corpus: str = field(default="", metadata=_help("or: documents to pair sentences of", path=True))
    random_pairs: int = field(default=1, metadata=_help("non-adjacent pairs per document"))
    max_pairs: int = field(default=0, metadata=_help("seeded subsample; 0: all"))
    seed: int = field(default=0, metadata=_help("seed of the random pairs and the subsample"))


@dataclass
class RecipeSection:
    config: str = field(default="", metadata=_help("a 'rerank glue train' TOML", path=True))
    set: list[str] = field(default_factory=list, metadata=_help("--set overrides of it"))


@dataclass
class PretrainSection:
    config: str = field(default="", metadata=_help("a 'rerank glue rekindle' TOML", path=True))
    set: list[str] = field(default_factory=list, metadata=_help("--set overrides of it"))
    student: str = field(
        default="default", metadata=_help("student init (a general pretrained encoder)", path=True)
    )
    num_layers: int = field(default=0, metadata=_help("grow the student by stacking; 0: keep"))


@dataclass
class GlueCycleConfig:
    cycle: CycleSection = field(default_factory=CycleSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    finetune: RecipeSection = field(default_factory=RecipeSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)


def load_cycle(path: str | Path, overrides: list[str] | None = None) -> GlueCycleConfig:
    """Read a GLUE cycle TOML, apply ``--set`` overrides and check it."""
    cfg = from_toml(path, GlueCycleConfig)
    apply_overrides(cfg, list(overrides or []))
    c = cfg.cycle
    if not c.tasks or not c.seeds:
        raise RerankError("glue cycle config: 'cycle.tasks' and 'cycle.seeds' must not be empty")
    for name in c.tasks:
        get_task(name)
    if not c.data_dir:
        raise RerankError("glue cycle config: key 'cycle.data_dir' is required")
    if bool(cfg.pairs.data) == bool(cfg.pairs.corpus):
        raise RerankError("glue cycle config: set one of 'pairs.data' and 'pairs.corpus'")
    if not cfg.finetune.config or not cfg.pretrain.config:
        raise RerankError("glue cycle config: 'finetune.config' and 'pretrain.config' are required")
    return cfg


# -- stages ---------------------------------------------------------------------------------


def _stage(name: str, where: Path, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    marker = where / DONE
    if marker.is_file():
        return json.loads(marker.read_text())["result"]
    if where.exists():  # a killed run: start the stage over
        shutil.rmtree(where)
    log.info("glue cycle: stage %s -> %s", name, where)
    start = time.perf_counter()
    result = fn()
    seconds = round(time.perf_counter() - start, 1)
    result["seconds"] = seconds
    where.mkdir(parents=True, exist_ok=True)
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({"stage": name, "result": result}, indent=2) + "\n")
    return result


def _pairs(cfg: GlueCycleConfig, where: Path) -> dict[str, Any]:
    from rerank.pairs import read_documents, write_pairs

    p = cfg.pairs
    if p.data:
        from rerank.data import read_pairs

        frame = read_pairs(p.data, labels="optional").select(
            "query_id", "doc_id", "query", "title", "summary"
        )
    else:
        from rerank.glue.sentences import sentence_pairs

        frame = sentence_pairs(
            read_documents(p.corpus),
            random_pairs=p.random_pairs,
            max_pairs=p.max_pairs or None,
            seed=p.seed,
        )
    path = where / "pairs.parquet"
    write_pairs(frame, path)
    return {"path": str(path), "rows": frame.height}


def _glue_section(cfg: GlueCycleConfig, task: GlueTask, head: str = "") -> GlueSection:
    c = cfg.cycle
    return GlueSection(
        task=task.name, data_dir=c.data_dir, head=head, max_train=c.max_train, max_eval=c.max_eval
    )


def _recipe(
    cfg: GlueCycleConfig, task: GlueTask, where: Path, seed: int, model: str | None
) -> GlueConfig:
    """The fine-tune recipe for ``task``, identical for teacher and students but the init."""
    r = from_toml(cfg.finetune.config, GlueConfig)
    apply_overrides(r, list(cfg.finetune.set))
    r.glue = _glue_section(cfg, task)
    if model is not None:
        r.model.path = model
    r.train.output_dir = str(where)
    r.train.seed = seed
    r.train.progress = False
    if cfg.cycle.num_threads:
        r.train.num_threads = cfg.cycle.num_threads
    return r


def _finetune(run: GlueConfig, task: GlueTask) -> dict[str, Any]:
    from rerank.glue.predict import evaluate_model
    from rerank.glue.stages import load_splits
    from rerank.model import RerankModel

    result = finetune(run)
    model_dir = result.best_dir or result.final_dir
    head = run.glue.head or task.name
    # the dev metrics of the selected checkpoint, as the loop logged them when it was saved
    logged = [json.loads(x) for x in (result.output_dir / "log.jsonl").read_text().splitlines()]
    best = [r["eval"] for r in logged if r.get("best")]
    _, splits = load_splits(run.glue)
    model = None
    if best and result.best_dir:
        scores = {"dev": best[-1]}
    else:
        model = RerankModel.from_pretrained(model_dir)
        scores = {"dev": evaluate_model(model, splits.dev, task, head=head)}
    if splits.test is not None:
        model = model or RerankModel.from_pretrained(model_dir)
        scores["test"] = evaluate_model(model, splits.test, task, head=head)
    return {"model": str(model_dir), "best_step": result.best_step, "steps": result.steps, **scores}


def _pretrain_config(
    cfg: GlueCycleConfig, teachers: dict[str, str], where: Path, seed: int, pairs: str, store: Path
) -> RekindleConfig:
    r = from_toml(cfg.pretrain.config, RekindleConfig)
    apply_overrides(r, list(cfg.pretrain.set))
    r.rekindle.data = pairs
    r.rekindle.store = str(store)
    r.rekindle.teachers = {name: TeacherConfig(path=path) for name, path in teachers.items()}
    r.model.path = cfg.pretrain.student
    r.model.num_layers = cfg.pretrain.num_layers
    r.train.output_dir = str(where)
    r.train.seed = seed
    r.train.progress = False
    if cfg.cycle.num_threads:
        r.train.num_threads = cfg.cycle.num_threads
    return r


def _pretrain(rcfg: RekindleConfig, store: Path) -> dict[str, Any]:
    from rerank.rekindle.store import read_store, teacher_column

    frame, _ = read_store(store)
    keep = [teacher_column(n) for n in rcfg.rekindle.teachers]
    frame = frame.select("query_id", "doc_id", "query", "title", "summary", *keep)
    result = pretrain(rcfg, frame=frame)
    return {"model": str(result.final_dir), "steps": result.steps}


def run_cycle(cfg: GlueCycleConfig) -> dict[str, Any]:
    """Run (or continue) the cycle; return the report (also written as report.json/.md)."""
    from rerank.glue.stages import score_teachers

    c = cfg.cycle
    out = Path(c.output_dir).resolve()
    tasks = [get_task(t) for t in c.tasks]
    pairs = _stage("pairs", out / "pairs", lambda: _pairs(cfg, out / "pairs"))["path"]
    results: dict[str, dict[str, dict[str, Any]]] = {t.name: {m: {} for m in MODELS} for t in tasks}
    for seed in c.seeds:
        root = out / f"seed-{seed}"
        teachers = {}
        for t in tasks:
            where = root / f"teacher-{t.name}"
            run = _recipe(cfg, t, where, seed, None)
            res = _stage(f"teacher {t.name}", where, lambda run=run, t=t: _finetune(run, t))
            results[t.name]["teacher"][str(seed)] = res
            teachers[t.name] = res["model"]
        store = root / "scores" / "teacher_scores.parquet"
        scoring = _pretrain_config(cfg, teachers, root / "scores", seed, pairs, store)
        _stage("scores", root / "scores", lambda s=scoring: {"store": str(score_teachers(s))})
        for t in tasks:
            where = root / f"rekindle-{t.name}"
            rcfg = _pretrain_config(cfg, {t.name: teachers[t.name]}, where, seed, pairs, store)
            student = _stage(f"rekindle {t.name}", where, lambda r=rcfg, s=store: _pretrain(r, s))
            where = root / f"student-{t.name}"
            run = _recipe(cfg, t, where, seed, student["model"])
            res = _stage(f"student {t.name}", where, lambda run=run, t=t: _finetune(run, t))
            results[t.name]["rekindled"][str(seed)] = res
        if c.multi_teacher and len(tasks) > 1:
            where = root / "rekindle-multi"
            rcfg = _pretrain_config(cfg, teachers, where, seed, pairs, store)
            multi = _stage("rekindle multi", where, lambda r=rcfg, s=store: _pretrain(r, s))
            for t in tasks:
                where = root / f"multi-{t.name}"
                run = _recipe(cfg, t, where, seed, multi["model"])
                run.glue.head = t.name
                run.model.heads = {x.name: head_config(x) for x in tasks}
                run.model.primary = tasks[0].name
                run.objective = [LossTerm(loss="task", head=t.name)]
                res = _stage(f"multi {t.name}", where, lambda run=run, t=t: _finetune(run, t))
                results[t.name]["multi-teacher"][str(seed)] = res
        if c.equal_steps_baseline:
            extra = _pretrain_config(cfg, {}, root, seed, pairs, store).train.steps
            for t in tasks:
                where = root / f"longer-{t.name}"
                run = _recipe(cfg, t, where, seed, None)
                if not run.train.steps:
                    raise RerankError(
                        "equal_steps_baseline needs train.steps in the fine-tune recipe"
                    )
                run.train.steps += extra
                res = _stage(f"longer {t.name}", where, lambda run=run, t=t: _finetune(run, t))
                results[t.name]["teacher (equal steps)"][str(seed)] = res
    report = _report(cfg, tasks, results)
    _write_report(out, report)
    return report


# -- report ---------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "n": len(values)}


def _report(
    cfg: GlueCycleConfig, tasks: list[GlueTask], results: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    table = []
    for t in tasks:
        for model in MODELS:
            runs = results[t.name][model]
            if not runs:
                continue
            for split in ("dev", "test"):
                if split not in next(iter(runs.values())):
                    continue
                row = {"task": t.name, "model": model, "split": split}
                for metric in t.metrics:
                    row[metric] = _summary([r[split][metric] for r in runs.values()])
                table.append(row)
    return {
        "name": cfg.cycle.name,
        "seeds": cfg.cycle.seeds,
        "max_train": cfg.cycle.max_train,
        "max_eval": cfg.cycle.max_eval,
        "table": table,
        "runs": results,
    }


def format_markdown(report: dict[str, Any]) -> str:
    """The report's table as markdown: mean ± sd over seeds (n seeds)."""
    lines = [
        f"# {report['name']}",
        "",
        f"seeds: {report['seeds']}; train subsample: {report['max_train'] or 'all'}; "
        f"dev subsample: {report['max_eval'] or 'all'}",
        "",
        "| task | split | model | metrics (mean ± sd over seeds) |",
        "|---|---|---|---|",
    ]
    for row in report["table"]:
        cells = [
            f"{k} {v['mean']:.4f}" + (f" ± {v['sd']:.4f}" if v["n"] > 1 else "")
            for k, v in row.items()
            if isinstance(v, dict)
        ]
        lines.append(f"| {row['task']} | {row['split']} | {row['model']} | {'; '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _write_report(out: Path, report: dict[str, Any]) -> None:
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(format_markdown(report))
