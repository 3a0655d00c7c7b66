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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rerank.config import Config
from rerank.errors import RerankError
from rerank.pipeline import Pipeline, stage_config
from rerank.rekindle.baselines import compare_rows, fuse_with_dense
from rerank.rekindle.cycle_config import CycleConfig, load_cycle
from rerank.rekindle.pretrain import RekindleConfig
from rerank.rekindle.stages import (
    evaluate_rows,
    finetune_config,
    model_of,
    pairs_stage,
    pretrain_config,
    pretrain_stage,
    query_subset,
    reference_pnr,
    report_measures,
    score_stage,
    slug,
    train_stage,
)

__all__ = ["CycleConfig", "load_cycle", "run_cycle"]


def run_cycle(cfg: CycleConfig) -> dict[str, Any]:
    """Run (or continue) the cycle; returns the report dict also written to ``report.json``."""
    from rerank.rekindle.report import write_report

    cfg = copy.deepcopy(cfg)
    c = cfg.cycle
    out = Path(c.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline()
    notes = _subset_splits(cfg, out)
    recipe = stage_config(cfg.finetune, Config, c, output_dir=out, seed=c.seed)
    teacher_init = cfg.finetune.teacher_model or recipe.model.path

    # 1. the teacher; 2. the rekindle pairs; 3. their teacher scores (the store)
    teacher_dir = _teacher(cfg, out, pipe, teacher_init, notes)
    pairs = pipe.run(
        "pairs", out / "pairs", lambda: pairs_stage(cfg, out / "pairs"), tags={"kind": "pairs"}
    )["path"]
    base = stage_config(cfg.pretrain, RekindleConfig, c, output_dir=out, seed=c.seed)
    store = _score(cfg, pipe, out / "pairs", base, teacher_dir, pairs, "score")

    # 4. expert-guided pre-training, one run per variant
    eval_path = _figure_eval_split(cfg, out)
    pre: dict[str, dict[str, Any]] = {}
    for v in dict.fromkeys([*c.variants, *c.figure_variants]):
        figure = eval_path if v in c.figure_variants else None
        where = out / "pretrain" / slug(v)
        config = partial(
            pretrain_config, cfg, v, where / "train", teacher_dir, pairs, store, figure
        )
        pre[v] = _pretrain(pipe, f"pretrain[{v}]", v, where, config)

    # 5. fine-tunes: rekindled students (and further rounds), the plain baselines
    models: dict[str, str] = {"teacher": teacher_dir}
    for i, v in enumerate(c.variants):
        name = "rekindled" if i == 0 else f"rekindled ({v})"
        models[name] = _finetune(
            cfg, pipe, f"finetune[{v}]", out / "finetune" / slug(v), pre[v]["final"]
        )
    for n in range(2, c.rounds + 1):
        previous = models["rekindled" if n == 2 else f"rekindled (round {n - 1})"]
        models[f"rekindled (round {n})"] = _round(
            cfg, out / f"round-{n}", pipe, n, base, previous, pairs
        )
    models.update(_plain_baselines(cfg, out, pipe, teacher_dir, teacher_init, recipe, pre, notes))

    # 6. Figure 3: downstream PNR of the pre-training snapshots
    curves, proxy = _figure_curves(cfg, out, pipe, pre)

    # 7. evaluation of every model on both splits (BM25 from its runs, the dense expert
    # zero-shot), the fused row, and the final model against every other row
    results, scores = evaluate_rows(cfg, out, pipe, models)
    last = "rekindled" if c.rounds == 1 else f"rekindled (round {c.rounds})"
    fusion = None
    if c.fusion:
        fusion = fuse_with_dense(cfg, out / "eval", last, results, scores, report_measures(cfg))
    final = f"{last} + dense" if fusion else last
    comparisons = compare_rows(cfg.cycle.eval, cfg.cycle.test, scores, final, seed=c.seed)
    references = (
        reference_pnr(out, eval_path) if c.figure_proxy == "zero-shot" and eval_path else {}
    )

    report = {
        "name": c.name,
        "results": results,
        "final": final,
        "comparisons": comparisons,
        "fusion": fusion,
        "models": models,
        "pretraining": curves,
        "pretraining_proxy": proxy,
        "references": references,
        "timings": pipe.timings,
        "stages_run": pipe.ran,
        "notes": notes,
        "provenance": _provenance(cfg, store),
    }
    write_report(out, report)
    return report


def _teacher(
    cfg: CycleConfig, out: Path, pipe: Pipeline, teacher_init: str, notes: list[str]
) -> str:
    """The teacher's model folder: given (``finetune.teacher``), or fine-tuned now."""
    if cfg.finetune.teacher:
        notes.append(f"teacher given ({cfg.finetune.teacher}); its fine-tune was not run")
        return cfg.finetune.teacher
    return _finetune(cfg, pipe, "teacher", out / "teacher", teacher_init)


def _score(
    cfg: CycleConfig,
    pipe: Pipeline,
    where: Path,
    base: RekindleConfig,
    teacher: str,
    pairs: str,
    name: str,
) -> Path:
    """The experts' scores of the pairs, ``where/teacher_scores.parquet`` (the store; a
    column is reused while the data and that expert are unchanged)."""
    store = where / "teacher_scores.parquet"
    pipe.run(
        name,
        where / "score",
        lambda: score_stage(cfg, base, teacher, pairs, store),
        tags={"kind": "score"},
    )
    return store


def _figure_curves(
    cfg: CycleConfig, out: Path, pipe: Pipeline, pre: dict[str, dict[str, Any]]
) -> tuple[dict[str, list[list[float]]], str]:
    """Downstream PNR of the pre-training snapshots of each figure variant, and its name."""
    c = cfg.cycle
    if c.figure_proxy == "zero-shot":
        curves = {v: pre[v]["zero_shot"] for v in c.figure_variants}
        proxy = "zero-shot PNR of the distilled score head on the eval split" + (
            f" (its first {c.figure_eval_queries} queries)" if c.figure_eval_queries else ""
        )
        return curves, proxy
    curves = {v: _finetuned_curve(cfg, out, pipe, v, pre[v]) for v in c.figure_variants}
    return (
        curves,
        f"eval-split PNR after a {c.figure_finetune_steps}-step fine-tune of each snapshot",
    )


def _subset_splits(cfg: CycleConfig, out: Path) -> list[str]:
    """Point ``cycle.eval`` / ``cycle.test`` at their first N queries when asked; the notes."""
    c = cfg.cycle
    notes = []
    for split in ("eval", "test"):
        n = getattr(c, f"{split}_queries")
        if n:
            path = getattr(c, split)
            notes.append(f"{split} rows: the first {n} queries of {path}")
            setattr(c, split, query_subset(path, n, out / "splits" / f"{split}-{n}q.parquet"))
    return notes


def _figure_eval_split(cfg: CycleConfig, out: Path) -> str | None:
    """The eval rows the zero-shot pre-training curves measure (``None``: no such curves)."""
    c = cfg.cycle
    if c.figure_proxy != "zero-shot":
        return None
    if not c.figure_eval_queries:
        return c.eval
    dest = out / "splits" / f"eval-{c.figure_eval_queries}q.parquet"
    return query_subset(c.eval, c.figure_eval_queries, dest)


def _finetune(
    cfg: CycleConfig,
    pipe: Pipeline,
    name: str,
    where: Path,
    model: str,
    num_layers: int = 0,
    *,
    steps: int = 0,
) -> str:
    """A fine-tune stage with the recipe from ``model`` (``steps``: more than the recipe's)."""

    def config() -> Config:
        rc = finetune_config(cfg, where / "train", model, num_layers)
        if steps:
            rc.train.steps = steps
        return rc

    kind = name.split("[", 1)[0]
    return model_of(pipe.train(name, where, config, train_stage, tags={"kind": kind}))


def _pretrain(
    pipe: Pipeline, name: str, variant: str, where: Path, config: Callable[[], RekindleConfig]
) -> dict[str, Any]:
    """A pre-training stage (the student learns the experts' scores) of ``variant``."""
    tags = {"kind": "pretrain", "variant": variant}
    return pipe.train(name, where, config, pretrain_stage, tags=tags)


def _plain_baselines(
    cfg: CycleConfig,
    out: Path,
    pipe: Pipeline,
    teacher_dir: str,
    teacher_init: str,
    recipe: Config,
    pre: dict[str, dict[str, Any]],
    notes: list[str],
) -> dict[str, str]:
    """The student's initial encoder fine-tuned with the recipe (and the long control)."""
    c, p = cfg.cycle, cfg.pretrain
    models = {}
    same = (
        (Path(str(p.student)).resolve() == Path(str(teacher_init)).resolve()
         or p.student == teacher_init)
        and p.num_layers in (0, recipe.model.num_layers)
        and not cfg.finetune.teacher
    )  # fmt: skip
    if same:
        models["plain"] = teacher_dir
        notes.append(
            "the student has the teacher's architecture and initial weights, so its plain "
            "fine-tune (same recipe, same seed) is the teacher itself: row 'plain' reuses it"
        )
    else:
        models["plain"] = _finetune(cfg, pipe, "plain", out / "plain", p.student, p.num_layers)
    if c.long_baseline:
        # The rekindled student saw pre-training steps on top of the recipe's; this control
        # gets the same number of optimizer steps on labels alone.
        steps = _recipe_steps(recipe) + pre[c.variants[0]]["steps"]
        where = out / "plain_long"
        models["plain (long)"] = _finetune(
            cfg, pipe, "plain_long", where, p.student, p.num_layers, steps=steps
        )
    return models


def _round(
    cfg: CycleConfig,
    where: Path,
    pipe: Pipeline,
    n: int,
    base: RekindleConfig,
    teacher: str,
    pairs: str,
) -> str:
    """Round ``n`` of the cycle: score, pre-train and fine-tune again; the new expert's dir.

    The 'teacher' expert is now ``teacher`` (the previous round's rekindled student); the
    student starts again from the general encoder; only the first variant is run.
    """
    store = _score(cfg, pipe, where, base, teacher, pairs, f"score[round {n}]")
    v = cfg.cycle.variants[0]
    pre_dir = where / "pretrain" / slug(v)
    config = partial(pretrain_config, cfg, v, pre_dir / "train", teacher, pairs, store, None)
    pre = _pretrain(pipe, f"pretrain[{v}, round {n}]", v, pre_dir, config)
    ft_dir = where / "finetune" / slug(v)
    return _finetune(cfg, pipe, f"finetune[{v}, round {n}]", ft_dir, pre["final"])


def _recipe_steps(rc: Config) -> int:
    if rc.train.steps:
        return rc.train.steps
    raise RerankError(
        "cycle.long_baseline needs the fine-tune recipe to set train.steps (not epochs)"
    )


def _finetuned_curve(
    cfg: CycleConfig, out: Path, pipe: Pipeline, variant: str, pre: dict[str, Any]
) -> list[list[float]]:
    """Eval PNR after a short fine-tune of every pre-training snapshot of ``variant``."""

    def short(rc: Config) -> dict[str, Any]:
        from rerank.train import train

        res = train(rc)
        return {"pnr": res.metrics.get("pnr"), "steps": res.steps}

    points = []
    for step, snap in sorted(pre["snapshots"].items(), key=lambda kv: int(kv[0])):
        where = out / "figure" / slug(variant) / f"step-{step}"

        def config(w: Path = where, s: str = snap) -> Config:
            rc = finetune_config(cfg, w / "train", s)
            rc.train.steps = cfg.cycle.figure_finetune_steps
            rc.train.eval_every = 0
            rc.data.eval = cfg.cycle.eval
            return rc

        name = f"figure[{variant}@{step}]"
        done = pipe.train(name, where, config, short, tags={"kind": "figure", "step": int(step)})
        points.append([int(step), done["pnr"]])
    return points


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
