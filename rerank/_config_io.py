"""TOML <-> typed dataclasses: the machinery behind :mod:`rerank.config`.

Works on any dataclass tree (nested dataclasses, ``list``/``dict`` of dataclasses,
tuples, unions, ``Literal``), so later stages extend the configuration by adding
sections, not parsers. Errors are :class:`rerank.errors.RerankError` naming the file,
the dotted key, what was expected and, for unknown keys, the valid ones (with a
did-you-mean suggestion).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from rerank.atomic import atomic_path
from rerank.errors import RerankError

__all__ = ["apply_overrides", "from_dict", "read_toml", "to_toml", "write_config"]

C = TypeVar("C")


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
    return {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
    }.get(tp, str(tp))


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
        # TOML has inf and nan; no setting means them (lr_max = inf trains to NaN)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
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
    from rerank.config_help import hf_hint  # learning_rate -> train.lr_max, ...

    hf = hf_hint(name, full, where)
    hint = f" ({hf})" if hf else hint
    kind = "key" if where else "section"
    return RerankError(f"{source}: unknown {kind} '{name}'{hint}; valid: {', '.join(full)}")


def from_dict(
    data: dict[str, Any], cls: type[C], *, source: str = "config", base: Path | None = None
) -> C:
    """Build ``cls`` from nested dicts; unknown keys and wrong types are :class:`RerankError`."""
    return _build(cls, data, "", _Ctx(source, base))


def read_toml(path: str | Path, cls: type[C]) -> C:
    """Read a TOML file into ``cls``; relative paths resolve against the file's directory."""
    path = Path(path)
    if path.is_dir():
        raise RerankError(f"{path}: is a directory; expected a TOML config file")
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
