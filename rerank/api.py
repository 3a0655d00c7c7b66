"""The functions behind ``rerank train`` and ``rerank cycle``, for Python callers.

``rerank.train(config, overrides=...)`` and ``rerank.cycle(config, overrides=...)`` take
what the command line takes: a TOML file (relative paths in it resolve against its
directory) and ``section.key=value`` overrides (``--set``), or a config object or a
nested dict. The CLI commands call these same functions.
"""

from __future__ import annotations

import copy
import json
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rerank.errors import RerankError

__all__ = ["CallableTrainModule", "cycle", "load_config", "train", "train_config"]

C = TypeVar("C")
Overrides = Sequence[str] | Mapping[str, Any] | None


def _override_lines(overrides: Overrides) -> list[str]:
    """``["k=v", ...]`` from a list of such strings or a ``{key: value}`` dict."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise RerankError(
            "overrides: expected a list of 'section.key=value' strings or a dict, got one string"
        )
    if isinstance(overrides, Mapping):
        lines = []
        for key, value in overrides.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (str, os.PathLike)):
                text = str(value)
            else:
                text = json.dumps(value)  # numbers and lists: TOML syntax too
            lines.append(f"{key}={text}")
        return lines
    lines = list(overrides)
    for item in lines:
        if not isinstance(item, str):
            raise RerankError(f"overrides: expected 'section.key=value' strings, got {item!r}")
    return lines


def load_config(config: Any, overrides: Overrides = None, *, cls: type[C]) -> C:
    """A ``cls`` config from a TOML path, a ``cls`` instance (copied) or a nested dict.

    Examples
    --------
    >>> from rerank.config import Config
    >>> cfg = load_config({"data": {"train": "train.parquet"}}, {"train.lr_max": 1e-4},
    ...                   cls=Config)
    >>> cfg.train.lr_max
    0.0001
    """
    from rerank.config import apply_overrides, from_dict, from_toml

    if isinstance(config, (str, os.PathLike)):
        cfg = from_toml(config, cls)
    elif isinstance(config, cls):
        cfg = copy.deepcopy(config)
    elif isinstance(config, Mapping):
        cfg = from_dict(dict(config), cls, source="config", base=Path.cwd())
    else:
        raise RerankError(
            f"config: expected a TOML path, a {cls.__name__} or a dict, got {type(config).__name__}"
        )
    return apply_overrides(cfg, _override_lines(overrides))


def train(
    config: Any, overrides: Overrides = None, *, resume: bool = False, overwrite: bool = False
) -> Any:
    """Train as ``config`` says (``rerank train``) and return what happened.

    Parameters
    ----------
    config
        A training TOML path, a :class:`rerank.config.Config` or a nested dict with the
        same sections (``model``, ``data``, ``objective``, ``train``).
    overrides
        ``["train.lr_max=3e-5", ...]`` (as ``--set``) or ``{"train.lr_max": 3e-5}``.
    resume
        Continue from ``train.output_dir/checkpoint`` (``--resume``).
    overwrite
        Start over in a ``train.output_dir`` holding an earlier run (``--overwrite``);
        without it or ``resume``, a directory that holds files is refused.

    Returns
    -------
    rerank.train.TrainResult
        ``final_dir`` (load it with :meth:`rerank.Reranker.from_pretrained`),
        ``best_dir``, ``metrics``, ``steps``...

    Examples
    --------
    >>> import rerank
    >>> result = rerank.train("data/cranfield/teacher.toml",
    ...                       {"train.steps": 10, "train.output_dir": "runs/try"})  # doctest: +SKIP
    >>> ranker = rerank.Reranker.from_pretrained(result.final_dir)  # doctest: +SKIP
    """
    from rerank.train import prepare_output_dir
    from rerank.train import train as _train

    cfg = train_config(config, overrides, resume=resume)
    prepare_output_dir(cfg.train.output_dir, resume=cfg.train.resume, overwrite=overwrite)
    return _train(cfg)


def train_config(config: Any, overrides: Overrides = None, *, resume: bool = False) -> Any:
    """The validated :class:`rerank.config.Config` that :func:`train` runs."""
    from rerank.config import Config, validate

    cfg = load_config(config, overrides, cls=Config)
    if resume:
        cfg.train.resume = True
    source = Path(config).name if isinstance(config, (str, os.PathLike)) else "config"
    return validate(cfg, source=source)


def cycle(config: Any, overrides: Overrides = None) -> dict[str, Any]:
    """Run (or continue) the knowledge-rekindle cycle (``rerank cycle``).

    Parameters
    ----------
    config
        A cycle TOML path, a :class:`rerank.rekindle.cycle_config.CycleConfig` or a dict.
    overrides
        ``["cycle.seed=1", ...]`` or ``{"cycle.seed": 1}``.

    Returns
    -------
    dict
        The report (also written to ``report.json`` under ``cycle.output_dir``).

    Examples
    --------
    >>> import rerank
    >>> report = rerank.cycle("data/cranfield/cycle.toml", ["cycle.output_dir=runs/c"])  # doctest: +SKIP
    """
    from rerank.rekindle.cycle import run_cycle
    from rerank.rekindle.cycle_config import CycleConfig, check_cycle

    cfg = load_config(config, overrides, cls=CycleConfig)
    check_cycle(cfg)
    return run_cycle(cfg)


class CallableTrainModule(types.ModuleType):
    """The class of the module :mod:`rerank.train`: calling it runs :func:`train`.

    ``rerank.train`` is both the training-loop module (``rerank.train.train``,
    ``rerank.train.TrainResult``) and, called, the public ``rerank.train(config,
    overrides)``: Python sets the package attribute to the submodule on import, so the
    public function is the module's ``__call__``.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``rerank.train(config, overrides=None, *, resume=False, overwrite=False)``:
        :func:`rerank.api.train`."""
        return train(*args, **kwargs)
