"""Teacher recipes on the Cranfield sample: train, select on eval, report test.

Usage (from the repository root)::

    .venv/bin/python metrics/teacher_recipes.py --runs /work/runs/teacher [--only NAME ...]
        [--aggregate-only]

Every recipe is ``rerank train --config data/cranfield/teacher.toml`` with the ``--set``
overrides listed in :data:`RECIPES` (each sets everything it depends on, so the table does
not change meaning when teacher.toml does). Each run evaluates on the eval split every
``eval_every`` steps and keeps the checkpoint with the best eval nDCG@10 (``best/``); that
checkpoint alone is then scored on the test split (``rerank score``) and evaluated
(``rerank evaluate``): test figures are never used to choose. A finished run is not run
again. Writes ``metrics/cranfield_teacher.{json,md}``: per recipe the eval figures of the
selected checkpoint, the test PNR / nDCG@10 / MAP, the training wall time, and BM25's
figures on the same splits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

import tomllib
from _record import BIN, ROOT, command_line, git, run_logged, write_record

sys.path.insert(0, str(ROOT))
DATA = ROOT / "data" / "cranfield"
MEASURES = ["pnr", "ndcg@10", "map"]

_COMMON = ["train.warmup_steps=60", "train.eval_every=100", "train.save_every=100"]
_HINGE = ["objective.0.loss=hinge", "objective.0.params={margin=1.0}"]
_GAP = ["objective.0.loss=hinge", "objective.0.params={margin=1.0, scale_by_gap=true}"]
RECIPES: dict[str, tuple[str, list[str]]] = {
    "hinge": (
        "pairwise hinge, 600 steps, max length 128, no attention dropout",
        [*_HINGE, *_COMMON, "train.steps=600", "model.max_length=128",
         "model.attention_dropout=0"],
    ),
    "hinge-dropout": (
        "as 'hinge', attention dropout 0.1 (the checkpoint's)",
        [*_HINGE, *_COMMON, "train.steps=600", "model.max_length=128",
         "model.attention_dropout=-1"],
    ),
    "hinge-gap": (
        "hinge with the margin scaled by the label gap",
        [*_GAP, *_COMMON, "train.steps=600", "model.max_length=128",
         "model.attention_dropout=0"],
    ),
    "hinge-gap-ndcg": (
        "hinge-gap with LambdaRank |delta nDCG| pair weights",
        ['objective.0.loss=hinge',
         "objective.0.params={margin=1.0, scale_by_gap=true, ndcg_weight=true}",
         *_COMMON, "train.steps=600", "model.max_length=128", "model.attention_dropout=0"],
    ),
    "listwise": (
        "listwise softmax cross-entropy (ListNet)",
        ['objective.0.loss=listwise_ce', "objective.0.params={}", *_COMMON,
         "train.steps=600", "model.max_length=128", "model.attention_dropout=0"],
    ),
    "hinge-256": (
        "as 'hinge' at max length 256 (whole abstracts)",
        [*_HINGE, *_COMMON, "train.steps=600", "model.max_length=256",
         "model.attention_dropout=0"],
    ),
    "hinge-gap-1500": (
        "hinge-gap, 1,500 steps: the shipped teacher.toml",
        [*_GAP, "train.warmup_steps=150", "train.eval_every=250", "train.save_every=250",
         "train.steps=1500", "model.max_length=128", "model.attention_dropout=0"],
    ),
    "hinge-gap-3000": (
        "hinge-gap, 3,000 steps (the 1,500-step eval curve was still rising)",
        [*_GAP, "train.warmup_steps=300", "train.eval_every=250", "train.save_every=250",
         "train.steps=3000", "model.max_length=128", "model.attention_dropout=0"],
    ),
    "hinge-gap-3000-dropout": (
        "as 'hinge-gap-3000' with the checkpoint's attention dropout (0.1) against over-fitting",
        [*_GAP, "train.warmup_steps=300", "train.eval_every=250", "train.save_every=250",
         "train.steps=3000", "model.max_length=128", "model.attention_dropout=-1"],
    ),
}  # fmt: skip


def train_command(out: Path, name: str, extra: list[str] | None = None) -> list[str]:
    """``rerank train`` of recipe ``name`` into ``out`` (``extra``: more ``--set`` overrides,
    applied last); ``--resume`` when ``out`` holds a checkpoint."""
    sets = [f"train.output_dir={out}", "train.progress=false", *RECIPES[name][1], *(extra or [])]
    cmd = [str(BIN / "rerank"), "train", "--config", str(DATA / "teacher.toml")]
    cmd += [x for s in sets for x in ("--set", s)]
    return [*cmd, "--resume"] if (out / "checkpoint").is_dir() else cmd


def train_and_score(name: str, runs: Path, *, train: bool = True) -> None:
    out = runs / name
    log = runs / f"{name}.log"
    if train and not (out / "final" / "config.json").is_file():
        run_logged(train_command(out, name), log)
    if not (out / "test.run").is_file() and (out / "best").is_dir():
        # at the lengths the run trained with (a checkpoint of this version carries them
        # and `rerank score` defaults to them; saying so keeps older checkpoints right)
        model = tomllib.loads((out / "config.toml").read_text())["model"]
        cmd = [str(BIN / "rerank"), "score", "--model", str(out / "best")]
        cmd += ["--max-length", str(model["max_length"])]
        cmd += ["--max-query-length", str(model["max_query_length"])]
        run_logged(
            [*cmd, "--data", str(DATA / "test.parquet"), "--out", str(out / "test.run")], log
        )


def test_figures(path: Path) -> dict[str, float]:
    from rerank.evaluation import evaluate_files

    report = evaluate_files(DATA / "test.parquet", path, measures=MEASURES)
    return {m: float(report.aggregate[m]) for m in MEASURES}


def log_text(runs: Path, name: str) -> str:
    log = runs / f"{name}.log"
    return log.read_text(errors="replace") if log.is_file() else ""


def collect(runs: Path) -> dict:
    rows = {}
    for name, (what, sets) in RECIPES.items():
        out = runs / name
        if not (out / "test.run").is_file():
            continue
        evals = [
            json.loads(line)
            for line in (out / "log.jsonl").read_text().splitlines()
            if '"eval"' in line
        ]
        best = max(evals, key=lambda r: (r["eval"]["ndcg@10"], -r["step"]))
        finished = re.findall(r"finished at step \d+/\d+ in (\d+)s", log_text(runs, name))
        rows[name] = {
            "what": what,
            "overrides": sets,
            "best_step": best["step"],
            "last_eval_step": evals[-1]["step"],
            "stopped_early": not (out / "final" / "config.json").is_file(),
            "eval": {m: best["eval"][m] for m in ("pnr", "ndcg@10")},
            "test": test_figures(out / "test.run"),
            "train_seconds": float(finished[-1]) if finished else None,
        }
    return rows


def markdown(record: dict) -> str:
    bm = record["bm25"]
    lines = [
        "# cranfield_teacher: teacher recipes on the Cranfield sample",
        "",
        f"Command: `{record['command']}`  ",
        f"Aggregated at commit `{record['commit']}`, {record['date']}; {record['host']}.",
        "",
        "Each recipe: `rerank train --config data/cranfield/teacher.toml` plus the overrides "
        "below (2 queries x 8 documents a step, lr 5e-5, seed 42, all-MiniLM-L6-v2), the "
        "checkpoint with the best **eval** nDCG@10 kept, then scored once on **test**.",
        "",
        "| recipe | selected step | eval PNR | eval nDCG@10 | test PNR | test nDCG@10 "
        "| test MAP | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| BM25 (first stage) | - | {bm['eval']['pnr']:.4f} | {bm['eval']['ndcg@10']:.4f} | "
        f"{bm['test']['pnr']:.4f} | {bm['test']['ndcg@10']:.4f} | {bm['test']['map']:.4f} | - |",
    ]
    for name, r in record["recipes"].items():
        secs = f"{r['train_seconds']:.0f}" if r["train_seconds"] else "-"
        if r["stopped_early"]:
            secs = f"stopped after step {r['last_eval_step']}"
        lines.append(
            f"| {name} | {r['best_step']} | {r['eval']['pnr']:.4f} | {r['eval']['ndcg@10']:.4f} "
            f"| {r['test']['pnr']:.4f} | {r['test']['ndcg@10']:.4f} | {r['test']['map']:.4f} "
            f"| {secs} |"
        )
    lines += ["", "Recipes:", ""]
    for name, r in record["recipes"].items():
        lines.append(f"- `{name}`: {r['what']}; `" + "` `".join(r["overrides"]) + "`")
    lines += [""]
    if record.get("notes"):
        lines += ["Notes:", "", *[f"- {n}" for n in record["notes"]], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="where the runs go (outside the repo)")
    parser.add_argument("--only", nargs="+", choices=list(RECIPES), help="run these recipes")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument(
        "--no-train", action="store_true", help="score and aggregate what is trained"
    )
    parser.add_argument("--note", action="append", default=[], help="a note for the markdown")
    args = parser.parse_args()
    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    if not args.aggregate_only:
        for name in args.only or RECIPES:
            train_and_score(name, runs, train=not args.no_train)
    from rerank.evaluation import evaluate_files

    bm25 = {
        split: {
            m: float(v)
            for m, v in evaluate_files(
                DATA / f"{split}.parquet", DATA / f"bm25_{split}.run", measures=MEASURES
            ).aggregate.items()
            if m in MEASURES
        }
        for split in ("eval", "test")
    }
    record = {
        "command": command_line(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "date": dt.date.today().isoformat(),
        "host": f"{os.cpu_count()} CPU cores, 1 torch thread per run (OMP_NUM_THREADS=1), "
        "sharing the machine with one other 1-thread job",
        "bm25": bm25,
        "recipes": collect(runs),
        "notes": args.note,
    }
    write_record("cranfield_teacher", record, markdown(record))


if __name__ == "__main__":
    main()
