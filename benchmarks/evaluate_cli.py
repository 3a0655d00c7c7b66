"""``rerank evaluate`` end to end on 11M rows, against polars + NumPy in the same run.

Run: ``.venv/bin/python benchmarks/evaluate_cli.py [--rows N] [--queries N] [--repeat N]``

Writes two Parquet files shaped like benchmarks/pnr.py's ``large`` data: judgments
(``query_id, doc_id, label``) and scores (``query_id, doc_id, score``, the rows of each
query in reverse order, so that the join has work to do). Then times

- the CLI: ``rerank evaluate --data L --scores S --metrics pnr --json`` as a subprocess
  (interpreter start, imports, reading, validation, join, PNR), after one untimed run that
  fills the numba cache;
- the baseline in this process: ``pl.read_parquet`` of both files, an inner join on
  ``(query_id, doc_id)``, query offsets from the run heads, and benchmarks/pnr.py's
  vectorised NumPy PNR (b). The baseline validates nothing.

Both must report the same concordant/discordant/tie counts.
"""

from __future__ import annotations

import argparse
import json
import os
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


def write_files(directory: Path, n_queries: int, n_rows: int) -> tuple[Path, Path]:
    offsets, labels, scores = make_data(n_queries, n_rows)
    n = int(offsets[-1])
    sizes = np.diff(offsets)
    query = np.repeat(np.arange(n_queries), sizes)
    query_ids = pl.Series("query_id", [f"q{q:06d}" for q in range(n_queries)])[query]
    doc_ids = pl.Series("doc_id", np.arange(n)).cast(pl.String).str.pad_start(9, "0")
    labeled = pl.DataFrame({"query_id": query_ids, "doc_id": "d" + doc_ids, "label": labels})
    # reverse the rows within each query: last row of the query first
    within = np.arange(n) - np.repeat(offsets[:-1], sizes)
    order = np.repeat(offsets[:-1], sizes) + (np.repeat(sizes, sizes) - 1 - within)
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
    return labeled_path, scored_path


def run_cli(labeled: Path, scored: Path) -> tuple[float, dict]:
    command = [
        str(ROOT / ".venv" / "bin" / "rerank"),
        "evaluate",
        "--data",
        str(labeled),
        "--scores",
        str(scored),
        "--metrics",
        "pnr",
        "--json",
    ]
    start = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start, json.loads(out.stdout)


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
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores ({cpu_model()})")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        labeled, scored = write_files(Path(tmp), args.queries, args.rows)
        mb = (labeled.stat().st_size + scored.stat().st_size) / 2**20
        first, cli = run_cli(labeled, scored)  # untimed for the comparison: fills the cache
        base = baseline(labeled, scored)
        for key in ("concordant", "discordant", "ties"):
            if cli[key] != base[key]:
                raise SystemExit(f"CLI and baseline disagree on {key}: {cli[key]} != {base[key]}")
        t_cli = min(run_cli(labeled, scored)[0] for _ in range(args.repeat))
        t_base = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            baseline(labeled, scored)
            t_base = min(t_base, time.perf_counter() - start)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| rows | queries | Parquet (MiB) | rerank evaluate (s) | polars + NumPy (b) (s) | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.rows:,} | {args.queries:,} | {mb:.0f} | {t_cli:.2f} | {t_base:.2f} "
        f"| {t_base / t_cli:.2f}x |"
    )
    print(
        f"\nBoth found concordant={cli['concordant']:,} discordant={cli['discordant']:,} "
        f"ties={cli['ties']:,} (pnr {cli['pnr']:.4f}). First CLI run (may compile the "
        f"numba kernel for this dtype): {first:.2f} s. Best of {args.repeat}."
    )


if __name__ == "__main__":
    main()
