"""Run the knowledge-rekindle cycle for several seeds and aggregate the results.

Usage (from the repository root)::

    .venv/bin/python metrics/run_seeds.py --name cranfield --config data/cranfield/cycle.toml \\
        --runs /work/runs/metrics/cranfield --seeds 0 1 2 --ablation \\
        [--set cycle.KEY=VALUE ...] [--aggregate-only]

Each seed is one ``rerank cycle`` (a subprocess, resumable: re-running the command continues
killed cycles and skips finished ones) under ``RUNS/seed-<s>``, with ``cycle.seed=<s>``.
With ``--ablation`` every pre-training variant (``kd+mlm``, ``kd``, ``mlm``) is fine-tuned
and evaluated. The aggregate goes to ``metrics/<name>.json`` and ``metrics/<name>.md``: per
model, split and measure the mean, the sample standard deviation and the per-seed values,
with the command, the configs and the git commit that produced them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from _record import ROOT, git, mean_sd, run_jobs, run_logged, stage_records, write_record

VARIANTS = ["kd+mlm", "kd", "mlm"]
MEASURES = ("pnr", "ndcg@10")
ORDER = [
    "bm25",
    "dense",
    "teacher",
    "plain",
    "plain (long)",
    "rekindled",
    "rekindled (kd)",
    "rekindled (mlm)",
    "rekindled + dense",
]
LABELS = {
    "bm25": "BM25",
    "dense": "zero-shot dense (bi-encoder, no training)",
    "teacher": "teacher",
    "plain": "student, plain fine-tune",
    "plain (long)": "student, plain fine-tune, steps of pre-training + fine-tune",
    "rekindled": "rekindled student (KD+MLM)",
    "rekindled (kd)": "rekindled student (KD only)",
    "rekindled (mlm)": "rekindled student (MLM only)",
    "rekindled + dense": "rekindled student fused with the dense expert",
}


def seed_command(args: argparse.Namespace, seed: int) -> list[str] | None:
    """The ``rerank cycle`` command of one seed (``None``: finished, nothing to run)."""
    out = Path(args.runs) / f"seed-{seed}"
    if (out / "report.json").is_file() and not args.rerun_report:
        return None
    cmd = [
        str(ROOT / ".venv" / "bin" / "rerank"),
        "cycle",
        "--config",
        args.config,
        "--set",
        f"cycle.seed={seed}",
        "--set",
        f"cycle.output_dir={out}",
    ]
    if args.ablation:
        cmd += ["--set", "cycle.variants=" + json.dumps(VARIANTS)]
    for item in args.set:
        cmd += ["--set", item]
    return cmd


def run_seeds(args: argparse.Namespace) -> None:
    """Run the seeds' cycles, one after the other or (``--parallel``) all at once."""
    jobs = []
    for seed in args.seeds:
        cmd = seed_command(args, seed)
        if cmd is not None:
            print(" ".join(cmd), file=sys.stderr, flush=True)
            log = Path(args.runs) / f"seed-{seed}" / "cycle.log"
            jobs.append(lambda c=cmd, log=log: run_logged(c, log))
    run_jobs(jobs, len(jobs) if args.parallel else 1)


def aggregate(reports: dict[int, dict]) -> dict:
    table: dict = {}
    for seed, report in reports.items():
        for model, splits in report["results"].items():
            for split, values in splits.items():
                for measure in MEASURES:
                    if measure in values and values[measure] is not None:
                        cell = table.setdefault(model, {}).setdefault(split, {})
                        cell.setdefault(measure, {})[str(seed)] = values[measure]
    for splits in table.values():
        for measures in splits.values():
            for measure, per_seed in list(measures.items()):
                xs = list(per_seed.values())
                mean, sd = mean_sd(xs)
                measures[measure] = {
                    "mean": mean,
                    "std": sd or 0.0,
                    "min": min(xs),
                    "max": max(xs),
                    "seeds": per_seed,
                }
    return table


def paired_gains(reports: dict[int, dict]) -> dict:
    """Per split and measure: the final model minus every other row, per seed (paired).

    The final model is the cycle's ``final`` row (``rekindled``, or ``rekindled + dense``
    with fusion); the rekindled student is also compared with its teacher and the plain
    fine-tunes when it is not the final row.
    """
    out: dict = {}
    for seed, report in reports.items():
        res = report["results"]
        final = report.get("final", "rekindled")
        pairs = [(final, o) for o in res if o != final]
        if final != "rekindled":
            pairs += [("rekindled", o) for o in ("teacher", "plain", "plain (long)") if o in res]
        for row, other in pairs:
            for split in ("eval", "test"):
                for measure in MEASURES:
                    diff = res[row][split][measure] - res[other][split][measure]
                    out.setdefault(f"{row} - {other}", {}).setdefault(split, {}).setdefault(
                        measure, {}
                    )[str(seed)] = diff
    for splits in out.values():
        for measures in splits.values():
            for measure, per_seed in list(measures.items()):
                xs = list(per_seed.values())
                mean, sd = mean_sd(xs)
                measures[measure] = {
                    "mean": mean,
                    "std": sd or 0.0,
                    "wins": sum(x > 0 for x in xs),
                    "seeds": per_seed,
                }
    return out


def query_intervals(reports: dict[int, dict]) -> dict:
    """Each seed's paired-over-queries comparisons of its final model (report.json)."""
    return {str(seed): r["comparisons"] for seed, r in reports.items() if r.get("comparisons")}


def markdown(record: dict) -> str:
    table, n = record["results"], len(record["seeds"])
    models = [m for m in ORDER if m in table] + [m for m in table if m not in ORDER]
    cols = [(s, m) for s in ("eval", "test") for m in MEASURES]
    lines = [
        f"# {record['name']}: knowledge rekindle, {n} seed{'s' if n != 1 else ''}",
        "",
        f"Mean ± sample standard deviation over seeds {', '.join(map(str, record['seeds']))} "
        "(PNR = concordant / discordant pairs). Nothing is chosen on the test split; the "
        "eval split chooses only where the fine-tune recipe evaluates during training "
        "(`train.eval_every` > 0; the shipped cycle recipes evaluate the final model).",
        "",
        "| model | " + " | ".join(f"{s} {m}" for s, m in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for model in models:
        cells = []
        for s, m in cols:
            c = table[model].get(s, {}).get(m)
            cells.append("-" if c is None else f"{c['mean']:.4f} ± {c['std']:.4f}")
        lines.append(f"| {LABELS.get(model, model)} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (same seed), mean ± std, and seeds where it is > 0:", ""]
    lines += ["| difference | " + " | ".join(f"{s} {m}" for s, m in cols) + " |"]
    lines += ["|---|" + "---:|" * len(cols)]
    for name, splits in record["gains"].items():
        cells = [
            f"{splits[s][m]['mean']:+.4f} ± {splits[s][m]['std']:.4f} ({splits[s][m]['wins']}/{n})"
            for s, m in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    intervals = record.get("query_intervals") or {}
    if intervals:
        lines += [
            "",
            "Per seed, the final model minus each row on the test split, paired over queries: "
            "difference [95% bootstrap interval]; 'ahead' only when the interval is above 0:",
            "",
            "| seed | vs | test PNR | test nDCG@10 |",
            "|---|---|---|---|",
        ]
        for seed, by_split in intervals.items():
            for other, by in by_split.get("test", {}).items():
                cells = [
                    f"{by[m]['delta']:+.4f} [{by[m]['ci95'][0]:+.4f}, {by[m]['ci95'][1]:+.4f}]"
                    + (" ahead" if by[m]["wins"] else "")
                    for m in MEASURES
                ]
                lines.append(f"| {seed} | {LABELS.get(other, other)} | " + " | ".join(cells) + " |")
    lines += ["", "Per-seed values:", ""]
    for model in models:
        for s, m in cols:
            c = table[model].get(s, {}).get(m)
            if c:
                seeds = ", ".join(f"{k}: {v:.4f}" for k, v in c["seeds"].items())
                lines.append(f"- {LABELS.get(model, model)}, {s} {m}: {seeds}")
    if record.get("pretraining"):
        lines += [
            "",
            f"Pre-training checkpoints ({record['pretraining_proxy']}), mean over seeds:",
            "",
        ]
        for variant, points in record["pretraining"].items():
            lines.append(f"- {variant}: " + ", ".join(f"step {s}: {v:.4f}" for s, v in points))
    lines += [
        "",
        "## How this was made",
        "",
        "```",
        record["command"],
        "```",
        "",
        f"git commit {record['git_commit']}, {record['date']}; cycle seconds per seed: "
        + ", ".join(f"{k}: {v:.0f}" for k, v in record["seconds"].items()),
        "",
        "Cycle config (with the --set overrides listed in the command):",
        "",
        "```toml",
        record["configs"]["cycle"].rstrip(),
        "```",
        "",
    ]
    for name in ("finetune", "pretrain"):
        lines += [f"{name} config:", "", "```toml", record["configs"][name].rstrip(), "```", ""]
    if record.get("notes"):
        lines += ["Notes:", "", *[f"- {x}" for x in record["notes"]], ""]
    return "\n".join(lines)


def mean_curves(reports: dict[int, dict]) -> dict:
    curves: dict = {}
    for report in reports.values():
        for variant, points in report.get("pretraining", {}).items():
            for step, value in points:
                curves.setdefault(variant, {}).setdefault(int(step), []).append(value)
    return {
        v: [[s, mean_sd(xs)[0]] for s, xs in sorted(by_step.items())]
        for v, by_step in curves.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="metrics/<name>.json and .md")
    parser.add_argument("--config", required=True, help="cycle TOML")
    parser.add_argument("--runs", required=True, help="where the cycles run (outside the repo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ablation", action="store_true", help="fine-tune kd+mlm, kd and mlm")
    parser.add_argument("--set", action="append", default=[], help="cycle --set override")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument("--parallel", action="store_true", help="run the seeds concurrently")
    parser.add_argument("--rerun-report", action="store_true", help="re-run finished cycles")
    parser.add_argument("--note", action="append", default=[], help="a note for the markdown")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    seconds = {}
    if not args.aggregate_only:
        run_seeds(args)
    reports = {}
    for seed in args.seeds:
        path = Path(args.runs) / f"seed-{seed}" / "report.json"
        if path.is_file():
            reports[seed] = json.loads(path.read_text())
            seconds[str(seed)] = sum(r["seconds"] for r in stage_records(path.parent))
    if not reports:
        print("no finished cycle to aggregate", file=sys.stderr)
        return 1
    first = next(iter(reports.values()))
    cfg = first["provenance"]["config"]
    command = "\n".join(
        [
            " ".join(["python", *map(str, sys.argv)]),
            "# each seed runs: rerank cycle --config "
            + args.config
            + " --set cycle.seed=<seed> --set cycle.output_dir=<runs>/seed-<seed>"
            + (' --set \'cycle.variants=["kd+mlm", "kd", "mlm"]\'' if args.ablation else "")
            + "".join(f" --set {s}" for s in args.set),
        ]
    )
    record = {
        "name": args.name,
        "seeds": sorted(reports),
        "results": aggregate(reports),
        "gains": paired_gains(reports),
        "query_intervals": query_intervals(reports),
        "pretraining": mean_curves(reports),
        "pretraining_proxy": first.get("pretraining_proxy", ""),
        "command": command,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "rerank", "data")),
        "date": dt.date.today().isoformat(),
        "seconds": seconds,
        "configs": {
            "cycle": (ROOT / args.config).read_text(),
            "finetune": Path(cfg["finetune"]["config"]).read_text(),
            "pretrain": Path(cfg["pretrain"]["config"]).read_text(),
        },
        "cycle_config_resolved": cfg,
        "notes": [*first.get("notes", []), *args.note],
    }
    write_record(args.name, record, markdown(record), sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
