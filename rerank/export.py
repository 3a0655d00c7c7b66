"""``rerank export``: a saved model as ONNX or OpenVINO graphs, fp32 or int8.

The output is a copy of the model directory (``config.json``, tokenizer,
``model.safetensors`` and sidecars kept, so ``rerank``, ``transformers`` and the torch
backend load it as before) plus the graphs in the layout sentence-transformers and
optimum read (:mod:`rerank.backends` lists the files), so that ``CrossEncoder(dir,
backend="onnx")`` / ``backend="openvino"`` load it too.

- ONNX: ``torch.onnx.export`` of the Hugging Face model (inputs ``input_ids,
  attention_mask[, token_type_ids]``, output ``logits``, batch and sequence axes
  dynamic). ``--quantize int8``: ONNX Runtime dynamic quantisation (int8 weights,
  activations quantised per batch at run time; needs no calibration), the pooler and
  head left in fp32 as in :mod:`rerank.precision`.
- OpenVINO: the ONNX graph converted by ``openvino.convert_model`` (fp32 weights).
  ``--quantize int8``: NNCF static post-training quantisation calibrated on the user's
  pairs (``--calibration``, at most :data:`CALIBRATION_PAIRS` of them, one pair a sample,
  unpadded), transformer preset without SmoothQuant, pooler and head ignored (kept in fp32).

Every int8 export is measured against fp32 on the ``--calibration`` pairs: PNR and
nDCG@10 of both when the pairs are labelled, the score correlation otherwise; the
figures are printed and saved in ``rerank_export.json`` beside the graphs. The fp32
graph is also checked against the torch model on the same pairs (max abs difference).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rerank.backends import ONNX_FILE
from rerank.errors import RerankError, input_error
from rerank.export_graphs import (
    CALIBRATION_PAIRS,
    SAMPLE_PAIRS,
    export_onnx,
    export_openvino,
    quantize_onnx,
    require_tools,
)
from rerank.tables.columns import TEXT_COLUMNS

__all__ = ["CALIBRATION_PAIRS", "FORMATS", "REPORT_FILE", "export_model"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "openvino")
REPORT_FILE = "rerank_export.json"
# Pairs the fp32 graph is checked against torch on (the first of --calibration).
PARITY_PAIRS = 64


def export_model(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "onnx",
    quantize: str | None = None,
    calibration: str | os.PathLike[str] | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Export ``model_dir`` to ``out_dir`` (written atomically); return the report.

    Parameters
    ----------
    model_dir
        A saved ranking model (``rerank train`` output or any HF cross-encoder).
    out_dir
        The exported copy; must not be ``model_dir``.
    fmt
        ``onnx`` or ``openvino``.
    quantize
        ``None`` (fp32 only) or ``"int8"`` (the fp32 graph and an int8 one).
    calibration
        Pairs (``query_id, doc_id, query, title, summary[, label]``): NNCF calibrates
        OpenVINO int8 on them (required there), and every int8 graph is compared with
        fp32 on them (PNR and nDCG@10 with labels, else score correlation).
    max_length
        Tokens a pair when calibrating and comparing (default: as trained, else 256).
    batch_size, threads
        For the comparison runs.
    echo
        Called with each report line (the CLI prints them); ``None``: logged.

    Returns
    -------
    dict
        What ``rerank_export.json`` holds: files, format, quantisation, parity with
        torch and, for int8, the quality figures.
    """
    say = echo or log.info
    src, out = _check_request(model_dir, out_dir, fmt, quantize, calibration)
    pairs = _read_calibration(calibration) if calibration is not None else None
    model, encoder = _load_ranking_model(src, max_length)
    texts = pairs if pairs is not None else pl.DataFrame(SAMPLE_PAIRS, TEXT_COLUMNS, orient="row")
    report: dict[str, Any] = {"format": fmt, "quantize": quantize, "source": str(src)}
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        _copy_model(src, tmp, skip=fmt)
        report["files"] = _write_graphs(model, encoder, tmp, fmt, quantize, pairs)
        report["parity"] = _parity(model, encoder, tmp, fmt, texts.head(PARITY_PAIRS), threads)
        say(
            f"{fmt} fp32 graph vs torch fp32 on {report['parity']['pairs']} pairs: "
            f"max abs score difference {report['parity']['max_abs_diff']:.2e}"
        )
        if quantize:
            quality = (
                _quality(tmp, fmt, encoder, pairs, batch_size, threads)
                if pairs is not None
                else None
            )
            report["quality"] = quality
            for line in _quality_lines(fmt, quality):
                say(line)
        report["seconds"] = round(time.perf_counter() - t0, 1)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say(f"exported {', '.join(report['files'])} -> {out}")
    return report


def _check_request(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str,
    quantize: str | None,
    calibration: str | os.PathLike[str] | None,
) -> tuple[Path, Path]:
    """Refuse an export that cannot be done, before any work: the source and output paths."""
    if fmt not in FORMATS:
        raise RerankError(f"format: expected onnx or openvino, got {fmt!r}")
    if quantize not in (None, "int8"):
        raise RerankError(f"quantize: expected int8, got {quantize!r}")
    src, out = Path(model_dir), Path(out_dir)
    if not src.is_dir():
        raise input_error(model_dir, "no such model directory")
    if out.exists() and os.path.realpath(out) == os.path.realpath(src):
        raise input_error(out_dir, "is also the input --model; choose another output directory")
    if out.exists() and not out.is_dir():
        raise input_error(out_dir, "exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_FILE).is_file():
        # the export replaces --out whole: never a directory it did not write
        raise input_error(
            out_dir, "exists and is not an earlier rerank export; choose a new directory"
        )
    require_tools(fmt, quantize)
    if fmt == "openvino" and quantize and calibration is None:
        raise RerankError(
            "--quantize int8 --format openvino: static quantisation needs --calibration FILE "
            "(pairs like the ones you will score)"
        )
    return src, out


def _load_ranking_model(src: Path, max_length: int | None) -> tuple[Any, Any]:
    """The model (on the CPU) and its pair encoder; a ranking (score) primary head only."""
    from rerank.model_dir import default_max_length
    from rerank.score import load_scoring_model

    model = load_scoring_model(src, device=_cpu())
    spec = model.specs[model.primary]
    if spec.kind != "score":
        raise RerankError(
            f"{src}: the primary head '{model.primary}' is a {spec.kind} head; "
            "rerank export writes ranking (score) heads"
        )
    if max_length is None and "max_length" not in model.input_lengths:
        max_length = default_max_length(model.encoder.config)
    encoder = model.pair_encoder(max_length=max_length)
    model.check_max_length(encoder.max_length)
    return model, encoder


def _write_graphs(
    model: Any, encoder: Any, tmp: Path, fmt: str, quantize: str | None, pairs: Any
) -> list[str]:
    """The graphs of ``fmt`` (and int8) under ``tmp``; their paths relative to it."""
    with tempfile.TemporaryDirectory(prefix=".rerank-export.") as scratch:
        onnx_path = (tmp / ONNX_FILE) if fmt == "onnx" else Path(scratch) / "model.onnx"
        export_onnx(model, encoder, onnx_path)
        if fmt == "onnx":
            return [ONNX_FILE, quantize_onnx(onnx_path)] if quantize else [ONNX_FILE]
        return export_openvino(onnx_path, tmp, encoder, pairs if quantize else None)


def _cpu() -> Any:
    import torch

    return torch.device("cpu")


def _read_calibration(path: str | os.PathLike[str]) -> pl.DataFrame:
    from rerank.data import read_pairs

    frame = read_pairs(path, labels="optional")
    if frame.height == 0:
        raise input_error(path, "empty file: no pairs to calibrate or compare on")
    return frame


@contextlib.contextmanager
def atomic_dir(out: Path) -> Any:
    from rerank.atomic import atomic_path

    with atomic_path(out, is_dir=True) as tmp:
        yield Path(tmp)


def _copy_model(src: Path, dst: Path, *, skip: str) -> None:
    """Everything of the model directory except the folder being (re)written."""
    for entry in src.iterdir():
        if entry.name in (skip, REPORT_FILE) or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dst / entry.name)
        else:
            shutil.copy2(entry, dst / entry.name)


def _scores(
    out: Path,
    fmt: str,
    precision: str,
    encoder: Any,
    texts: pl.DataFrame,
    batch_size: int,
    threads: int | None,
) -> np.ndarray:
    from rerank.backends import load_runner
    from rerank.inference import exported_forward, score_texts

    runner = load_runner(out, fmt, precision=precision, threads=threads)
    return score_texts(exported_forward(runner), encoder, texts, batch_size=batch_size)[:, 0]


def _parity(
    model: Any, encoder: Any, out: Path, fmt: str, texts: pl.DataFrame, threads: int | None
) -> dict[str, Any]:
    from rerank.score import score_frame

    ref = score_frame(model, texts, max_length=encoder.max_length, precision="fp32")
    got = _scores(out, fmt, "fp32", encoder, texts, 16, threads)
    return {"pairs": texts.height, "max_abs_diff": float(np.abs(ref - got).max())}


def _quality(
    out: Path, fmt: str, encoder: Any, pairs: pl.DataFrame, batch_size: int, threads: int | None
) -> dict[str, Any]:
    """int8 against fp32 (both the exported graphs) on ``pairs``."""
    fp32 = _scores(out, fmt, "fp32", encoder, pairs, batch_size, threads)
    int8 = _scores(out, fmt, "int8", encoder, pairs, batch_size, threads)
    result: dict[str, Any] = {
        "pairs": pairs.height,
        "queries": int(pairs["query_id"].n_unique()),
        "pearson": float(np.corrcoef(fp32, int8)[0, 1]) if pairs.height > 1 else 1.0,
        "spearman": _spearman(fp32, int8),
        "max_abs_diff": float(np.abs(fp32 - int8).max()),
    }
    if "label" in pairs.columns and pairs["label"].null_count() == 0:
        from rerank.measures import evaluate

        for name, scores in (("fp32", fp32), ("int8", int8)):
            frame = pairs.select("query_id", "doc_id", "label").with_columns(
                score=pl.Series(scores, dtype=pl.Float64)
            )
            values = evaluate(frame, ["pnr", "ndcg@10"]).aggregate
            result[name] = {"pnr": float(values["pnr"]), "ndcg@10": float(values["ndcg@10"])}
    return result


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 1.0
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable")
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable")
    return float(np.corrcoef(ra, rb)[0, 1])


def _quality_lines(fmt: str, q: dict[str, Any] | None) -> list[str]:
    if q is None:
        return [
            f"{fmt} int8: quality against fp32 not measured (give --calibration pairs, "
            "labelled for PNR and nDCG@10)"
        ]
    where = f"{q['pairs']:,} pairs, {q['queries']:,} queries"
    lines = []
    if "fp32" in q:
        for measure in ("pnr", "ndcg@10"):
            a, b = q["fp32"][measure], q["int8"][measure]
            rel = f" ({(b - a) / a:+.2%})" if a else ""
            lines.append(
                f"{fmt} int8 vs fp32 on {where}: {measure} {a:.4f} -> {b:.4f}, "
                f"difference {b - a:+.4f}{rel}"
            )
    else:
        lines.append(f"{fmt} int8 vs fp32 on {where}: no labels, so score agreement only")
    lines.append(
        f"{fmt} int8 vs fp32 scores: Pearson {q['pearson']:.5f}, Spearman {q['spearman']:.5f}, "
        f"max abs difference {q['max_abs_diff']:.3g}"
    )
    return lines
