"""Choose the Cranfield teacher recipe by cross-validation over train + eval (never test).

Usage (from the repository root)::

    .venv/bin/python metrics/teacher_cv.py --runs /work/runs/teacher_cv \\
        --fold0 /work/runs/teacher [--jobs 2] [--aggregate-only]

Why: with 45 queries in the eval split, eval and test order the candidate recipes of
``metrics/teacher_recipes.py`` oppositely (metrics/cranfield_teacher.md); one 45-query split
cannot separate differences of 0.02-0.03 nDCG@10. Cross-validation estimates each recipe on
all 180 train + eval queries while test stays unseen.

Folds: fold 0 is the shipped split itself (train on ``train.parquet``, hold out
``eval.parquet``), so its runs are the ones ``teacher_recipes.py`` made (``--fold0``; trained
here when missing). Folds 1..K-1 split the 135 training queries at random (``--fold-seed``)
into K-1 parts of 45; fold k holds out part k and trains on the other 135 queries (the rest of
train plus all of eval): every fold trains on 135 queries and holds out 45, as the shipped
split does. Each run is ``rerank train --config data/cranfield/teacher.toml`` with the
recipe's overrides from ``teacher_recipes.RECIPES`` (seed 42), and the figure taken is the
held-out PNR / nDCG@10 of the **final** checkpoint (the last step): the maximum over a run's
checkpoints would favour recipes that evaluate more often. The rule, fixed before the runs: the
recipe with the best mean held-out nDCG@10 over the K folds is what ``teacher.toml`` ships.

Writes ``metrics/cranfield_teacher_cv.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "metrics"))
from _record import command_line, git, mean_sd, run_jobs, run_logged, write_record  # noqa: E402
from teacher_recipes import DATA, RECIPES, train_command  # noqa: E402

CANDIDATES = ["hinge-gap-1500", "hinge-gap-3000", "hinge-gap-3000-dropout"]


def make_folds(runs: Path, k: int, seed: int) -> list[tuple[Path, Path]]:
    """(train, held-out) Parquet paths of folds 1..k-1 (fold 0 is the shipped split).

    Written once per runs directory (runs train from them); ``folds.json`` records the
    held-out queries, and a different ``k`` or seed for the same directory is an error.
    """
    train = pl.read_parquet(DATA / "train.parquet")
    pool = pl.concat([train, pl.read_parquet(DATA / "eval.parquet")])
    queries = sorted(train["query_id"].unique().to_list(), key=int)
    random.Random(seed).shuffle(queries)
    parts = [sorted(queries[i :: k - 1], key=int) for i in range(k - 1)]
    record = runs / "folds.json"
    if record.is_file() and json.loads(record.read_text()) != parts:
        raise SystemExit(f"{record}: these runs used other folds; give another --runs")
    folds = []
    for i, held in enumerate(parts, start=1):
        d = runs / f"fold{i}"
        paths = (d / "train.parquet", d / "heldout.parquet")
        folds.append(paths)
        if record.is_file():
            continue
        d.mkdir(parents=True, exist_ok=True)
        is_held = pl.col("query_id").is_in(held)
        order = [pl.col("query_id").cast(pl.Int64), pl.col("doc_id").cast(pl.Int64)]
        for path, rows in zip(paths, (pool.filter(~is_held), pool.filter(is_held)), strict=True):
            rows.sort(order).write_parquet(path, compression="zstd")
    record.write_text(json.dumps(parts) + "\n")
    return folds


def train(out: Path, recipe: str, data: tuple[Path, Path] | None, threads: int) -> None:
    if (out / "final" / "config.json").is_file():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    # evaluate the held-out part once, at the last step (eval_every = 0)
    extra = [f"data.train={data[0]}", f"data.eval={data[1]}", "train.eval_every=0"] if data else []
    cmd = train_command(out, recipe, extra)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    run_logged(cmd, out.parent / f"{out.name}.log", env=env)


def steps(recipe: str) -> int:
    return int(dict(s.split("=", 1) for s in RECIPES[recipe][1])["train.steps"])


def final_eval(out: Path) -> dict[str, float] | None:
    """Held-out figures of the run's last step, or None while it is not finished."""
    if not (out / "final" / "config.json").is_file():
        return None
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    last = max(r["step"] for r in records)
    evals = [r["eval"] for r in records if "eval" in r and r["step"] == last]
    return {m: float(evals[-1][m]) for m in ("pnr", "ndcg@10")} if evals else None


def bm25_folds(runs: Path, folds: list[tuple[Path, Path]], shared: Path) -> list[dict]:
    """BM25's held-out PNR / nDCG@10 per fold (fold 0: the shipped eval run).

    Folds 1.. are scored with the index ``data/cranfield/prepare.py`` builds from ``shared``
    (the same BM25 that made the shipped runs); None where ``shared`` is missing.
    """
    from rerank.evaluation import evaluate_files

    sys.path.insert(0, str(DATA))
    from prepare import bm25_run, load  # data/cranfield/prepare.py

    runs_ = [(DATA / "eval.parquet", DATA / "bm25_eval.run")]
    runs_ += [
        (held, runs / f"fold{i}" / "bm25_heldout.run") for i, (_, held) in enumerate(folds, 1)
    ]
    if not all(run.is_file() for _, run in runs_[1:]):
        if not (shared / "docs.jsonl").is_file():
            return []
        from rerank.data import write_table
        from rerank.retrieval import Bm25Index

        index = Bm25Index.build(load(shared)[0])
        for held, run in runs_[1:]:
            write_table(bm25_run(index, pl.read_parquet(held)), run, tag="bm25")
    out = []
    for held, run in runs_:
        report = evaluate_files(held, run, measures=["pnr", "ndcg@10"])
        out.append({m: float(report.aggregate[m]) for m in ("pnr", "ndcg@10")})
    return out


def _stats(vals: list[float]) -> dict:
    mean, sd = mean_sd(vals)
    return {"mean": mean, "sd": sd}


def _paired(folds: list, base: list) -> dict:
    diffs = [
        f["ndcg@10"] - b["ndcg@10"]
        for f, b in zip(folds, base, strict=True)
        if f is not None and b is not None
    ]
    return {**_stats(diffs), "wins": sum(d > 0 for d in diffs), "folds": len(diffs)}


def summarise(runs: Path, fold0: Path, k: int, recipes: list[str], bm25: list[dict]) -> dict:
    rows = {}
    for recipe in recipes:
        dirs = [fold0 / recipe] + [runs / f"fold{i}" / recipe for i in range(1, k)]
        per_fold = [final_eval(d) for d in dirs]
        done = [f for f in per_fold if f is not None]
        row: dict = {"folds": per_fold, "what": RECIPES[recipe][0]}
        row |= {m: _stats([f[m] for f in done]) for m in ("pnr", "ndcg@10")}
        if bm25:
            row["vs_bm25"] = _paired(per_fold, bm25)
        rows[recipe] = row
    # paired by fold against the first recipe (the one teacher.toml shipped before)
    for recipe in recipes[1:]:
        rows[recipe]["vs_first"] = _paired(rows[recipe]["folds"], rows[recipes[0]]["folds"])
    complete = [r for r in recipes if all(f is not None for f in rows[r]["folds"])]
    chosen = (
        max(complete, key=lambda r: rows[r]["ndcg@10"]["mean"]) if complete == recipes else None
    )
    bm25_row = {"folds": bm25} | {m: _stats([f[m] for f in bm25]) for m in ("pnr", "ndcg@10")}
    return {"recipes": rows, "bm25": bm25_row if bm25 else None, "chosen": chosen}


def markdown(record: dict) -> str:
    k = record["folds"]
    first = next(iter(record["recipes"]))
    lines = [
        "# cranfield_teacher_cv: the teacher recipe chosen by cross-validation",
        "",
        f"Command: `{record['command']}`  ",
        f"Aggregated at commit `{record['commit']}`, {record['date']}; {record['host']}.",
        "",
        f"{k} folds over the 180 train + eval queries (test untouched): fold 0 is the shipped "
        f"split (train -> eval), folds 1..{k - 1} each hold out a random 1/{k - 1} of the "
        "training queries (fold seed "
        f"{record['fold_seed']}) and train on the other 135 (the rest of train + eval). Every "
        "run trains on 135 queries and is measured on the 45 it did not see, at its **last** "
        "step. Rule fixed before the runs: the best mean held-out nDCG@10 is what "
        "data/cranfield/teacher.toml ships.",
        "",
        "| recipe | "
        + " | ".join(f"fold {i} nDCG@10" for i in range(k))
        + f" | mean nDCG@10 (sd) | mean PNR (sd) | nDCG@10 - {first} (sd), folds won "
        "| nDCG@10 - BM25 (sd), folds won |",
        "|---|" + "---:|" * (k + 4),
    ]

    def cell(stat: dict) -> str:
        if stat["mean"] is None:
            return "-"
        return f"{stat['mean']:.4f}" + (f" ({stat['sd']:.4f})" if stat["sd"] is not None else "")

    def paired(vs: dict | None) -> str:
        if not vs or vs["mean"] is None:
            return "-"
        sd = f" ({vs['sd']:.4f})" if vs["sd"] is not None else ""
        return f"{vs['mean']:+.4f}{sd}, {vs['wins']}/{vs['folds']}"

    rows = dict(record["recipes"])
    if record.get("bm25"):
        rows = {"BM25 (first stage)": record["bm25"]} | rows
    for name, r in rows.items():
        folds = [f"{f['ndcg@10']:.4f}" if f else "running" for f in r["folds"]]
        lines.append(
            f"| {name} | "
            + " | ".join(folds)
            + f" | {cell(r['ndcg@10'])} | {cell(r['pnr'])} | {paired(r.get('vs_first'))} "
            f"| {paired(r.get('vs_bm25'))} |"
        )
    lines += [""]
    chosen = record["chosen"]
    lines.append(
        f"Chosen: **{chosen}**." if chosen else "Not all runs are finished: no choice yet."
    )
    lines += ["", "Recipes (overrides in metrics/teacher_recipes.py):", ""]
    lines += [f"- `{name}`: {r['what']}" for name, r in record["recipes"].items()]
    lines += [""]
    if record.get("notes"):
        lines += ["Notes:", "", *[f"- {n}" for n in record["notes"]], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="where the fold runs go (outside the repo)")
    parser.add_argument("--fold0", required=True, help="teacher_recipes.py's runs (fold 0)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=CANDIDATES, choices=list(RECIPES))
    parser.add_argument(
        "--shared",
        default=str(ROOT.parent / "shared" / "data" / "cranfield"),
        help="the Cranfield collection for BM25 on folds 1.. (no BM25 row without it)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (1 thread each)")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a note for the markdown")
    args = parser.parse_args()
    runs, fold0 = Path(args.runs).resolve(), Path(args.fold0).resolve()
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    folds = make_folds(runs, args.folds, args.fold_seed)
    if not args.aggregate_only:
        jobs = [(fold0 / r, r, None) for r in args.recipes]
        jobs += [
            (runs / f"fold{i}" / r, r, d) for i, d in enumerate(folds, 1) for r in args.recipes
        ]
        # the first two recipes' runs before the others' (so that a stopped session leaves a
        # complete pairwise comparison), longest first within, so the workers finish together
        jobs.sort(key=lambda j: (args.recipes.index(j[1]) >= 2, -steps(j[1])))
        run_jobs([lambda j=j: train(*j, threads) for j in jobs], args.jobs)
    record = {
        "command": command_line(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "date": dt.date.today().isoformat(),
        "host": f"{os.cpu_count()} CPU cores, {args.jobs} run(s) at once, "
        f"{threads} torch thread(s) each",
        "folds": args.folds,
        "fold_seed": args.fold_seed,
        **summarise(
            runs, fold0, args.folds, args.recipes, bm25_folds(runs, folds, Path(args.shared))
        ),
        "notes": args.note,
    }
    write_record("cranfield_teacher_cv", record, markdown(record))


if __name__ == "__main__":
    main()
