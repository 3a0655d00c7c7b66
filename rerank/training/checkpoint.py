"""Training checkpoints: written atomically, read back without unpickling.

``output_dir/checkpoint/`` holds

- ``model/``: the model as an ordinary HF directory (:meth:`RerankModel.save_pretrained`);
- ``optimizer.pt``: the optimizer state dict (tensors, numbers, lists only);
- ``rng.pt``: torch CPU (and CUDA) RNG states as uint8 tensors;
- ``state.json``: step, data position ``(epoch, position)``, best metric so far, the
  Python and NumPy RNG states, and the resolved config.

Both ``.pt`` files load with ``torch.load(..., weights_only=True)``, PyTorch's
restricted unpickler that builds tensors and plain containers only: nothing in a
checkpoint can run code when read (a pickled RNG state or config could); a damaged file
is a one-line error naming it. The directory
is replaced atomically (:func:`rerank.atomic.atomic_path`), so an interruption leaves the
previous checkpoint, never a partial one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank.atomic import atomic_path, write_error
from rerank.errors import RerankError, first_line

__all__ = [
    "append_log",
    "exists",
    "load_optimizer",
    "load_state",
    "model_dir",
    "restore_rng",
    "save",
    "seed_everything",
    "truncate_log",
]

NAME = "checkpoint"


def _dir(out_dir: Path) -> Path:
    path = out_dir / NAME
    # atomic_path swaps directories with two renames; a kill between them leaves only
    # the previous checkpoint, under its hidden ".old" name.
    old = out_dir / f".{NAME}.old"
    if not (path / "state.json").is_file() and (old / "state.json").is_file():
        return old
    return path


def exists(out_dir: Path) -> bool:
    return (_dir(out_dir) / "state.json").is_file()


def model_dir(out_dir: Path) -> Path:
    return _dir(out_dir) / "model"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save(out_dir: Path, model: Any, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write model, optimizer, RNG states and ``state`` to ``out_dir/checkpoint``."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda{i}"] = s
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    full = {
        **state,
        "rng": {
            "python": [py_version, list(py_state), py_gauss],
            "numpy": [np_kind, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        },
    }
    with atomic_path(out_dir / NAME, is_dir=True) as tmp:
        model.save_pretrained(tmp / "model")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(full), encoding="utf-8")


def load_state(out_dir: Path) -> dict | None:
    """The saved ``state.json`` (``None`` when there is no checkpoint)."""
    path = _dir(out_dir) / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RerankError(f"{path}: damaged checkpoint state ({err.msg})") from None


def _load_pt(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RerankError(f"{path}: missing from the checkpoint") from None
    except Exception as err:  # zip, unpickling and EOF errors: a damaged or foreign file
        detail = first_line(err).split(". ")[0]
        raise RerankError(f"{path}: damaged checkpoint file ({detail})") from None


def load_optimizer(out_dir: Path) -> dict:
    return _load_pt(_dir(out_dir) / "optimizer.pt")


def restore_rng(out_dir: Path, state: dict) -> None:
    """Put the Python, NumPy and torch RNGs back as they were when the checkpoint was saved."""
    rng = _load_pt(_dir(out_dir) / "rng.pt")
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    version, py_state, gauss = state["rng"]["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def append_log(path: Path, record: dict) -> None:
    """Append one JSON line (the log grows during training; each line is complete)."""
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as err:
        raise write_error(path, err) or err from None


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in keep), encoding="utf-8")
