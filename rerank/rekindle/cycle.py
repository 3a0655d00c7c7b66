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
from pathlib import Path
from typing import Any

from rerank.config import Config, apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.rekindle.baselines import compare_rows, fuse_with_dense
from rerank.rekindle.cycle_config import CycleConfig, load_cycle
from rerank.rekindle.pretrain import RekindleConfig
from rerank.rekindle.stages import (
    Stages,
    evaluate_stage,
    finetune_config,
    fresh_or_resume,
    model_of,
    pairs_stage,
    pretrain_config,
    pretrain_stage,
    query_subset,
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
    stages = Stages()
    notes: list[str] = []
    for split in ("eval", "test"):
        n = getattr(c, f"{split}_queries")
        if n:
            path = getattr(c, split)
            notes.append(f"{split} rows: the first {n} queries of {path}")
            setattr(c, split, query_subset(path, n, out / "splits" / f"{split}-{n}q.parquet"))
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
            lambda: train_stage(
                finetune_config(cfg, out / "teacher" / "train", teacher_init),
                out / "teacher" / "train",
            ),
        )
        teacher_dir = model_of(t)

    # 2. rekindle pairs
    pairs = stages.run("pairs", out / "pairs", lambda: pairs_stage(cfg, out / "pairs"))

    # 3. teacher scores of the pairs (the store; reused while data and teacher are unchanged)
    base = from_toml(cfg.pretrain.config, RekindleConfig)
    apply_overrides(base, list(cfg.pretrain.set))
    store = out / "pairs" / "teacher_scores.parquet"
    stages.run(
        "score",
        out / "pairs" / "score",
        lambda: score_stage(cfg, base, teacher_dir, pairs["path"], store),
    )

    # 4. expert-guided pre-training, one run per variant
    wanted = list(dict.fromkeys([*c.variants, *c.figure_variants]))
    eval_path = None
    if c.figure_proxy == "zero-shot":
        eval_path = c.eval
        if c.figure_eval_queries:
            dest = out / "splits" / f"eval-{c.figure_eval_queries}q.parquet"
            eval_path = query_subset(c.eval, c.figure_eval_queries, dest)
    pre: dict[str, dict[str, Any]] = {}
    for v in wanted:
        where = out / "pretrain" / slug(v)
        rcfg = pretrain_config(
            cfg,
            v,
            where / "train",
            teacher_dir,
            pairs["path"],
            store,
            eval_path if v in c.figure_variants else None,
        )
        pre[v] = stages.run(
            f"pretrain[{v}]", where, lambda r=rcfg, w=where: pretrain_stage(r, w / "train")
        )

    # 5. fine-tunes: rekindled students and the plain baseline
    models: dict[str, str] = {"teacher": teacher_dir}
    for i, v in enumerate(c.variants):
        where = out / "finetune" / slug(v)
        r = stages.run(
            f"finetune[{v}]",
            where,
            lambda w=where, v=v: train_stage(
                finetune_config(cfg, w / "train", pre[v]["final"]), w / "train"
            ),
        )
        models["rekindled" if i == 0 else f"rekindled ({v})"] = model_of(r)
    # 5b. further rounds: the last round's rekindled student is the next round's teacher
    for n in range(2, c.rounds + 1):
        previous = models["rekindled" if n == 2 else f"rekindled (round {n - 1})"]
        models[f"rekindled (round {n})"] = _round(
            cfg, out / f"round-{n}", stages, n, base, previous, pairs["path"]
        )
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
            lambda: train_stage(
                finetune_config(
                    cfg, out / "plain" / "train", cfg.pretrain.student, cfg.pretrain.num_layers
                ),
                out / "plain" / "train",
            ),
        )
        models["plain"] = model_of(r)
    if c.long_baseline:
        # The rekindled student saw pre-training steps on top of the recipe's; this control
        # gets the same number of optimizer steps on labels alone.
        pre_steps = pre[c.variants[0]]["steps"]

        def long_config() -> Config:
            rc = finetune_config(
                cfg, out / "plain_long" / "train", cfg.pretrain.student, cfg.pretrain.num_layers
            )
            rc.train.steps = _recipe_steps(rc) + pre_steps
            return rc

        r = stages.run(
            "plain_long",
            out / "plain_long",
            lambda: train_stage(long_config(), out / "plain_long" / "train"),
        )
        models["plain (long)"] = model_of(r)

    # 6. Figure 3: downstream PNR of the pre-training snapshots
    if c.figure_proxy == "zero-shot":
        curves = {v: pre[v]["zero_shot"] for v in c.figure_variants}
        proxy = "zero-shot PNR of the distilled score head on the eval split" + (
            f" (its first {c.figure_eval_queries} queries)" if c.figure_eval_queries else ""
        )
    else:
        curves = {v: _finetuned_curve(cfg, out, stages, v, pre[v]) for v in c.figure_variants}
        proxy = f"eval-split PNR after a {c.figure_finetune_steps}-step fine-tune of each snapshot"

    # 7. evaluation of every model on both splits (BM25 from its runs, the dense expert
    # zero-shot), the fused row, and the final model against every other row
    length = (recipe.model.max_length, recipe.model.max_query_length)
    results, scores = _evaluate_all(cfg, out, stages, models, length)
    last = "rekindled" if c.rounds == 1 else f"rekindled (round {c.rounds})"
    fusion = None
    if c.fusion:
        fusion = fuse_with_dense(cfg, out / "eval", last, results, scores, report_measures(cfg))
    final = f"{last} + dense" if fusion else last
    comparisons = compare_rows(cfg.cycle.eval, cfg.cycle.test, scores, final, seed=c.seed)
    references = _references(out, eval_path) if c.figure_proxy == "zero-shot" and eval_path else {}

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
        "timings": stages.timings,
        "stages_run": stages.ran,
        "notes": notes,
        "provenance": _provenance(cfg, store),
    }
    write_report(out, report)
    return report


def _round(
    cfg: CycleConfig,
    where: Path,
    stages: Stages,
    n: int,
    base: RekindleConfig,
    teacher: str,
    pairs: str,
) -> str:
    """Round ``n`` of the cycle: score, pre-train and fine-tune again; the new expert's dir.

    The 'teacher' expert is now ``teacher`` (the previous round's rekindled student); the
    student starts again from the general encoder; only the first variant is run.
    """
    store = where / "teacher_scores.parquet"
    stages.run(
        f"score[round {n}]",
        where / "score",
        lambda: score_stage(cfg, base, teacher, pairs, store),
    )
    variant = cfg.cycle.variants[0]
    pre_dir = where / "pretrain" / slug(variant)
    rcfg = pretrain_config(cfg, variant, pre_dir / "train", teacher, pairs, store, None)
    pre = stages.run(
        f"pretrain[{variant}, round {n}]", pre_dir, lambda: pretrain_stage(rcfg, pre_dir / "train")
    )
    ft_dir = where / "finetune" / slug(variant)
    r = stages.run(
        f"finetune[{variant}, round {n}]",
        ft_dir,
        lambda: train_stage(finetune_config(cfg, ft_dir / "train", pre["final"]), ft_dir / "train"),
    )
    return model_of(r)


def _recipe_steps(rc: Config) -> int:
    if rc.train.steps:
        return rc.train.steps
    raise RerankError(
        "cycle.long_baseline needs the fine-tune recipe to set train.steps (not epochs)"
    )


def _finetuned_curve(
    cfg: CycleConfig, out: Path, stages: Stages, variant: str, pre: dict[str, Any]
) -> list[list[float]]:
    """Eval PNR after a short fine-tune of every pre-training snapshot of ``variant``."""
    points = []
    for step, snap in sorted(pre["snapshots"].items(), key=lambda kv: int(kv[0])):
        where = out / "figure" / slug(variant) / f"step-{step}"

        def short(w: Path = where, s: str = snap) -> dict[str, Any]:
            from rerank.train import train

            rc = finetune_config(cfg, w / "train", s)
            rc.train.steps = cfg.cycle.figure_finetune_steps
            rc.train.eval_every = 0
            rc.data.eval = cfg.cycle.eval
            fresh_or_resume(rc, w / "train")
            res = train(rc)
            return {"pnr": res.metrics.get("pnr"), "steps": res.steps}

        points.append([int(step), stages.run(f"figure[{variant}@{step}]", where, short)["pnr"]])
    return points


def _evaluate_all(
    cfg: CycleConfig,
    out: Path,
    stages: Stages,
    models: dict[str, str],
    length: tuple[int, int],
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, str]]]:
    """Measures of every row on both splits, and the score file behind each."""
    from rerank.evaluation import evaluate_files
    from rerank.rekindle.baselines import dense_scores_stage

    c = cfg.cycle
    splits = {"eval": c.eval, "test": c.test}
    measures = report_measures(cfg)
    results: dict[str, dict[str, dict[str, float]]] = {}
    scores: dict[str, dict[str, str]] = {}

    def measured(split: str, path: str) -> dict[str, float]:
        rep = evaluate_files(splits[split], path, measures=measures, unmatched="drop")
        return {k: v for k, v in rep.as_dict().items() if k in measures}

    bm25 = {"eval": c.bm25_eval, "test": c.bm25_test}
    if all(bm25.values()):
        results["bm25"] = {split: measured(split, path) for split, path in bm25.items()}
        scores["bm25"] = dict(bm25)

    def dense_stage(split: str, where: Path) -> dict[str, Any]:
        path = dense_scores_stage(c.dense, splits[split], where, batch_size=c.score_batch_size)
        return {"scores": path, "measures": measured(split, path)}

    if c.dense:
        results["dense"], scores["dense"] = {}, {}
        for split in splits:
            where = out / "eval" / f"dense-{split}"
            done = stages.run(
                f"eval[dense/{split}]", where, lambda s=split, w=where: dense_stage(s, w)
            )
            scores["dense"][split], results["dense"][split] = done["scores"], done["measures"]
    first_name: dict[str, str] = {}
    for name, model_dir in models.items():
        results[name], scores[name] = {}, {}
        for split, split_path in splits.items():
            if model_dir in first_name:  # the same model under another name (plain == teacher)
                results[name][split] = results[first_name[model_dir]][split]
                scores[name][split] = scores[first_name[model_dir]][split]
                continue
            where = out / "eval" / f"{slug(name)}-{split}"
            results[name][split] = stages.run(
                f"eval[{name}/{split}]",
                where,
                lambda m=model_dir, s=split_path, w=where: evaluate_stage(m, s, w, cfg, *length),
            )
            scores[name][split] = str(where / "scores.parquet")
        first_name.setdefault(model_dir, name)
    return results, scores


def _references(out: Path, eval_path: str) -> dict[str, float]:
    """Teacher and rekindled student PNR on the rows the zero-shot curves measure."""
    from rerank.evaluation import evaluate_files

    references = {}
    for name in ("teacher", "rekindled"):
        scores = out / "eval" / f"{slug(name)}-eval" / "scores.parquet"
        rep = evaluate_files(eval_path, scores, measures=["pnr"], unmatched="drop")
        references[f"{name} after fine-tune"] = float(rep.aggregate["pnr"])
    return references


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
