"""``rerank evaluate`` end to end on 11M rows, against polars + NumPy in the same run.

Run: ``.venv/bin/python benchmarks/evaluate_cli.py [--rows N] [--queries N] [--repeat N]
[--scores-order reversed|same]``

Writes two Parquet files shaped like benchmarks/pnr.py's ``large`` data: judgments
(``query_id, doc_id, label``) and scores (``query_id, doc_id, score``; by default the rows
of each query in reverse order, so that the join has work to do; ``--scores-order same``
keeps the judgments' order, as ``rerank score`` writes it). Then times

- the CLI: ``rerank evaluate --data L --scores S --metrics pnr --json`` as a subprocess
  (interpreter start, imports, reading, validation, join, PNR), after one untimed run that
  fills the numba cache;
- the CLI with the default measures (``pnr,pnr_macro,ndcg@10,map,mrr``: nDCG, AP and RR
  from the numba kernels of rerank.measures.common in the same grouped arrays), reported
  as a ratio to PNR alone (target: at most 1.5x);
- the baseline in this process: ``pl.read_parquet`` of both files, an inner join on
  ``(query_id, doc_id)``, query offsets from the run heads, and benchmarks/pnr.py's
  vectorised NumPy PNR (b). The baseline validates nothing.

Both must report the same concordant/discordant/tie counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pnr import cpu_model, make_data, pnr_vectorised  # noqa: E402  (benchmarks/pnr.py)


def write_files(directory: Path, n_queries: int, n_rows: int, order: str) -> tuple[Path, Path, int]:
    offsets, labels, scores = make_data(n_queries, n_rows)
    n = int(offsets[-1])
    sizes = np.diff(offsets)
    query = np.repeat(np.arange(n_queries), sizes)
    query_ids = pl.Series("query_id", [f"q{q:06d}" for q in range(n_queries)])[query]
    doc_ids = pl.Series("doc_id", np.arange(n)).cast(pl.String).str.pad_start(9, "0")
    labeled = pl.DataFrame({"query_id": query_ids, "doc_id": "d" + doc_ids, "label": labels})
    if order == "reversed":  # the rows of each query in reverse order
        within = np.arange(n) - np.repeat(offsets[:-1], sizes)
        order = np.repeat(offsets[:-1], sizes) + (np.repeat(sizes, sizes) - 1 - within)
    else:  # the judgments' order, as `rerank score` writes it
        order = np.arange(n)
    scored = pl.DataFrame(
        {
            "query_id": labeled["query_id"].gather(order),
            "doc_id": labeled["doc_id"].gather(order),
            # float32 values stored as Float64: the baseline's float32 packing is exact
            "score": scores[order].astype(np.float64),
        }
    )
    labeled_path, scored_path = directory / "labeled.parquet", directory / "scores.parquet"
    labeled.write_parquet(labeled_path)
    scored.write_parquet(scored_path)
    return labeled_path, scored_path, n


def run_cli(labeled: Path, scored: Path, metrics: str | None = "pnr") -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds (user + system of the child) and the printed JSON."""
    command = [
        str(ROOT / ".venv" / "bin" / "rerank"),
        "evaluate",
        "--data",
        str(labeled),
        "--scores",
        str(scored),
        "--json",
    ]
    if metrics is not None:
        command += ["--metrics", metrics]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(out.stdout)


def baseline(labeled: Path, scored: Path) -> dict:
    judged = pl.read_parquet(labeled)
    scores = pl.read_parquet(scored)
    frame = judged.join(scores, on=["query_id", "doc_id"], how="inner", maintain_order="left")
    query = frame["query_id"]
    heads = np.flatnonzero(query.ne_missing(query.shift(1)).to_numpy())
    offsets = np.append(heads, frame.height).astype(np.int64)
    conc, disc, ties, (micro, _) = pnr_vectorised(
        offsets, frame["label"].to_numpy(), frame["score"].to_numpy().astype(np.float32)
    )
    return {
        "pnr": micro,
        "concordant": int(conc.sum()),
        "discordant": int(disc.sum()),
        "ties": int(ties.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=11_000_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the minimum counts")
    parser.add_argument(
        "--scores-order",
        choices=("reversed", "same"),
        default="reversed",
        help="rows of the scores file: each query reversed (default) or as in the judgments",
    )
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores ({cpu_model()})")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        labeled, scored, n = write_files(Path(tmp), args.queries, args.rows, args.scores_order)
        mb = (labeled.stat().st_size + scored.stat().st_size) / 2**20
        first, _, cli = run_cli(labeled, scored)  # untimed for the comparison: fills the cache
        base = baseline(labeled, scored)
        for key in ("concordant", "discordant", "ties"):
            if cli[key] != base[key]:
                raise SystemExit(f"CLI and baseline disagree on {key}: {cli[key]} != {base[key]}")
        run_cli(labeled, scored, None)  # untimed: compiles the IR kernels if needed
        runs, default_runs = [], []
        for _ in range(args.repeat):  # interleaved, so that load changes hit both alike
            runs.append(run_cli(labeled, scored))
            default_runs.append(run_cli(labeled, scored, None))
        t_cli, c_cli = min(r[0] for r in runs), min(r[1] for r in runs)
        t_def, c_def = min(r[0] for r in default_runs), min(r[1] for r in default_runs)
        measured = default_runs[0][2]
        t_base = c_base = float("inf")
        for _ in range(args.repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            baseline(labeled, scored)
            t_base = min(t_base, time.perf_counter() - start)
            c_base = min(c_base, time.process_time() - start_cpu)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| rows | queries | scores order | Parquet (MiB) | clock | rerank evaluate (s) "
        "| polars + NumPy (b) (s) | baseline/CLI |"
    )
    print("|---:|---:|---|---:|---|---:|---:|---:|")
    for clock, t, b in (("wall", t_cli, t_base), ("CPU", c_cli, c_base)):
        print(
            f"| {n:,} | {args.queries:,} | {args.scores_order} | {mb:.0f} | {clock} | {t:.2f} "
            f"| {b:.2f} | {b / t:.2f}x |"
        )
    print(
        "\n| rows | clock | --metrics pnr (s) | default measures (s) | default / pnr |\n"
        "|---:|---|---:|---:|---:|"
    )
    for clock, t, d in (("wall", t_cli, t_def), ("CPU", c_cli, c_def)):
        print(f"| {n:,} | {clock} | {t:.2f} | {d:.2f} | {d / t:.2f}x |")
    print(
        "\ndefault measures: "
        + ", ".join(f"{k} {measured[k]:.4f}" for k in ("pnr", "pnr_macro", "ndcg@10", "map", "mrr"))
    )
    print(
        f"\nBoth found concordant={cli['concordant']:,} discordant={cli['discordant']:,} "
        f"ties={cli['ties']:,} (pnr {cli['pnr']:.4f}). First CLI run (may compile the "
        f"numba kernels): {first:.2f} s wall. Minimum of {args.repeat} runs; CLI CPU is user + "
        "system time of the subprocess, baseline CPU the process time of this one."
    )


if __name__ == "__main__":
    main()
