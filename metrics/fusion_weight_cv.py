"""How well the cycle's rule for the fusion weight chooses, judged on queries it did not see.

Usage (from the repository root)::

    .venv/bin/python metrics/fusion_weight_cv.py --name NAME RUN [RUN ...] [--halvings 500]

Each ``RUN`` is the output directory of a finished ``rerank cycle`` with ``cycle.fusion``
(its ``report.json`` names the fused row and the eval split). The cycle fuses that row with
the zero-shot dense expert, ``(1 - w) * z(row) + w * z(dense)`` per query, and keeps the
weight ``w`` of 0.0, 0.1, ..., 1.0 with the best eval nDCG@10. Here the eval queries are
split at random into halves many times: a rule chooses ``w`` on one half and is measured
(nDCG@10) on the other. Rules: the cycle's argmax; the argmax averaged over 200 bootstrap
resamples of the choosing half (then the nearest grid weight); and every fixed weight,
which chooses nothing (a fixed weight's figure is optimistic when it is itself picked from
this table). Writes ``metrics/<NAME>.json`` and ``.md``; the test split is never read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
from _record import command_line, git, mean_sd, write_record


def per_query_curve(run: Path) -> tuple[np.ndarray, str]:
    """nDCG@10 ``[weights, queries]`` of the fused row on the run's eval split, and its row."""
    from rerank.data import read_pairs
    from rerank.measures import evaluate
    from rerank.rekindle.baselines import FUSION_WEIGHTS, fuse
    from rerank.rekindle.stages import slug

    report = json.loads((run / "report.json").read_text())
    row = report["fusion"]["row"]
    split = report["provenance"]["config"]["cycle"]["eval"]
    labels = read_pairs(split, labels="required").select("query_id", "doc_id", "label")
    model = run / "eval" / f"{slug(row)}-eval" / "scores.parquet"
    dense = run / "eval" / "dense-eval" / "scores.parquet"
    curve = []
    for w in FUSION_WEIGHTS:
        scored = labels.join(fuse(model, dense, w), on=["query_id", "doc_id"])
        table = evaluate(scored, ["ndcg@10"], per_query=True).per_query
        curve.append(table.sort("query_id")["ndcg@10"].to_numpy())
    return np.array(curve), row


def choices(m: np.ndarray, rng: np.random.Generator, weights: list[float]) -> dict[str, int]:
    """Index of the weight each rule picks on the queries (columns) of ``m``."""
    n = m.shape[1]
    picks = [weights[int(np.argmax(m[:, rng.integers(0, n, n)].mean(1)))] for _ in range(200)]
    bagged = int(np.argmin([abs(w - float(np.mean(picks))) for w in weights]))
    rules = {"eval argmax (the cycle's rule)": int(np.argmax(m.mean(1))), "bagged argmax": bagged}
    rules.update({f"fixed {w:.1f}": i for i, w in enumerate(weights)})
    return rules


def held_out(m: np.ndarray, halvings: int, seed: int, weights: list[float]) -> dict[str, float]:
    """Mean held-out nDCG@10 of each rule over ``halvings`` random halvings of the queries."""
    rng = np.random.default_rng(seed)
    n = m.shape[1]
    sums: dict[str, float] = {}
    for _ in range(halvings):
        order = rng.permutation(n)
        choose, judge = order[: n // 2], order[n // 2 :]
        for rule, i in choices(m[:, choose], rng, weights).items():
            sums[rule] = sums.get(rule, 0.0) + float(m[i, judge].mean())
    return {rule: total / halvings for rule, total in sums.items()}


def main() -> None:
    from rerank.rekindle.baselines import FUSION_WEIGHTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="metrics/<name>.json and .md")
    ap.add_argument("runs", nargs="+", type=Path, help="finished cycle output directories")
    ap.add_argument("--halvings", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    weights = list(FUSION_WEIGHTS)
    per_run = {}
    for run in args.runs:
        curve, row = per_query_curve(run)
        per_run[str(run)] = {
            "row": row,
            "queries": int(curve.shape[1]),
            "held_out_ndcg@10": held_out(curve, args.halvings, args.seed, weights),
        }
    rules = list(next(iter(per_run.values()))["held_out_ndcg@10"])
    summary = {}
    lines = [
        f"# {args.name}: choosing the fusion weight, judged on held-out eval queries\n",
        f"`{command_line()}` at {git('rev-parse', '--short', 'HEAD')}; {args.halvings} random "
        "halvings of each run's eval queries (choose on one half, nDCG@10 on the other). "
        "Fixed weights choose nothing; picking one from this table makes its figure optimistic.\n",
        "| rule | held-out eval nDCG@10, mean ± sd over runs | per run |",
        "|---|---|---|",
    ]
    for rule in rules:
        values = [r["held_out_ndcg@10"][rule] for r in per_run.values()]
        mean, sd = mean_sd(values)
        summary[rule] = {"mean": mean, "sd": sd}
        spread = f" ± {sd:.4f}" if sd is not None else ""
        lines.append(f"| {rule} | {mean:.4f}{spread} | {', '.join(f'{v:.4f}' for v in values)} |")
    lines.append("\nRuns: " + ", ".join(f"`{k}` ({v['row']})" for k, v in per_run.items()))
    record = {
        "date": dt.date.today().isoformat(),
        "command": command_line(),
        "git_commit": git("rev-parse", "HEAD"),
        "halvings": args.halvings,
        "seed": args.seed,
        "runs": per_run,
        "summary": summary,
    }
    write_record(args.name, record, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
