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
test metrics when the task has a labeled test split (MRPC). Stages run on
:class:`rerank.pipeline.Pipeline`, as in the ranking cycle: a stage writes ``done.json``
last and is skipped when it exists, and a training stage killed mid-way resumes from its
last checkpoint, so a killed cycle re-run continues. Evaluation uses the input lengths
saved with each model (the recipe's ``model.max_length`` / ``max_query_length``).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank import pipeline
from rerank.atomic import atomic_path
from rerank.config import LossTerm, doc, from_toml
from rerank.errors import RerankError
from rerank.glue.stages import GlueConfig, GlueSection, check_rekindle, finetune, head_config
from rerank.glue.tasks import GlueTask, get_task
from rerank.pipeline import Pipeline, RecipeSection, check_finished, stage_config
from rerank.rekindle.pretrain import RekindleConfig, TeacherConfig

__all__ = ["GlueCycleConfig", "load_cycle", "run_cycle"]

log = logging.getLogger(__name__)

MODELS = ("teacher", "teacher (equal steps)", "rekindled", "multi-teacher")
FOLDERS = {
    "teacher": "teacher",
    "teacher (equal steps)": "longer",
    "rekindled": "student",
    "multi-teacher": "multi",
}
"""Report row -> the stage folder prefix (``seed-S/<prefix>-<task>``) of its fine-tunes."""


@dataclass
class CycleSection(pipeline.CycleSection):
    name: str = field(default="GLUE", metadata=doc("title of the report"))
    output_dir: str = field(default="runs/glue", metadata=doc("all stages go here", path=True))
    tasks: list[str] = field(default_factory=lambda: ["stsb"], metadata=doc("GLUE tasks"))
    data_dir: str = field(default="", metadata=doc("the GLUE data folder", path=True))
    seeds: list[int] = field(default_factory=lambda: [42], metadata=doc("train.seed values"))
    max_train: int = field(default=0, metadata=doc("seeded train subsample per task; 0: all"))
    max_eval: int = field(default=0, metadata=doc("seeded dev subsample per task; 0: all"))
    multi_teacher: bool = field(default=False, metadata=doc("also MoEGP across the tasks"))
    equal_steps_baseline: bool = field(
        default=False,
        metadata=doc("also fine-tune the teacher for pre-training + fine-tuning steps"),
    )


@dataclass
class PairsSection(pipeline.PairsSection):
    random_pairs: int = field(default=1, metadata=doc("with corpus: non-adjacent pairs per doc"))
    max_pairs: int = field(default=0, metadata=doc("seeded subsample; 0: all"))
    seed: int = field(default=0, metadata=doc("seed of the random pairs and the subsample"))


@dataclass
class GlueCycleConfig:
    cycle: CycleSection = field(default_factory=CycleSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    finetune: RecipeSection = field(default_factory=RecipeSection)
    pretrain: pipeline.PretrainSection = field(default_factory=pipeline.PretrainSection)


def load_cycle(path: str | Path, overrides: list[str] | None = None) -> GlueCycleConfig:
    """Read a GLUE cycle TOML, apply ``--set`` overrides and check it (and its recipes)."""
    from rerank.config import apply_overrides

    cfg = from_toml(path, GlueCycleConfig)
    apply_overrides(cfg, list(overrides or []))
    c = cfg.cycle
    if not c.tasks or not c.seeds:
        raise RerankError("glue cycle config: 'cycle.tasks' and 'cycle.seeds' must not be empty")
    tasks = [get_task(name) for name in c.tasks]
    if not c.data_dir:
        raise RerankError("glue cycle config: key 'cycle.data_dir' is required")
    if bool(cfg.pairs.data) == bool(cfg.pairs.corpus):
        raise RerankError("glue cycle config: set one of 'pairs.data' and 'pairs.corpus'")
    if not cfg.finetune.config or not cfg.pretrain.config:
        raise RerankError("glue cycle config: 'finetune.config' and 'pretrain.config' are required")
    base = stage_config(cfg.pretrain, RekindleConfig, c, output_dir=c.output_dir, seed=0)
    check_rekindle(base, tasks)
    return cfg


# -- stages ---------------------------------------------------------------------------------


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


def _recipe(
    cfg: GlueCycleConfig, task: GlueTask, where: Path, seed: int, model: str | None
) -> GlueConfig:
    """The fine-tune recipe for ``task``, identical for teacher and students but the init."""
    r = stage_config(cfg.finetune, GlueConfig, cfg.cycle, output_dir=where, seed=seed, model=model)
    c = cfg.cycle
    r.glue = GlueSection(
        task=task.name, data_dir=c.data_dir, max_train=c.max_train, max_eval=c.max_eval
    )
    return r


def _finetune(run: GlueConfig, task: GlueTask) -> dict[str, Any]:
    from rerank.glue.predict import evaluate_model
    from rerank.glue.stages import load_splits
    from rerank.model import RerankModel

    result = finetune(run)
    check_finished(result, Path(run.train.output_dir))
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
    p = cfg.pretrain
    r = stage_config(
        p,
        RekindleConfig,
        cfg.cycle,
        output_dir=where,
        seed=seed,
        model=p.student,
        num_layers=p.num_layers,
    )
    r.rekindle.data = pairs
    r.rekindle.store = str(store)
    r.rekindle.teachers = {name: TeacherConfig(path=path) for name, path in teachers.items()}
    return r


def _pretrain(rcfg: RekindleConfig) -> dict[str, Any]:
    """Expert-guided pre-training on the teachers' columns of the shared store."""
    from rerank.glue.stages import pretrain
    from rerank.rekindle.store import read_store, teacher_column

    frame, _ = read_store(rcfg.rekindle.store)
    keep = [teacher_column(n) for n in rcfg.rekindle.teachers]
    frame = frame.select("query_id", "doc_id", "query", "title", "summary", *keep)
    result = pretrain(rcfg, frame=frame)
    check_finished(result.train, Path(rcfg.train.output_dir))
    return {"model": str(result.train.final_dir), "steps": result.train.steps}


class _Seed:
    """The stages of one seed under ``seed-S/``; fills ``results[task][row][seed]``."""

    def __init__(self, cfg: GlueCycleConfig, pipe: Pipeline, out: Path, seed: int, pairs: str):
        self.cfg, self.pipe, self.seed, self.pairs = cfg, pipe, seed, pairs
        self.root = out / f"seed-{seed}"
        self.store = self.root / "scores" / "teacher_scores.parquet"

    def finetune(
        self,
        task: GlueTask,
        row: str,
        model: str | None,
        results: dict[str, dict[str, dict[str, Any]]],
        tune: Callable[[GlueConfig], None] | None = None,
    ) -> dict[str, Any]:
        """The recipe on ``task`` from ``model`` (``None``: the recipe's init) as ``row``."""
        kind = FOLDERS[row]
        where = self.root / f"{kind}-{task.name}"
        name = f"seed {self.seed}: {kind} {task.name}"

        def config() -> GlueConfig:
            run = _recipe(self.cfg, task, where, self.seed, model)
            if tune is not None:
                tune(run)
            return run

        tags = {"kind": kind, "seed": self.seed, "task": task.name, "row": row}
        res = self.pipe.train(name, where, config, lambda r: _finetune(r, task), tags=tags)
        res = {**res, "seconds": self.pipe.records[name]["seconds"]}
        results[task.name][row][str(self.seed)] = res
        return res

    def rekindle(self, label: str, teachers: dict[str, str]) -> str:
        """Expert-guided pre-training of the student on ``teachers``; the student's folder."""
        where = self.root / f"rekindle-{label}"
        return self.pipe.train(
            f"seed {self.seed}: rekindle {label}",
            where,
            lambda: _pretrain_config(self.cfg, teachers, where, self.seed, self.pairs, self.store),
            _pretrain,
            tags={"kind": "rekindle", "seed": self.seed, "task": label},
        )["model"]

    def score(self, teachers: dict[str, str]) -> None:
        from rerank.glue.stages import score_teachers

        where = self.root / "scores"
        scoring = _pretrain_config(self.cfg, teachers, where, self.seed, self.pairs, self.store)
        self.pipe.run(
            f"seed {self.seed}: scores",
            where,
            lambda: {"store": str(score_teachers(scoring))},
            tags={"kind": "scores", "seed": self.seed},
        )


def run_cycle(cfg: GlueCycleConfig) -> dict[str, Any]:
    """Run (or continue) the cycle; return the report (also written as report.json/.md)."""
    c = cfg.cycle
    out = Path(c.output_dir).resolve()
    tasks = [get_task(t) for t in c.tasks]
    pipe = Pipeline()
    pairs = pipe.run(
        "pairs", out / "pairs", lambda: _pairs(cfg, out / "pairs"), tags={"kind": "pairs"}
    )["path"]
    results: dict[str, dict[str, dict[str, Any]]] = {t.name: {m: {} for m in MODELS} for t in tasks}
    for seed in c.seeds:
        _run_seed(_Seed(cfg, pipe, out, seed, pairs), tasks, results)
    report = _report(cfg, tasks, results)
    _write_report(out, report)
    return report


def _run_seed(
    s: _Seed, tasks: list[GlueTask], results: dict[str, dict[str, dict[str, Any]]]
) -> None:
    c = s.cfg.cycle
    teachers = {t.name: s.finetune(t, "teacher", None, results)["model"] for t in tasks}
    s.score(teachers)
    for t in tasks:
        s.finetune(t, "rekindled", s.rekindle(t.name, {t.name: teachers[t.name]}), results)
    if c.multi_teacher and len(tasks) > 1:
        multi = s.rekindle("multi", teachers)
        for t in tasks:

            def multi_head(run: GlueConfig, t: GlueTask = t) -> None:
                run.glue.head = t.name
                run.model.heads = {x.name: head_config(x) for x in tasks}
                run.model.primary = tasks[0].name
                run.objective = [LossTerm(loss="task", head=t.name)]

            s.finetune(t, "multi-teacher", multi, results, multi_head)
    if c.equal_steps_baseline:
        extra = _pretrain_config(s.cfg, {}, s.root, s.seed, s.pairs, s.store).train.steps

        def longer(run: GlueConfig) -> None:
            if not run.train.steps:
                raise RerankError("equal_steps_baseline needs train.steps in the fine-tune recipe")
            run.train.steps += extra

        for t in tasks:
            s.finetune(t, "teacher (equal steps)", None, results, longer)


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
