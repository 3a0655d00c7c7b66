"""The graphs of ``rerank export``: ONNX (torch.onnx), ONNX Runtime dynamic int8, OpenVINO
(converted from the ONNX graph) and NNCF static int8; the pooler and head kept in fp32.

:mod:`rerank.export` copies the model directory, calls these writers and measures what
they wrote.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
from pathlib import Path
from typing import Any

import polars as pl

from rerank.backends import OPENVINO_FILE, OPENVINO_INT8_FILE, require
from rerank.errors import RerankError

__all__ = [
    "CALIBRATION_PAIRS",
    "HEAD_PARTS",
    "OPSET",
    "SAMPLE_PAIRS",
    "export_onnx",
    "export_openvino",
    "quantize_onnx",
    "require_tools",
]

#: Pairs NNCF calibrates on at most (its own default subset size).
CALIBRATION_PAIRS = 300
OPSET = 17
# Graph nodes computing the score from the encoder's features: kept in fp32 by int8
# (the names torch.onnx.export gives BERT/RoBERTa/ELECTRA heads; rerank.precision.HEAD_PARTS).
HEAD_PARTS = ("pooler", "classifier", "score")
# (query, title, summary): traced by the ONNX export; the parity check's pairs by default
SAMPLE_PAIRS = [
    ("what is the lift of a wing", "wing theory", "the lift and drag of a thin wing"),
    ("heat transfer in laminar flow", "", "boundary layer heat transfer at high speed"),
]


def require_tools(fmt: str, quantize: str | None) -> None:
    if fmt == "onnx":
        require("onnx")
        _import("onnx", "onnx")  # the graph writer
    else:
        require("openvino")
        _import("onnx", "openvino")  # the ONNX graph is the converter's input
        if quantize:
            _import("nncf", "openvino")


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nncf greets on import
            return importlib.import_module(module)
    except ImportError:
        raise RerankError(
            f"rerank export: the {module} package is not installed; "
            f"pip install rerank-rekindle[{extra}]"
        ) from None


def export_onnx(model: Any, encoder: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = encoder.collate(
        encoder.encode([q for q, _, _ in SAMPLE_PAIRS], [[t, s] for _, t, s in SAMPLE_PAIRS])
    )
    names = list(sample)
    axes = {k: {0: "batch_size", 1: "sequence_length"} for k in names}
    hf = model.encoder.eval()
    # The TorchScript exporter (dynamo=False): BERT-like encoders trace to a plain graph
    # with dynamic batch and sequence axes, and it needs no onnxscript.
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            hf,
            (),
            str(path),
            kwargs=dict(sample),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch_size"}},
            opset_version=OPSET,
            dynamo=False,
        )


@contextlib.contextmanager
def _quiet() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        yield


@contextlib.contextmanager
def _quiet_logging() -> Any:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _cpu_arch() -> str:
    """The name sentence-transformers gives a dynamic int8 ONNX file (its CPU target)."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def _head_nodes(names: list[str]) -> list[str]:
    return [n for n in names if set(n.split("/")) & set(HEAD_PARTS)]


def quantize_onnx(fp32: Path) -> str:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    arch = _cpu_arch()
    target = fp32.with_name(f"model_qint8_{arch}.onnx")
    nodes = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node]
    with _quiet_logging():  # onnxruntime suggests its pre-processing tool on the root logger
        quantize_dynamic(
            str(fp32),
            str(target),
            weight_type=QuantType.QInt8,
            # one scale per output channel: on the Cranfield eval split (demo teacher) PNR
            # -0.8% against fp32 and score correlation 0.996; one scale per tensor: -2.8%, 0.987
            per_channel=True,
            # without VNNI, u8 x s8 products can saturate a 16-bit intermediate: 7-bit weights
            reduce_range=arch in ("avx2", "avx512"),
            nodes_to_exclude=_head_nodes(nodes),
        )
    return f"onnx/{target.name}"


def export_openvino(
    onnx_path: Path, out: Path, encoder: Any, pairs: pl.DataFrame | None
) -> list[str]:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(out / OPENVINO_FILE), compress_to_fp16=False)
    files = [OPENVINO_FILE]
    if pairs is None:
        return files
    nncf = _import("nncf", "openvino")
    sample = pairs.head(CALIBRATION_PAIRS)
    encoded = encoder.encode(
        sample["query"].to_list(), list(zip(sample["title"], sample["summary"], strict=True))
    )
    items = [
        {
            k: v.numpy()
            for k, v in encoder.collate(encoded.select([i]), pad_to_multiple_of=1).items()
        }
        for i in range(len(encoded))
    ]
    heads = _head_nodes([op.get_friendly_name() for op in model.get_ordered_ops()])
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    # SmoothQuant off (matmul alpha -1): the transformer preset's default alpha moves
    # activation outliers into the weights, which moved PNR furthest from fp32 on the
    # Cranfield eval split (+2.95% vs +0.09% without; benchmarks/README.md)
    no_smooth_quant = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantized = nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(names=heads, validate=False),
            advanced_parameters=no_smooth_quant,
        )
    ov.save_model(quantized, str(out / OPENVINO_INT8_FILE), compress_to_fp16=False)
    return [*files, OPENVINO_INT8_FILE]
