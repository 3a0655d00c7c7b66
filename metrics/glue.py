"""Run a GLUE rekindle cycle and write its measured results to metrics/<name>.{json,md}.

Usage (from the repository root)::

    .venv/bin/python metrics/glue.py --name glue_small --config data/glue/small_tasks_cycle.toml \\
        --runs /work/runs/glue/small [--set cycle.KEY=VALUE ...] [--aggregate-only]

The cycle (``rerank glue cycle``, a subprocess) is resumable: re-running the command skips
finished stages. The aggregate is read from the stages' ``done.json`` files, so it also
covers a cycle stopped part-way (seeds or tasks not finished are simply absent; the
tables say how many seeds each figure averages). Per task, split and metric: the mean,
the sample standard deviation and the per-seed values of the teacher, the rekindled
student (UEGP) and the multi-teacher student (MoEGP), with the command, the configs, the
git commit and the CPU time of every stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from _record import ROOT, git, mean_sd, stage_records, write_record

MODELS = {
    "teacher": "teacher",
    "teacher (equal steps)": "teacher, equal steps",
    "rekindled": "rekindled (UEGP)",
    "multi-teacher": "multi-teacher (MoEGP)",
}
"""The cycle's report rows (a fine-tune stage's ``row`` tag) -> the record's column names."""


def complete_seeds(runs: Path) -> tuple[list[str], list[str]]:
    """(seeds with every model x task stage done, seeds started but not complete)."""
    counts: dict[str, int] = {}
    for record in stage_records(runs):
        tags = record["tags"]
        if "seed" in tags:
            seed = str(tags["seed"])
            counts[seed] = counts.get(seed, 0) + (tags.get("row") in MODELS)
    most = max(counts.values(), default=0)
    return [s for s, n in counts.items() if n == most], [s for s, n in counts.items() if n < most]


def collect(runs: Path) -> tuple[dict, dict]:
    """(results[task][model][split][metric] = {seed: value}, seconds[stage kind] = total).

    Results come from complete seeds only, so every figure of a table averages the same
    seeds; the seconds count every finished stage. What a stage is comes from its
    ``done.json`` tags (``kind``, ``seed``, ``task``, ``row``).
    """
    complete, _ = complete_seeds(runs)
    results: dict = {}
    seconds: dict[str, float] = {}
    for record in stage_records(runs):
        tags, result = record["tags"], record["result"]
        seconds[tags["kind"]] = seconds.get(tags["kind"], 0.0) + float(record["seconds"])
        if tags.get("row") not in MODELS or str(tags["seed"]) not in complete:
            continue
        for split in ("dev", "test"):
            for metric, value in result.get(split, {}).items():
                if metric == "examples":
                    continue
                cell = results.setdefault(tags["task"], {}).setdefault(MODELS[tags["row"]], {})
                cell.setdefault(split, {}).setdefault(metric, {})[str(tags["seed"])] = value
    return results, seconds


def summary(values: dict[str, float]) -> dict:
    mean, sd = mean_sd(list(values.values()))
    return {"mean": mean, "sd": sd, "n": len(values), "per_seed": values}


def markdown(name: str, results: dict, meta: dict) -> str:
    lines = [
        f"# {name}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Aggregated at commit `{meta['commit']}` (stages that already existed were run at earlier "
        f"commits; their configs are in each stage's config.toml); written {meta['date']}; "
        f"{meta['host']}.  ",
        f"CPU budget: {meta['budget']}  ",
        f"Seeds aggregated (complete): {meta['seeds']}; incomplete (started, not aggregated): {meta['running'] or 'none'}",
        "",
        "Mean ± sample sd over seeds (n seeds). Every fine-tune selects its checkpoint on dev "
        "by the task's first metric; dev figures are of that checkpoint (as GLUE dev results "
        "usually are); MRPC's test split is the labeled MSRP test set.",
        "",
        "| task | split | metric | " + " | ".join(MODELS.values()) + " |",
        "|---|---|---|" + "---|" * len(MODELS),
    ]
    for task, by_model in results.items():
        splits = {s for m in by_model.values() for s in m}
        for split in ("dev", "test"):
            if split not in splits:
                continue
            metrics = next(iter(m[split] for m in by_model.values() if split in m))
            for metric in metrics:
                cells = []
                for model in MODELS.values():
                    values = by_model.get(model, {}).get(split, {}).get(metric)
                    if not values:
                        cells.append("-")
                        continue
                    s = summary(values)
                    sd = f" ± {s['sd']:.4f}" if s["sd"] is not None else ""
                    cells.append(f"{s['mean']:.4f}{sd} ({s['n']})")
                lines.append(f"| {task} | {split} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()
    sets = [*args.set, f"cycle.output_dir={args.runs}"]
    cmd = [str(ROOT / ".venv" / "bin" / "rerank"), "glue", "cycle", "--config", args.config]
    for item in sets:
        cmd += ["--set", item]
    if not args.aggregate_only:
        subprocess.run(cmd, cwd=ROOT, check=True)
    results, seconds = collect(args.runs)
    complete, running = complete_seeds(args.runs)
    total = sum(seconds.values())
    meta = {
        "command": " ".join([".venv/bin/python", "metrics/glue.py", *sys.argv[1:]]),
        "cycle_command": " ".join(["rerank", *cmd[1:]]),
        "commit": git("rev-parse", "--short", "HEAD"),
        "date": dt.date.today().isoformat(),
        "host": f"{os.cpu_count()} CPU cores shared with other jobs, 1 torch thread per run",
        "seeds": complete,
        "running": running,
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "budget": f"{total / 3600:.2f} h wall time over all stages ("
        + ", ".join(f"{k} {v / 60:.0f} min" for k, v in seconds.items())
        + ")",
        "configs": {
            p: (ROOT / p).read_text()
            for p in (args.config, "data/glue/finetune.toml", "data/glue/rekindle.toml")
        },
    }
    payload = {
        "meta": meta,
        "results": {
            task: {
                model: {
                    split: {metric: summary(v) for metric, v in metrics.items()}
                    for split, metrics in splits.items()
                }
                for model, splits in by_model.items()
            }
            for task, by_model in results.items()
        },
    }
    write_record(args.name, payload, markdown(args.name, results, meta))


if __name__ == "__main__":
    main()
