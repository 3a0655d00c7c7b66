"""Configuration of the knowledge-rekindle cycle (``rerank cycle --config FILE.toml``).

A cycle TOML has four sections: ``[cycle]`` (splits, seed, output, what to report),
``[finetune]`` (the one fine-tune recipe: teacher, plain student and rekindled student),
``[pairs]`` (the rekindle pairs: a file, or BM25 retrieval of queries against a corpus) and
``[pretrain]`` (the rekindle TOML and the student's initial encoder). Relative paths resolve
against the TOML file's directory, as in every ``rerank`` config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerank.config import apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.rekindle.pretrain import VARIANTS

__all__ = [
    "EXPERTS",
    "CycleConfig",
    "CycleSection",
    "FinetuneSection",
    "PairsSection",
    "PretrainSection",
    "load_cycle",
]


EXPERTS = ("teacher", "dense")
"""Experts a cycle's student can learn from (``pretrain.teachers``)."""


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class CycleSection:
    name: str = field(default="cycle", metadata=_help("title of the report"))
    output_dir: str = field(default="runs/cycle", metadata=_help("all stages go here", path=True))
    seed: int = field(default=42, metadata=_help("train.seed of every training stage"))
    eval: str = field(default="", metadata=_help("labeled eval split (selection)", path=True))
    test: str = field(default="", metadata=_help("labeled test split (reported only)", path=True))
    bm25_eval: str = field(default="", metadata=_help("BM25 run on the eval split", path=True))
    bm25_test: str = field(default="", metadata=_help("BM25 run on the test split", path=True))
    measures: list[str] = field(
        default_factory=lambda: ["pnr", "ndcg@10"], metadata=_help("measures in report.json")
    )
    variants: list[str] = field(
        default_factory=lambda: ["kd+mlm"],
        metadata=_help("pre-training variants fine-tuned and reported; the first is 'rekindled'"),
    )
    figure_variants: list[str] = field(
        default_factory=lambda: ["kd+mlm", "kd"], metadata=_help("variants of the Figure-3 plot")
    )
    figure_proxy: Literal["zero-shot", "finetune"] = field(
        default="zero-shot", metadata=_help("downstream measure of pre-training snapshots")
    )
    figure_finetune_steps: int = field(
        default=30, metadata=_help("fine-tune steps per snapshot with figure_proxy = finetune")
    )
    figure_eval_queries: int = field(
        default=0, metadata=_help("eval queries for the Figure-3 measure; 0: all")
    )
    eval_queries: int = field(
        default=0, metadata=_help("use a fixed subset of this many eval queries; 0: all")
    )
    test_queries: int = field(
        default=0, metadata=_help("use a fixed subset of this many test queries; 0: all")
    )
    long_baseline: bool = field(
        default=False,
        metadata=_help(
            "also fine-tune the student's initial encoder for as many steps as pre-training "
            "plus fine-tuning together (a compute-matched control)"
        ),
    )
    checkpoint_every: int = field(
        default=20, metadata=_help("train.save_every of stages whose recipe has none")
    )
    dense: str = field(
        default="default",
        metadata=_help(
            "the zero-shot dense expert: a sentence-embedding model scored as a bi-encoder "
            "(cosine of query and document), reported next to BM25 and available as a "
            "teacher (pretrain.teachers); 'default': all-MiniLM-L6-v2; empty: none",
            path=True,
        ),
    )
    fusion: bool = field(
        default=False,
        metadata=_help(
            "also report the rekindled student fused with the dense expert: per-query "
            "z-scores mixed with the weight that is best on the eval split"
        ),
    )
    rounds: int = field(
        default=1,
        metadata=_help(
            "rekindle rounds: from round 2 on, the last round's rekindled student is the "
            "'teacher' expert of the next (needs 'teacher' in pretrain.teachers)"
        ),
    )
    num_threads: int = field(default=0, metadata=_help("torch CPU threads; 0: automatic"))
    score_batch_size: int = field(default=64, metadata=_help("pairs per scoring batch"))


@dataclass
class FinetuneSection:
    config: str = field(
        default="", metadata=_help("the fine-tune recipe (a 'rerank train' TOML)", path=True)
    )
    set: list[str] = field(
        default_factory=list, metadata=_help("--set overrides of the recipe (every fine-tune)")
    )
    teacher_model: str = field(
        default="", metadata=_help("teacher init; empty: the recipe's model.path", path=True)
    )
    teacher: str = field(
        default="", metadata=_help("an already trained teacher: skip its fine-tune", path=True)
    )


@dataclass
class PairsSection:
    data: str = field(default="", metadata=_help("unlabeled rekindle pairs", path=True))
    queries: str = field(default="", metadata=_help("or build by BM25: queries", path=True))
    corpus: str = field(default="", metadata=_help("... against these documents", path=True))
    k: int = field(default=8, metadata=_help("... top-k documents per query"))
    exclude_judged: str = field(default="", metadata=_help("... never these pairs", path=True))
    max_queries: int = field(default=0, metadata=_help("keep the first N queries; 0: all"))


@dataclass
class PretrainSection:
    config: str = field(default="", metadata=_help("the rekindle TOML", path=True))
    set: list[str] = field(default_factory=list, metadata=_help("--set overrides of it"))
    student: str = field(
        default="default", metadata=_help("student init (a general pretrained encoder)", path=True)
    )
    num_layers: int = field(default=0, metadata=_help("grow the student by stacking; 0: keep"))
    teachers: list[str] = field(
        default_factory=lambda: ["teacher"],
        metadata=_help(
            "the experts the student learns from: 'teacher' (the fine-tuned cross-encoder) "
            "and/or 'dense' (cycle.dense, zero-shot); two are MoEGP, one student head each"
        ),
    )


@dataclass
class CycleConfig:
    cycle: CycleSection = field(default_factory=CycleSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    pretrain: PretrainSection = field(default_factory=PretrainSection)


def load_cycle(path: str | Path, overrides: list[str] | None = None) -> CycleConfig:
    """Read a cycle TOML and apply ``--set`` overrides."""
    cfg = from_toml(path, CycleConfig)
    apply_overrides(cfg, list(overrides or []))
    _check(cfg)
    _check_rekindle_template(cfg)
    return cfg


def _check_rekindle_template(cfg: CycleConfig) -> None:
    """The rekindle TOML names one template teacher; the cycle fills in the experts.

    Checked when the cycle is loaded, not when pre-training starts after the teacher's
    fine-tune has already run.
    """
    from rerank.rekindle.pretrain import RekindleConfig

    base = from_toml(cfg.pretrain.config, RekindleConfig)
    apply_overrides(base, list(cfg.pretrain.set))
    if len(base.rekindle.teachers) != 1:
        raise RerankError(
            f"{cfg.pretrain.config}: the cycle fills in its experts itself (pretrain.teachers); "
            f"'rekindle.teachers' must name one template teacher, got "
            f"{len(base.rekindle.teachers)}"
        )


def _check(cfg: CycleConfig) -> None:
    c = cfg.cycle
    for key in ("eval", "test"):
        if not getattr(c, key):
            raise RerankError(f"cycle config: key 'cycle.{key}' is required (a labeled split)")
    if not cfg.finetune.config:
        raise RerankError("cycle config: key 'finetune.config' is required (the recipe)")
    if not cfg.pretrain.config:
        raise RerankError("cycle config: key 'pretrain.config' is required (the rekindle TOML)")
    if bool(cfg.pairs.data) == bool(cfg.pairs.queries and cfg.pairs.corpus):
        raise RerankError(
            "cycle config: set either 'pairs.data' or both 'pairs.queries' and 'pairs.corpus'"
        )
    for v in [*c.variants, *c.figure_variants]:
        if v not in VARIANTS:
            raise RerankError(f"cycle config: unknown variant '{v}' (valid: {', '.join(VARIANTS)})")
    experts = cfg.pretrain.teachers
    if not experts or len(set(experts)) != len(experts) or set(experts) - set(EXPERTS):
        raise RerankError(
            "cycle config: key 'pretrain.teachers': expected distinct names among "
            f"{', '.join(EXPERTS)}, got {experts}"
        )
    if ("dense" in experts or c.fusion) and not c.dense:
        raise RerankError(
            "cycle config: 'dense' in pretrain.teachers and cycle.fusion need key 'cycle.dense' "
            "(a sentence-embedding model, e.g. 'default')"
        )
    if c.rounds < 1 or (c.rounds > 1 and "teacher" not in experts):
        raise RerankError(
            "cycle config: key 'cycle.rounds': expected 1, or more with 'teacher' in "
            f"pretrain.teachers (the expert each round hands on), got {c.rounds}"
        )
    if not c.variants:
        raise RerankError("cycle config: key 'cycle.variants' must name at least one variant")
