"""The stages of the rekindle cycle: each a function returning a JSON-able result.

:class:`rerank.pipeline.Pipeline` runs them (``done.json``, resume from a checkpoint);
here is what each stage computes and the training config it runs
(:func:`rerank.pipeline.stage_config` plus what is particular to the ranking cycle).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from rerank.config import Config, HeadConfig
from rerank.errors import RerankError
from rerank.pipeline import Pipeline, check_finished, stage_config
from rerank.rekindle.cycle_config import CycleConfig
from rerank.rekindle.pretrain import RekindleConfig, TeacherConfig, ablate, pretrain
from rerank.tables.columns import PAIRS

log = logging.getLogger(__name__)


def model_of(result: dict[str, Any]) -> str:
    return result["best"] or result["final"]


def finetune_config(cfg: CycleConfig, output_dir: Path, model: str, num_layers: int = 0) -> Config:
    """The fine-tune recipe, identical for teacher, plain student and rekindled student."""
    c = cfg.cycle
    r = stage_config(
        cfg.finetune,
        Config,
        c,
        output_dir=output_dir,
        seed=c.seed,
        model=model,
        num_layers=num_layers,
    )
    _continue_primary_head(r)
    # Selection on the eval split when the recipe evaluates during training; without
    # eval_every the loop would only evaluate the final model, which the eval stage does.
    r.data.eval = c.eval if r.train.eval_every else ""
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


def train_stage(cfg: Config) -> dict[str, Any]:
    """Train ``cfg`` to the end: the final and best model folders, steps and seconds."""
    from rerank.train import train

    result = train(cfg)
    check_finished(result, Path(cfg.train.output_dir))
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
        frame = read_pairs(p.data, labels="optional").select(*PAIRS)
    else:
        from rerank.pairs import build_pairs, read_documents, read_judged, read_queries

        exclude = read_judged(p.exclude_judged) if p.exclude_judged else None
        frame = build_pairs(
            read_queries(p.queries), read_documents(p.corpus), k=p.k, exclude=exclude
        )
    if p.max_queries:
        keep = frame.get_column("query_id").unique(maintain_order=True).head(p.max_queries)
        frame = frame.filter(pl.col("query_id").is_in(keep.implode()))
    if p.with_train:
        # the labeled queries' candidates are unlabeled pairs too: the experts score them
        # like any other (labels dropped); the prefix keeps their query ids apart
        train = stage_config(
            cfg.finetune, Config, cfg.cycle, output_dir=where, seed=cfg.cycle.seed
        ).data.train
        labeled = read_pairs(train, labels="optional").select(*PAIRS)
        labeled = labeled.with_columns(
            pl.concat_str(pl.lit("train:"), "query_id").alias("query_id")
        )
        frame = pl.concat([frame.select(*PAIRS), labeled])
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
    p = cfg.pretrain
    r = stage_config(
        p,
        RekindleConfig,
        c,
        output_dir=where,
        seed=c.seed,
        model=p.student,
        num_layers=p.num_layers,
    )
    r = ablate(r, variant)
    r.rekindle.teachers = experts(cfg, r, teacher)
    _objective_per_expert(r, list(r.rekindle.teachers))
    r.rekindle.data = pairs
    r.rekindle.store = str(store)
    if eval_path and variant != "mlm":
        r.data.eval = eval_path
        r.train.eval_every = r.rekindle.snapshot_every or r.train.eval_every
    else:
        r.data.eval = ""
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


def pretrain_stage(rcfg: RekindleConfig) -> dict[str, Any]:
    """Expert-guided pre-training to the end; its snapshots and zero-shot eval curve."""
    from rerank.data import read_pairs
    from rerank.rekindle.pretrain import store_path
    from rerank.tables.columns import teacher_column

    where = Path(rcfg.train.output_dir)
    # the scoring stage built and checked the store: read it once, do not build it again
    store = store_path(rcfg)
    columns = [teacher_column(name) for name in rcfg.rekindle.teachers]
    frame = read_pairs(store, labels="optional", targets=columns)
    rcfg.data.train = str(store)
    result = pretrain(rcfg, frame=frame)
    check_finished(result.train, where)
    curve = _eval_curve(where / "log.jsonl")
    return {
        "final": str(result.train.final_dir),
        "steps": result.train.steps,
        "seconds": round(result.train.seconds, 2),
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
        max_length=base.rekindle.score_max_length or None,  # None: each teacher's own
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


def evaluate_stage(model_dir: str, split: str, where: Path, cfg: CycleConfig) -> dict[str, Any]:
    """Score ``split`` with the model at the input lengths saved with it; its measures.

    Precision as ``rerank score``'s default (bf16 encoder where the hardware computes it
    natively): the report measures what a user scoring the saved model gets.
    """
    import torch

    from rerank.data import read_pairs, write_table
    from rerank.evaluation import evaluate_files
    from rerank.model import RerankModel
    from rerank.precision import DEFAULT_PRECISION
    from rerank.score import score_frame

    if cfg.cycle.num_threads:
        torch.set_num_threads(cfg.cycle.num_threads)
    frame = read_pairs(split, labels="required")
    model = RerankModel.from_pretrained(model_dir)
    scores = score_frame(
        model, frame, batch_size=cfg.cycle.score_batch_size, precision=DEFAULT_PRECISION
    )
    path = where / "scores.parquet"
    write_table(frame.select("query_id", "doc_id").with_columns(pl.Series("score", scores)), path)
    report = evaluate_files(split, path, measures=report_measures(cfg))
    return {k: v for k, v in report.as_dict().items() if k in report_measures(cfg)}


def report_measures(cfg: CycleConfig) -> list[str]:
    return list(dict.fromkeys(["pnr", "ndcg@10", *cfg.cycle.measures]))


def evaluate_rows(
    cfg: CycleConfig, out: Path, pipe: Pipeline, models: dict[str, str]
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
            done = pipe.run(
                f"eval[dense/{split}]",
                where,
                lambda s=split, w=where: dense_stage(s, w),
                tags={"kind": "eval", "row": "dense", "split": split},
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
            results[name][split] = pipe.run(
                f"eval[{name}/{split}]",
                where,
                lambda m=model_dir, s=split_path, w=where: evaluate_stage(m, s, w, cfg),
                tags={"kind": "eval", "row": name, "split": split},
            )
            scores[name][split] = str(where / "scores.parquet")
        first_name.setdefault(model_dir, name)
    return results, scores


def reference_pnr(out: Path, eval_path: str) -> dict[str, float]:
    """Teacher and rekindled student PNR on the rows the zero-shot curves measure."""
    from rerank.evaluation import evaluate_files

    references = {}
    for name in ("teacher", "rekindled"):
        scores = out / "eval" / f"{slug(name)}-eval" / "scores.parquet"
        rep = evaluate_files(eval_path, scores, measures=["pnr"], unmatched="drop")
        references[f"{name} after fine-tune"] = float(rep.aggregate["pnr"])
    return references
