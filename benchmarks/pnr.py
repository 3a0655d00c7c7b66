"""PNR speed: the numba evaluator against two NumPy baselines, in the same run.

Run: ``.venv/bin/python benchmarks/pnr.py [--sizes small,large] [--repeat N]``

Synthetic query-grouped data shaped like the paper's industrial sets: ``small`` is 320k
rows in 3k queries, ``large`` 11M rows in 100k queries. Group sizes are long-tailed up to
1000: 2% of the queries have 500-1000 documents and hold about 40% of the label pairs;
labels 0-4 (skewed to 0); float32 scores that follow the label plus noise, rounded to
1/128 so that ties occur.

Timed (minimum over ``--repeat`` runs, each computing per-query counts and micro/macro PNR):

- ours: :func:`rerank.measures.pnr` with its numba cache warm;
- (a) a Python loop over queries, each an n x n NumPy broadcast comparison;
- (b) fully vectorised NumPy: one sort of packed (query, score, label) uint64 keys, then a
  cumulative count per label, with no Python loop over queries.

Each is reported in wall-clock time and in CPU time of this process (all threads), the
minimum over the runs; on a shared machine the CPU time is the steadier figure.

Both baselines are checked against ours (every per-query count) before they are timed. The
first call in a fresh process (import + call, numba cache present) and the cold compile
(empty cache directory) are measured in subprocesses.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rerank.measures.pnr import pnr  # noqa: E402

SIZES = {"small": (3_000, 320_000), "large": (100_000, 11_000_000)}


# --------------------------------------------------------------------------------------
# data


def make_data(n_queries: int, n_rows: int, seed: int = 0):
    """Long-tailed query groups, labels 0-4, float32 scores with ties."""
    rng = np.random.default_rng(seed)
    n_big = round(n_queries * 0.02)
    big = rng.integers(500, 1001, n_big)
    small = np.clip(np.round(rng.lognormal(np.log(70), 0.75, n_queries - n_big)), 1, 499)
    small = np.clip(np.round(small * (n_rows - big.sum()) / small.sum()), 1, 499)
    sizes = np.concatenate([big, small]).astype(np.int64)
    rng.shuffle(sizes)
    offsets = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    n = int(offsets[-1])
    labels = rng.choice(5, size=n, p=[0.35, 0.3, 0.2, 0.1, 0.05]).astype(np.int64)
    scores = labels * 0.6 + rng.standard_normal(n)
    scores = (np.round(scores * 128) / 128).astype(np.float32)
    return offsets, labels, scores


def big_query_pair_share(offsets: np.ndarray) -> float:
    sizes = np.diff(offsets).astype(np.float64)
    pairs = sizes * (sizes - 1) / 2
    return float(pairs[sizes >= 500].sum() / pairs.sum())


# --------------------------------------------------------------------------------------
# baselines


def summarise(conc: np.ndarray, disc: np.ndarray) -> tuple[float, float]:
    """Micro and macro PNR from per-query counts (same conventions as ours)."""
    micro = conc.sum() / disc.sum() if disc.sum() else float("nan")
    has = disc > 0
    macro = float((conc[has] / disc[has]).mean()) if has.any() else float("nan")
    return float(micro), macro


def pnr_loop_broadcast(offsets, labels, scores, queries=None):
    """(a) Python loop over queries, n x n comparisons per query."""
    queries = range(len(offsets) - 1) if queries is None else queries
    conc, disc, ties = [], [], []
    for q in queries:
        y = labels[offsets[q] : offsets[q + 1]]
        s = scores[offsets[q] : offsets[q + 1]]
        higher = y[:, None] > y[None, :]
        c = int(np.count_nonzero(higher & (s[:, None] > s[None, :])))
        d = int(np.count_nonzero(higher & (s[:, None] < s[None, :])))
        conc.append(c)
        disc.append(d)
        ties.append(int(np.count_nonzero(higher)) - c - d)
    conc, disc, ties = np.array(conc), np.array(disc), np.array(ties)
    return conc, disc, ties, summarise(conc, disc)


def pnr_vectorised(offsets, labels, scores):
    """(b) One sort of packed uint64 keys (24-bit query, 32-bit score, 8-bit label).

    For float32 scores, labels 0..255 and fewer than 2**24 queries; every query non-empty.
    """
    sizes = np.diff(offsets)
    n_queries, n = len(sizes), int(offsets[-1])
    # Order-preserving uint32 of the score (-0.0 made 0.0 first): flip all bits of
    # negatives, set the sign bit of positives.
    bits = (scores + np.float32(0.0)).view(np.uint32)
    bits = bits ^ ((bits >> np.uint32(31)) * np.uint32(0x7FFFFFFF) | np.uint32(0x80000000))
    query = np.repeat(np.arange(n_queries, dtype=np.uint64), sizes)
    key = (query << np.uint64(40)) | (bits.astype(np.uint64) << np.uint64(8))
    key |= labels.astype(np.uint64)
    key.sort()
    y = (key & np.uint64(0xFF)).astype(np.int64)
    group = key >> np.uint64(8)  # (query, score): equal within a run of tied scores
    tie_starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    tie_start = np.repeat(tie_starts, np.diff(np.append(tie_starts, n)))
    query_start = np.repeat(offsets[:-1], sizes)
    # concordant at j: docs of the same query with a lower label and a strictly lower score
    conc_doc = np.zeros(n, dtype=np.int64)
    n_labels = int(y.max()) + 1
    for label in range(1, n_labels):
        cum = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(y < label, out=cum[1:])
        at = np.flatnonzero(y == label)
        conc_doc[at] = cum[tie_start[at]] - cum[query_start[at]]
    conc = np.add.reduceat(conc_doc, offsets[:-1])
    # ties at j: docs with the same score and a lower label; within a run of equal scores the
    # labels ascend, so they are the docs between the run's start and j's (score, label) run
    full_starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    full_start = np.repeat(full_starts, np.diff(np.append(full_starts, n)))
    ties = np.add.reduceat(full_start - tie_start, offsets[:-1])
    # all label pairs per query: (n^2 - sum_l n_l^2) / 2
    per_label = np.bincount(query.astype(np.int64) * n_labels + y, minlength=n_queries * n_labels)
    same = (per_label.reshape(n_queries, n_labels).astype(np.int64) ** 2).sum(axis=1)
    pairs = (sizes.astype(np.int64) ** 2 - same) // 2
    disc = pairs - conc - ties
    return conc, disc, ties, summarise(conc, disc)


def pnr_ours(offsets, labels, scores):
    r = pnr(offsets, labels, scores)
    return r.query_concordant, r.query_discordant, r.query_ties, (r.pnr, r.pnr_macro)


# --------------------------------------------------------------------------------------
# timing


def best_of(repeat: int, fn, *args) -> tuple[float, float]:
    """Minimum wall-clock and minimum CPU seconds (all threads of this process) per call.

    CPU time is the work done whatever else runs on the machine; on a shared machine the
    wall clock also counts the time spent waiting for a core.
    """
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(*args)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


FIRST_CALL = """
import time
start, start_cpu = time.perf_counter(), time.process_time()
import numpy as np
from rerank.measures.pnr import pnr
imported, imported_cpu = time.perf_counter(), time.process_time()
d = np.load({path!r})
offsets, labels, scores = d["offsets"], d["labels"], d["scores"]
call, call_cpu = time.perf_counter(), time.process_time()
pnr(offsets, labels, scores)
done, done_cpu = time.perf_counter(), time.process_time()
print(imported - start, done - call, imported_cpu - start_cpu, done_cpu - call_cpu)
"""


def fresh_process(path: Path, cache_dir: str | None) -> tuple[float, float, float, float]:
    """(import, first call) seconds in a new interpreter: wall clock, then CPU."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL.format(path=str(path))],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    ).stdout.split()
    return tuple(float(x) for x in out)


FLOOR_MODULE = """
from numba import njit, prange


@njit(cache=True, parallel=True)
def total(x):
    s = 0.0
    for i in prange(len(x)):
        s += x[i]
    return s
"""

FLOOR_CALL = """
import time
start, start_cpu = time.perf_counter(), time.process_time()
import numpy as np
import floor_module
imported, imported_cpu = time.perf_counter(), time.process_time()
floor_module.total(np.ones(10))
done, done_cpu = time.perf_counter(), time.process_time()
print(imported - start, done - imported, imported_cpu - start_cpu, done_cpu - imported_cpu)
"""


def numba_floor(directory: Path) -> list[tuple[float, ...]]:
    """Fresh-process cost of a trivial cached parallel numba function (numba's own start-up)."""
    (directory / "floor_module.py").write_text(FLOOR_MODULE)
    env = {**os.environ, "PYTHONPATH": str(directory)}
    runs = []
    for _ in range(6):  # the first run compiles and fills the cache
        out = subprocess.run(
            [sys.executable, "-c", FLOOR_CALL], check=True, capture_output=True, text=True, env=env
        ).stdout.split()
        runs.append(tuple(float(x) for x in out))
    return runs[1:]


def check_agree(name, theirs, ours, queries=None) -> None:
    for what, a, b in zip(("concordant", "discordant", "ties"), theirs[:3], ours[:3], strict=True):
        b = b if queries is None else b[queries]
        if not np.array_equal(a, b):
            raise SystemExit(f"{name} disagrees with ours on {what}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,large", help="comma-separated: small,large")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the minimum counts")
    parser.add_argument(
        "--sample", type=float, default=0.05, help="fraction of queries (a) runs on for large"
    )
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]

    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), {platform.python_version()}, ")
    print(f"numba {numba.__version__} threads={numba.get_num_threads()}, numpy {np.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    rows = []
    notes = []
    for size in sizes:
        n_queries, n_rows = SIZES[size]
        offsets, labels, scores = make_data(n_queries, n_rows)
        n = int(offsets[-1])
        share = big_query_pair_share(offsets)
        ours = pnr_ours(offsets, labels, scores)  # also compiles or loads the cache
        vec = pnr_vectorised(offsets, labels, scores)
        check_agree("(b)", vec, ours)
        if size == "large":
            rng = np.random.default_rng(1)
            k = max(1, round(n_queries * args.sample))
            sample = np.sort(rng.choice(n_queries, k, replace=False))
        else:
            sample = np.arange(n_queries)
        loop = pnr_loop_broadcast(offsets, labels, scores, sample)
        check_agree("(a)", loop, ours, sample)
        if len(sample) == n_queries and not np.allclose(loop[3], ours[3], equal_nan=True):
            raise SystemExit("(a) disagrees with ours on micro/macro PNR")
        if not np.allclose(vec[3], ours[3], equal_nan=True):
            raise SystemExit("(b) disagrees with ours on micro/macro PNR")

        t_ours = best_of(args.repeat, pnr_ours, offsets, labels, scores)
        t_vec = best_of(max(1, args.repeat // 2), pnr_vectorised, offsets, labels, scores)
        t_loop = best_of(1, pnr_loop_broadcast, offsets, labels, scores, sample)
        t_loop = tuple(t * n_queries / len(sample) for t in t_loop)
        if len(sample) < n_queries:
            notes.append(
                f"(a) on {size}: timed on a random {len(sample)} of {n_queries} queries "
                f"({int(np.diff(offsets)[sample].sum())} rows), scaled by "
                f"{n_queries / len(sample):.0f}x"
            )
        rows.append((size, n, n_queries, share, t_ours, t_loop, t_vec))
        print(f"{size}: checked (a) and (b) against ours; timed", flush=True)

    first = None
    if rows:
        size = "small" if "small" in sizes else sizes[0]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.npz"
            offsets, labels, scores = make_data(*SIZES[size])
            np.savez(path, offsets=offsets, labels=labels, scores=scores)
            runs = [fresh_process(path, None) for _ in range(5)]
            warm = min(runs, key=lambda r: r[0] + r[1])
            warm_cpu = min(runs, key=lambda r: r[2] + r[3])
            cold = fresh_process(path, str(Path(tmp) / "empty_cache"))
            floor_runs = numba_floor(Path(tmp))
        floor = (
            min(floor_runs, key=lambda r: r[0] + r[1]),
            min(floor_runs, key=lambda r: r[2] + r[3]),
        )
        first = (size, warm, warm_cpu, cold, floor)

    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| data | rows | queries | pairs in 500+ queries | clock | ours (ms) | (a) loop (ms) "
        "| (b) vectorised (ms) | (a)/ours | (b)/ours |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for size, n, nq, share, t_ours, t_loop, t_vec in rows:
        for k, clock in enumerate(("wall", "CPU")):
            print(
                f"| {size} | {n:,} | {nq:,} | {share:.0%} | {clock} | {t_ours[k] * 1e3:.1f} "
                f"| {t_loop[k] * 1e3:,.0f} | {t_vec[k] * 1e3:,.0f} "
                f"| {t_loop[k] / t_ours[k]:,.0f}x | {t_vec[k] / t_ours[k]:.1f}x |"
            )
    if first:
        size, warm, warm_cpu, cold, (floor, floor_cpu) = first
        print(
            f"\nFresh process, {size} data, numba cache present (best of 5): import "
            f"{warm[0] * 1e3:.0f} ms + first call {warm[1] * 1e3:.0f} ms = "
            f"{(warm[0] + warm[1]) * 1e3:.0f} ms wall; CPU {warm_cpu[2] * 1e3:.0f} + "
            f"{warm_cpu[3] * 1e3:.0f} = {(warm_cpu[2] + warm_cpu[3]) * 1e3:.0f} ms. "
            f"Cold (empty cache): first call {cold[1]:.1f} s wall, {cold[3]:.1f} s CPU (compile)."
        )
        print(
            f"numba's own floor (numpy + numba import + first call of a trivial cached parallel "
            f"function, best of 5): {(floor[0] + floor[1]) * 1e3:.0f} ms wall; CPU "
            f"{floor_cpu[2] * 1e3:.0f} + {floor_cpu[3] * 1e3:.0f} = "
            f"{(floor_cpu[2] + floor_cpu[3]) * 1e3:.0f} ms."
        )
    for note in notes:
        print(f"\n{note}.")


if __name__ == "__main__":
    main()
