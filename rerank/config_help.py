"""What every configuration key means: ``--help-config`` and ``docs/config.md``.

:func:`config_reference` walks a configuration dataclass (:class:`rerank.config.Config`,
:class:`rerank.rekindle.pretrain.RekindleConfig`,
:class:`rerank.rekindle.cycle_config.CycleConfig`) and lists each key with its type,
default and help text, the ``metadata={"help": ...}`` of its field. :data:`HF_NAMES`
maps Hugging Face ``TrainingArguments`` names to rerank's keys, for the did-you-mean hint
of an unknown key.

Regenerate the docs page with ``python -m rerank.config_help > docs/config.md``
(``tests/test_config_help.py`` checks it is current).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

__all__ = ["HF_NAMES", "add_help_config", "config_reference", "hf_hint", "markdown_reference"]

#: Hugging Face ``TrainingArguments`` (and sentence-transformers) names -> rerank keys.
HF_NAMES: dict[str, str] = {
    "learning_rate": "train.lr_max",
    "lr": "train.lr_max",
    "max_steps": "train.steps",
    "num_train_epochs": "train.epochs",
    "warmup_steps": "train.warmup_steps",
    "save_steps": "train.save_every",
    "eval_steps": "train.eval_every",
    "logging_steps": "train.log_every",
    "gradient_accumulation_steps": "train.grad_accum",
    "max_grad_norm": "train.clip_norm",
    "weight_decay": "train.weight_decay",
    "seed": "train.seed",
    "output_dir": "train.output_dir",
    "resume_from_checkpoint": "train.resume",
    "bf16": "train.bf16",
    "metric_for_best_model": "train.metric_for_best",
    "per_device_train_batch_size": "data.groups_per_batch",
    "train_batch_size": "data.groups_per_batch",
    "batch_size": "data.groups_per_batch",
    "per_device_eval_batch_size": "data.eval_batch_size",
    "model_name_or_path": "model.path",
    "max_seq_length": "model.max_length",
    "max_length": "model.max_length",
}

_BATCH_NOTE = "; a batch here is data.groups_per_batch queries x data.list_size documents each"


def hf_hint(name: str, valid: list[str], where: str) -> str | None:
    """The did-you-mean text for an unknown key that is a Hugging Face name, else ``None``.

    ``name`` is the dotted key as given, ``valid`` the keys (dotted) of its section and
    ``where`` the section (``""``: top level, where ``valid`` are section names).

    Examples
    --------
    >>> hf_hint("train.learning_rate", ["train.lr_max", "train.steps"], "train")
    "did you mean 'train.lr_max'? 'learning_rate' is the Hugging Face name"
    >>> hf_hint("cycle.learning_rate", ["cycle.seed"], "cycle") is None
    True
    """
    last = name.rsplit(".", 1)[-1]
    target = HF_NAMES.get(last)
    if target is None or target == name:
        return None
    section = target.split(".", 1)[0]
    # a training config section (model, data, train) holds the target's section too
    sibling = where.split(".", 1)[0] in ("model", "data", "train")
    if target not in valid and not (where == "" and section in valid) and not sibling:
        return None
    note = _BATCH_NOTE if target == "data.groups_per_batch" else ""
    return f"did you mean '{target}'? '{last}' is the Hugging Face name{note}"


def _type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if origin in (list, tuple):
        return f"list[{', '.join(_type(a) for a in args if a is not Ellipsis)}]"
    if origin is dict:
        return f"table of {_type(args[1])}"
    if dataclasses.is_dataclass(tp):
        return tp.__name__
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _rows(cls: type, prefix: str) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, help)`` of every key of ``cls`` under ``prefix``."""
    from rerank._config_io import _toml_value

    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key, tp, text = f"{prefix}{f.name}", hints[f.name], f.metadata.get("help", "")
        if dataclasses.is_dataclass(tp):
            rows += _rows(tp, f"{key}.")
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        item = args[0] if origin is list and args else args[1] if origin is dict else None
        if item is not None and dataclasses.is_dataclass(item):
            shown = "N" if origin is list else "NAME"
            default = _default(f)
            summary = f"{len(default)} entr{'y' if len(default) == 1 else 'ies'}"
            rows.append((key, _type(tp), summary, text or f"{item.__name__} entries"))
            rows += _rows(item, f"{key}.{shown}.")
            continue
        try:
            default = _toml_value(_default(f))
        except TypeError:
            default = repr(_default(f))
        rows.append((key, _type(tp), default, text))
    return rows


def config_reference(cls: type) -> str:
    """Every key of ``cls`` as ``key: type = default`` and its help, one key a paragraph.

    Examples
    --------
    >>> from rerank.config import Config
    >>> print(config_reference(Config).splitlines()[0])
    model.path: str = "default"
    """
    lines = []
    for key, tp, default, text in _rows(cls, ""):
        lines.append(f"{key}: {tp} = {default}")
        if text:
            lines.append(f"    {text}")
    return "\n".join(lines) + "\n"


def markdown_reference() -> str:
    """``docs/config.md``: the keys of the training, rekindle and cycle configurations."""
    from rerank.config import Config
    from rerank.glue.cycle import GlueCycleConfig
    from rerank.rekindle.cycle_config import CycleConfig
    from rerank.rekindle.pretrain import RekindleConfig

    out = [
        "# Configuration reference",
        "",
        "Generated by `python -m rerank.config_help > docs/config.md` from the dataclasses in",
        "`rerank/config.py`, `rerank/pipeline.py`, `rerank/rekindle/pretrain.py`,",
        "`rerank/rekindle/cycle_config.py` and `rerank/glue/cycle.py` (`tests/test_config_help.py`",
        "checks that it is current). The same text is printed by `rerank train --help-config`,",
        "`rerank rekindle --help-config`, `rerank cycle --help-config` and",
        "`rerank glue cycle --help-config`. A key is set in a TOML file (`[section]` then",
        "`key = value`) or on the command line (`--set section.key=value`).",
        "",
    ]
    sections = [
        ("`rerank train`", Config, ""),
        ("`rerank rekindle`: the training keys above, plus", RekindleConfig, "rekindle."),
        ("`rerank cycle`", CycleConfig, ""),
        ("`rerank glue cycle`", GlueCycleConfig, ""),
    ]
    for title, cls, only in sections:
        out += [f"## {title}", ""]
        for key, tp, default, text in _rows(cls, ""):
            if only and not key.startswith(only):
                continue
            out.append(f"- `{key}` ({tp}, default `{default}`){': ' + text if text else ''}")
        out.append("")
    return "\n".join(out)


def add_help_config(parser: Any, config: str) -> None:
    """Add ``--help-config`` to an argparse ``parser``: print every key of ``config``
    (``"module:Class"``) and exit, like ``--help`` (no other argument is needed)."""
    import argparse

    class _HelpConfig(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            import importlib

            module, _, name = config.partition(":")
            print(config_reference(getattr(importlib.import_module(module), name)), end="")
            parser.exit()

    parser.add_argument(
        "--help-config",
        action=_HelpConfig,
        nargs=0,
        help="print every config key with its type, default and meaning, and exit",
    )


if __name__ == "__main__":
    print(markdown_reference(), end="")
