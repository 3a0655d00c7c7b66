"""``benchmarks/score.py --backends``: rerank's inference backends against sentence-transformers'.

Same model, same pairs, same threads, same process; the scorers run interleaved (each once
per repeat, in turn) and the best of ``--repeats`` is reported with pairs per CPU-second.
sentence-transformers' ``onnx``/``openvino`` backends need optimum, whose releases require
an older transformers than requirements.lock's; run the script with ``PYTHONPATH`` set to a
folder holding optimum + a transformers it supports (see benchmarks/README.md), else those
rows are skipped with the reason.

Roofline: FLOPs per pair of a BERT-style encoder at each pair's own token count (the
matrix products: ``layers * (8 L H^2 + 4 L H I + 4 L^2 H)`` plus pooler and head, no
padding counted), times pairs/s, over the fp32 peak of the threads used
(``threads * clock * --flops-per-cycle``); bf16 and int8 paths can exceed what fp32 could.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]


def flops_per_pair(config: object, lengths: list[int]) -> float:
    """Mean matrix-product FLOPs of one pair at its own length (no padding)."""
    hidden = config.hidden_size
    inter = config.intermediate_size
    layers = config.num_hidden_layers
    n = np.asarray(lengths, dtype=np.float64)
    per_layer = 8 * n * hidden**2 + 4 * n * hidden * inter + 4 * n**2 * hidden
    return float(np.mean(layers * per_layer + 2 * hidden**2 + 2 * hidden))


def clock_ghz() -> tuple[float, str]:
    """The core clock: /proc/cpuinfo ``cpu MHz``, else the TSC rate (``bogomips / 2``)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000, "cpu MHz"
    for line in text.splitlines():
        if line.lower().startswith("bogomips"):
            return float(line.split(":")[1]) / 2000, "TSC (bogomips / 2; boost may be higher)"
    return 3.0, "assumed"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("torch", "transformers", "sentence-transformers", "onnxruntime", "openvino",
                 "nncf", "optimum", "optimum-onnx", "optimum-intel"):  # fmt: skip
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} absent")
    return ", ".join(out)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def quality(frame: pl.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """PNR and nDCG@10 of ``scores`` (one per row of the labeled ``frame``)."""
    from rerank.measures import evaluate

    scored = frame.select("query_id", "doc_id", "label").with_columns(
        score=pl.Series(np.asarray(scores, dtype=np.float64))
    )
    return {k: float(v) for k, v in evaluate(scored, ["pnr", "ndcg@10"]).aggregate.items()}


def export_both(model_dir: Path, tmp: Path, max_length: int) -> tuple[dict[str, Path], list[str]]:
    """ONNX fp32 + int8 and OpenVINO fp32 + int8, one directory each; the export's lines.

    One format a directory: optimum-intel (CrossEncoder's openvino backend) fails to load a
    directory that also holds ONNX files.
    """
    from rerank.export import export_model

    cal = tmp / "calibration.parquet"
    pl.read_parquet(ROOT / "data/cranfield/eval.parquet").head(300).write_parquet(cal)
    lines: list[str] = []
    dirs = {fmt: tmp / f"export-{fmt}" for fmt in ("onnx", "openvino")}
    for fmt, out in dirs.items():
        export_model(
            model_dir, out, fmt=fmt, quantize="int8", calibration=cal, max_length=max_length,
            echo=lines.append,
        )  # fmt: skip
    return dirs, lines


def backends(args, model_dir: Path, model_name: str, test: pl.DataFrame, ours, tmp: Path) -> None:
    from rerank.backends import OPENVINO_INT8_FILE, exported_file, load_runner, pair_encoder
    from rerank.inference import exported_forward, score_texts
    from rerank.precision import resolve_precision
    from rerank.score import score_frame

    frame = test.head(args.pairs)
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    dirs, export_lines = export_both(Path(model_dir), tmp, args.max_length)
    export_seconds = time.perf_counter() - t0
    enc = pair_encoder(dirs["onnx"], max_length=args.max_length)
    lengths = enc.encode(
        frame["query"].to_list(), list(zip(frame["title"], frame["summary"], strict=True))
    ).lengths()
    auto = resolve_precision("auto", torch.device("cpu"))
    bs = args.batch_size
    runs = {
        f"rerank torch ({auto})": lambda: score_frame(
            ours, frame, precision=auto, batch_size=bs, max_length=args.max_length
        ),
        "rerank torch (fp32)": lambda: score_frame(
            ours, frame, precision="fp32", batch_size=bs, max_length=args.max_length
        ),
    }
    for backend, precision in (
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "auto"),
        ("openvino", "int8"),
    ):
        runner = load_runner(dirs[backend], backend, precision=precision, threads=threads)
        name = f"rerank {backend} ({runner.precision})"
        if name in runs:
            continue
        forward = exported_forward(runner)
        runs[name] = lambda f=forward: score_texts(f, enc, frame, batch_size=bs)[:, 0]

    skipped: dict[str, str] = {}
    pairs = [
        (q, enc.join_parts([t, s]))
        for q, t, s in frame.select("query", "title", "summary").iter_rows()
    ]
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as err:
        CrossEncoder = None
        skipped["sentence-transformers"] = str(err)
    st_names = []
    if CrossEncoder is not None:
        onnx_int8 = exported_file(dirs["onnx"], "onnx", int8=True).relative_to(dirs["onnx"])
        for label, backend, kwargs in (
            ("torch fp32", "torch", {}),
            ("onnx fp32", "onnx", {"file_name": "onnx/model.onnx"}),
            ("onnx int8", "onnx", {"file_name": onnx_int8.as_posix()}),
            ("openvino (its default precision)", "openvino", {"file_name": "openvino/openvino_model.xml"}),
            ("openvino int8", "openvino", {"file_name": OPENVINO_INT8_FILE}),
        ):  # fmt: skip
            name = f"CrossEncoder {label}"
            try:
                ce = CrossEncoder(
                    str(dirs.get(backend, dirs["onnx"])), device="cpu", max_length=args.max_length, backend=backend,
                    model_kwargs=kwargs or None,
                )  # fmt: skip
            except Exception as err:  # optimum missing or built for another transformers
                skipped[name] = (str(err).splitlines() or [type(err).__name__])[0][:160]
                continue
            st_names.append(name)
            runs[name] = lambda ce=ce: ce.predict(pairs, batch_size=bs, show_progress_bar=False)

    # warm-up on 8 pairs (kernel selection, allocator growth, graph compiles); the scorers
    # read `frame` and `pairs` from this scope when called
    full, all_pairs = frame, pairs
    frame, pairs = full.head(8), all_pairs[:8]
    for fn in runs.values():
        fn()
    frame, pairs = full, all_pairs
    before = load()
    best = dict.fromkeys(runs, 0.0)
    best_cpu = dict.fromkeys(runs, 0.0)
    scores: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            rate = len(frame) / (time.perf_counter() - t0)
            cpu_rate = len(frame) / max(time.process_time() - c0, 1e-9)
            best[name] = max(best[name], rate)
            best_cpu[name] = max(best_cpu[name], cpu_rate)
            scores[name] = np.asarray(out, dtype=np.float32)
            print(f"repeat {r + 1}: {name}: {rate:.1f} pairs/s (load {load()})", file=sys.stderr)
    after = load()

    # quality on the whole split (not timed): a 1% PNR target is noise on a few queries
    frame = test
    whole = {
        n: np.asarray(fn(), dtype=np.float32) for n, fn in runs.items() if n.startswith("rerank")
    }
    frame = full

    ghz, clock_source = clock_ghz()
    peak = threads * ghz * 1e9 * args.flops_per_cycle
    flops = flops_per_pair(ours.encoder.config, lengths)
    ref_pnr = quality(frame, scores["rerank torch (fp32)"])["pnr"]
    fastest_st = max((best[n] for n in st_names), default=0.0)
    fastest_name = max(st_names, key=lambda n: best[n]) if st_names else None

    print("## Inference backends: `rerank` against sentence-transformers `CrossEncoder`\n")
    print(f"- machine: {cpu_name()}, {os.cpu_count()} cores; {threads} threads for every scorer")
    print(f"- versions: {versions()}")
    print(f"- model: {model_name}")
    print(
        f"- data: first {len(frame)} pairs of {Path(args.data).name}, mean {np.mean(lengths):.0f} "
        f"tokens a pair (max length {args.max_length}), batch size {bs}"
    )
    print(
        f"- best of {args.repeats} interleaved repeats after one warm-up each; load average "
        f"(1/5/15 min) {before} before, {after} after"
    )
    print(
        f"- roofline: {flops / 1e9:.2f} GFLOP a pair (matrix products at each pair's length); "
        f"fp32 peak {peak / 1e9:.0f} GFLOP/s = {threads} threads x {ghz:.2f} GHz ({clock_source}) "
        f"x {args.flops_per_cycle:g} FLOPs/cycle"
    )
    print(f"- export (both formats, int8 calibrated on 300 eval pairs): {export_seconds:.0f}s")
    for line in export_lines:
        print(f"  - {line}")
    for name, why in skipped.items():
        print(f"- skipped {name}: {why}")
    print(
        f"- PNR (timed pairs): of the scores of the timed run; PNR / nDCG@10 (whole split): "
        f"every rerank scorer once more on all {test.height} pairs, {test['query_id'].n_unique()} "
        "queries (a CrossEncoder loading the same graph scores as the rerank row of that graph)"
    )
    print()
    vs = f"vs {fastest_name}" if fastest_name else "vs fastest CrossEncoder"
    ref = quality(test, whole["rerank torch (fp32)"])
    print(
        f"| scorer | pairs/s | {vs} | pairs per CPU-s | GFLOP/s | of fp32 peak | PNR (timed pairs) "
        "| vs rerank fp32 | PNR (whole split) | vs rerank fp32 | nDCG@10 (whole split) | vs fp32 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rate in best.items():
        p = quality(frame, scores[name])["pnr"]
        ratio = f"{rate / fastest_st:.2f}x" if fastest_st else "-"
        row = (
            f"| {name} | {rate:.1f} | {ratio} | {best_cpu[name]:.1f} | {rate * flops / 1e9:.1f} | "
            f"{rate * flops / peak:.1%} | {p:.4f} | {(p - ref_pnr) / ref_pnr:+.2%} |"
        )
        if name in whole:
            q = quality(test, whole[name])
            row += (
                f" {q['pnr']:.4f} | {(q['pnr'] - ref['pnr']) / ref['pnr']:+.2%} | "
                f"{q['ndcg@10']:.4f} | {q['ndcg@10'] - ref['ndcg@10']:+.4f} |"
            )
        else:
            row += " - | - | - | - |"
        print(row)


def cpu_name() -> str:
    import subprocess

    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
                break
        else:
            name = "?"
    except OSError:
        name = "?"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    native = [f for f in ("avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    return name + (f" ({', '.join(native)})" if native else "")
