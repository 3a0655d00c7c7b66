"""Inference backends: PyTorch, ONNX Runtime and OpenVINO, chosen per model directory.

``rerank export`` (:mod:`rerank.export`) writes the exported graphs into an ordinary
Hugging Face model directory, in the layout sentence-transformers and optimum read:

- ``onnx/model.onnx`` (fp32) and ``onnx/model_qint8_<arch>.onnx`` (dynamic int8);
- ``openvino/openvino_model.xml`` (+ ``.bin``; fp32 weights) and
  ``openvino/openvino_model_qint8_quantized.xml`` (static int8, calibrated by NNCF).

Each graph takes ``input_ids, attention_mask[, token_type_ids]`` (int64, ``[batch,
sequence]``) and returns ``logits`` ``[batch, 1]``: the primary head's raw score, the
number the torch path computes. Extra heads (sidecar files) are not exported.

Which backend ``auto`` picks (:func:`resolve_backend`): on a CUDA device, torch. On a
CPU, the first of OpenVINO, ONNX Runtime, torch whose files the directory holds and
whose runtime is installed (a missing runtime is logged, then the next is tried).
OpenVINO first because it was the fastest CPU path measured in issue 15 (and it runs
bf16 natively where the CPU has it); ONNX Runtime next. Precision, the one policy of
:mod:`rerank.precision`:

- ``fp32``: every backend in fp32 (ONNX Runtime; OpenVINO with an f32 inference hint).
- ``bf16``: torch or OpenVINO with bf16 activations; ONNX Runtime has no bf16 CPU path.
- ``int8``: the int8 graph of ONNX Runtime or OpenVINO (made by ``rerank export
  --quantize int8``); the pooler and head stay in fp32 in both.
- ``auto``: bf16 where the CPU computes it natively (torch, OpenVINO), else fp32; never int8
  (int8 changes scores more than bf16 does: ask for it).

The runtimes are optional extras: ``pip install rerank-rekindle[onnx]`` /
``rerank-rekindle[openvino]``; asking for a backend whose runtime is missing is one
:class:`~rerank.errors.RerankError` line saying so.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank.errors import RerankError, first_line

__all__ = [
    "BACKENDS",
    "ONNX_FILE",
    "OPENVINO_FILE",
    "OPENVINO_INT8_FILE",
    "ExportedRunner",
    "exported_file",
    "load_runner",
    "require",
    "resolve_backend",
]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
ONNX_FILE = "onnx/model.onnx"
ONNX_INT8_GLOB = "onnx/model_qint8_*.onnx"
OPENVINO_FILE = "openvino/openvino_model.xml"
OPENVINO_INT8_FILE = "openvino/openvino_model_qint8_quantized.xml"
# backend -> (module to import, extra to install)
_RUNTIMES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}


def require(backend: str) -> Any:
    """Import the runtime of ``backend`` or raise one line naming the extra to install."""
    module, extra = _RUNTIMES[backend]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RerankError(
            f"backend {backend}: the {module} package is not installed; "
            f"pip install rerank-rekindle[{extra}]"
        ) from None


def _installed(backend: str) -> bool:
    try:
        return importlib.util.find_spec(_RUNTIMES[backend][0]) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules (tests)
        return False


def exported_file(model_dir: str | os.PathLike[str], backend: str, *, int8: bool) -> Path | None:
    """The graph file of ``backend`` in ``model_dir`` (fp32 or int8), or ``None``."""
    root = Path(model_dir)
    if backend == "onnx":
        if int8:
            found = sorted(root.glob(ONNX_INT8_GLOB))
            return found[0] if found else None
        path = root / ONNX_FILE
    elif backend == "openvino":
        path = root / (OPENVINO_INT8_FILE if int8 else OPENVINO_FILE)
    else:
        return None
    return path if path.is_file() else None


def resolve_backend(
    model_dir: str | os.PathLike[str],
    backend: str = "auto",
    *,
    precision: str = "auto",
    device: str | None = None,
) -> str:
    """The backend that scores ``model_dir``: ``torch``, ``onnx`` or ``openvino``.

    ``auto`` follows the order in the module docstring; an explicit backend is checked
    (runtime installed, exported file present, precision supported) with a one-line
    :class:`~rerank.errors.RerankError` when it cannot run.

    Examples
    --------
    >>> resolve_backend("no-such-dir", "torch")
    'torch'
    """
    if backend not in ("auto", *BACKENDS):
        raise RerankError(f"backend: expected auto, {', '.join(BACKENDS)}; got {backend!r}")
    if precision not in PRECISIONS:
        raise RerankError(f"precision: expected {', '.join(PRECISIONS)}; got {precision!r}")
    int8 = precision == "int8"
    if backend == "auto":
        on_gpu = device not in (None, "auto", "cpu") or (device is None and _cuda())
        if on_gpu and not int8:
            return "torch"
        for candidate in ("openvino", "onnx"):
            if candidate == "onnx" and precision == "bf16":
                continue
            if exported_file(model_dir, candidate, int8=int8) is None:
                continue
            if _installed(candidate):
                return candidate
            log.warning(
                "%s holds a %s export but %s is not installed (pip install "
                "rerank-rekindle[%s]); trying the next backend",
                model_dir,
                candidate,
                *_RUNTIMES[candidate],
            )
        if int8:
            raise RerankError(
                f"precision int8: {model_dir} holds no int8 export that an installed runtime "
                "runs; make one with `rerank export --quantize int8`"
            )
        return "torch"
    if backend == "torch":
        if int8:
            raise RerankError(
                "precision int8: the torch backend has no int8 path; export with "
                "`rerank export --quantize int8` and score with --backend onnx or openvino"
            )
        return "torch"
    if backend == "onnx" and precision == "bf16":
        raise RerankError("precision bf16: the onnx backend computes fp32 or int8 on CPU")
    if device not in (None, "auto", "cpu"):
        raise RerankError(f"device {device}: the {backend} backend runs on the CPU here")
    require(backend)
    if exported_file(model_dir, backend, int8=int8) is None:
        kind = "an int8" if int8 else "an"
        wanted = ONNX_INT8_GLOB if (int8 and backend == "onnx") else None
        wanted = wanted or (
            OPENVINO_INT8_FILE
            if int8 and backend == "openvino"
            else ONNX_FILE
            if backend == "onnx"
            else OPENVINO_FILE
        )
        raise RerankError(
            f"{model_dir}: no {wanted}; make {kind} {backend} export with `rerank export "
            f"--model {model_dir} --format {backend}"
            + (" --quantize int8" if int8 else "")
            + " --out DIR`"
        )
    return backend


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def default_threads() -> int:
    """Threads a backend uses unless told: torch's default (the physical cores)."""
    import torch

    return torch.get_num_threads()


@dataclass
class ExportedRunner:
    """An exported graph ready to score: ``runner(batch) -> float32 scores [batch]``.

    ``batch`` maps ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
    graph takes it) to int64 arrays ``[batch, sequence]``.
    """

    backend: str
    file: Path
    precision: str
    threads: int
    _run: Any

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(batch)


def load_runner(
    model_dir: str | os.PathLike[str],
    backend: str,
    *,
    precision: str = "auto",
    threads: int | None = None,
) -> ExportedRunner:
    """Load the ``backend`` graph of ``model_dir`` for ``precision`` on the CPU.

    ``precision`` ``auto`` resolves as :func:`rerank.precision.resolve_precision` does
    (bf16 on OpenVINO where the CPU computes it natively, else fp32); ``int8`` loads the
    int8 graph.
    """
    if threads is not None and threads < 1:
        raise RerankError(f"threads: expected a positive integer, got {threads}")
    threads = threads or default_threads()
    int8 = precision == "int8"
    path = exported_file(model_dir, backend, int8=int8)
    if path is None:  # resolve_backend names the command; reached only when it was skipped
        raise RerankError(f"{model_dir}: no {backend} export (rerank export --format {backend})")
    if backend == "onnx":
        return _onnx_runner(path, precision, threads)
    return _openvino_runner(path, precision, threads)


def _onnx_runner(path: Path, precision: str, threads: int) -> ExportedRunner:
    ort = require("onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings about unused initializers
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise RerankError(f"{path}: cannot load the ONNX graph: {first_line(err)}") from None
    names = [i.name for i in session.get_inputs()]

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        (logits,) = session.run(["logits"], {k: batch[k] for k in names})
        return np.asarray(logits, dtype=np.float32)[:, 0]

    return ExportedRunner("onnx", path, "int8" if precision == "int8" else "fp32", threads, run)


def _openvino_runner(path: Path, precision: str, threads: int) -> ExportedRunner:
    ov = require("openvino")
    from rerank.precision import cpu_has_native_bf16

    compute = (
        "bf16"
        if precision == "bf16" or (precision in ("auto", "int8") and cpu_has_native_bf16())
        else "fp32"
    )
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "bf16" if compute == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
    }
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except Exception as err:  # openvino raises RuntimeError subclasses of its own
        raise RerankError(f"{path}: cannot load the OpenVINO model: {first_line(err)}") from None
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    output = compiled.output("logits")

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        result = request.infer({k: batch[k] for k in names})
        return np.array(result[output], dtype=np.float32)[:, 0]

    label = "int8" if precision == "int8" else compute
    return ExportedRunner("openvino", path, label, threads, run)


# -- the exported directory's inputs ------------------------------------------------------


def pair_encoder(
    model_dir: str | os.PathLike[str],
    *,
    max_length: int | None = None,
    max_first_length: int | None = None,
    clip: bool = False,
) -> Any:
    """The :class:`~rerank.encoding.PairEncoder` of a model directory, without its weights.

    The same lengths and truncation policy as :meth:`rerank.model.RerankModel.pair_encoder`
    (``config.json`` ``rerank`` section, else 256 / 64), and the same position check;
    ``clip``: an untrained default length beyond the positions becomes the positions (as
    :meth:`rerank.Reranker.from_pretrained` does).
    """
    from rerank.encoding import PairEncoder
    from rerank.model_dir import (
        DEFAULT_MAX_LENGTH,
        DEFAULT_MAX_QUERY_LENGTH,
        default_max_length,
        position_limit,
        quiet_transformers,
        saved_truncation,
    )

    path = Path(model_dir)
    config = _config(path)
    saved = config.get("rerank") or {}
    fields = types.SimpleNamespace(**config)
    if clip and max_length is None and "max_length" not in saved:
        max_length = default_max_length(fields)
    max_length = max_length or int(saved.get("max_length", DEFAULT_MAX_LENGTH))
    max_first_length = max_first_length or int(
        saved.get("max_query_length", DEFAULT_MAX_QUERY_LENGTH)
    )
    limit = position_limit(fields)
    if limit and max_length > limit:
        raise RerankError(f"max_length {max_length} exceeds the model's {limit} positions")
    try:
        from transformers import AutoTokenizer

        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # tokenizers raise many kinds
        raise RerankError(f"{path}: cannot load the tokenizer: {first_line(err)}") from None
    return PairEncoder(
        tokenizer,
        max_length=max_length,
        max_first_length=max_first_length,
        truncation=saved_truncation(saved, path),
    )


def _config(path: Path) -> dict[str, Any]:
    file = path / "config.json"
    if not file.is_file():
        raise RerankError(f"{path}: no config.json: expected a Hugging Face model directory")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RerankError(f"{file}: cannot read: {first_line(err)}") from None


def check_primary_score(model_dir: str | os.PathLike[str], heads: Any) -> None:
    """Exported graphs hold the primary score head only: refuse other heads."""
    saved = _config(Path(model_dir)).get("rerank") or {}
    primary = saved.get("primary", "score")
    spec = (saved.get("heads") or {}).get(primary, {})
    if spec.get("kind", "score") != "score":
        raise RerankError(
            f"{model_dir}: the primary head '{primary}' is a {spec.get('kind')} head; "
            "exported graphs score with a ranking (score) head"
        )
    if heads and list(heads) != [primary]:
        raise RerankError(
            f"heads {', '.join(heads)}: an exported graph holds the primary head "
            f"'{primary}' only; score other heads with the torch backend"
        )
