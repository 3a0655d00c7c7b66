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
from typing import Literal

from rerank import pipeline
from rerank.config import apply_overrides, doc, from_toml
from rerank.errors import RerankError
from rerank.rekindle.pretrain import VARIANTS

__all__ = [
    "EXPERTS",
    "CycleConfig",
    "CycleSection",
    "FinetuneSection",
    "PairsSection",
    "PretrainSection",
    "check_cycle",
    "load_cycle",
]


EXPERTS = ("teacher", "dense")
"""Experts a cycle's student can learn from (``pretrain.teachers``)."""


@dataclass
class CycleSection(pipeline.CycleSection):
    seed: int = field(default=42, metadata=doc("train.seed of every training stage"))
    eval: str = field(default="", metadata=doc("labeled eval split (selection)", path=True))
    test: str = field(default="", metadata=doc("labeled test split (reported only)", path=True))
    bm25_eval: str = field(default="", metadata=doc("BM25 run on the eval split", path=True))
    bm25_test: str = field(default="", metadata=doc("BM25 run on the test split", path=True))
    measures: list[str] = field(
        default_factory=lambda: ["pnr", "ndcg@10"], metadata=doc("measures in report.json")
    )
    variants: list[str] = field(
        default_factory=lambda: ["kd+mlm"],
        metadata=doc("pre-training variants fine-tuned and reported; the first is 'rekindled'"),
    )
    figure_variants: list[str] = field(
        default_factory=lambda: ["kd+mlm", "kd"], metadata=doc("variants of the Figure-3 plot")
    )
    figure_proxy: Literal["zero-shot", "finetune"] = field(
        default="zero-shot", metadata=doc("downstream measure of pre-training snapshots")
    )
    figure_finetune_steps: int = field(
        default=30, metadata=doc("fine-tune steps per snapshot with figure_proxy = finetune")
    )
    figure_eval_queries: int = field(
        default=0, metadata=doc("eval queries for the Figure-3 measure; 0: all")
    )
    eval_queries: int = field(
        default=0, metadata=doc("use a fixed subset of this many eval queries; 0: all")
    )
    test_queries: int = field(
        default=0, metadata=doc("use a fixed subset of this many test queries; 0: all")
    )
    long_baseline: bool = field(
        default=False,
        metadata=doc(
            "also fine-tune the student's initial encoder for as many steps as pre-training "
            "plus fine-tuning together (a compute-matched control)"
        ),
    )
    dense: str = field(
        default="default",
        metadata=doc(
            "the zero-shot dense expert: a sentence-embedding model scored as a bi-encoder "
            "(cosine of query and document), reported next to BM25 and available as a "
            "teacher (pretrain.teachers); 'default': all-MiniLM-L6-v2; empty: none",
            path=True,
        ),
    )
    fusion: bool = field(
        default=False,
        metadata=doc(
            "also report the rekindled student fused with the dense expert: per-query "
            "z-scores mixed with the weight that is best on the eval split"
        ),
    )
    rounds: int = field(
        default=1,
        metadata=doc(
            "rekindle rounds: from round 2 on, the last round's rekindled student is the "
            "'teacher' expert of the next (needs 'teacher' in pretrain.teachers)"
        ),
    )
    score_batch_size: int = field(default=64, metadata=doc("pairs per scoring batch"))


@dataclass
class FinetuneSection(pipeline.RecipeSection):
    teacher_model: str = field(
        default="", metadata=doc("teacher init; empty: the recipe's model.path", path=True)
    )
    teacher: str = field(
        default="", metadata=doc("an already trained teacher: skip its fine-tune", path=True)
    )


@dataclass
class PairsSection(pipeline.PairsSection):
    queries: str = field(default="", metadata=doc("with corpus: BM25 of these queries", path=True))
    k: int = field(default=8, metadata=doc("... top-k documents per query"))
    exclude_judged: str = field(default="", metadata=doc("... never these pairs", path=True))
    max_queries: int = field(default=0, metadata=doc("keep the first N queries; 0: all"))
    with_train: bool = field(
        default=False,
        metadata=doc(
            "also the fine-tune recipe's training candidates, labels unused (their query "
            "ids prefixed 'train:'): the experts' scores of real queries"
        ),
    )


@dataclass
class PretrainSection(pipeline.PretrainSection):
    teachers: list[str] = field(
        default_factory=lambda: ["teacher"],
        metadata=doc(
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
    check_cycle(cfg)
    return cfg


def check_cycle(cfg: CycleConfig) -> None:
    """Refuse a cycle config that could not run, before any stage does (one line)."""
    _check(cfg)
    _check_rekindle_template(cfg)


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
