"""``rerank rekindle``: expert-guided pre-training of a student on teacher scores."""

from __future__ import annotations

import argparse
import logging
import sys

from rerank.cli import add_config_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rekindle",
        help="expert-guided pre-training: distil teachers' scores (+ MLM) into a student",
        description=(
            "Score the unlabeled pairs of [rekindle] data with every teacher (once; the "
            "teacher-score store is reused while the data and the teachers' weights are "
            "unchanged), then train the student on the objective: pointwise/pairwise MSE to "
            "the 'teacher:<name>' columns plus MLM. Same loop as 'rerank train' (resume, "
            "torchrun, logs); the resolved config is written next to the outputs."
        ),
    )
    add_config_options(
        parser,
        "rekindle",
        set_help="override a config key, e.g. train.steps=100 or objective.2.weight=0.5 "
        "(repeatable)",
    )
    from rerank.config_help import add_help_config

    add_help_config(parser, "rerank.rekindle.pretrain:RekindleConfig")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.config import apply_overrides, from_toml
    from rerank.rekindle.pretrain import RekindleConfig, pretrain

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = from_toml(args.config, RekindleConfig)
    apply_overrides(cfg, args.set)
    if args.resume:
        cfg.train.resume = True
    result = pretrain(cfg)
    done = "finished" if result.train.finished else "stopped"
    print(
        f"{done} at step {result.train.steps}/{result.train.total_steps} in "
        f"{result.train.seconds:.0f}s; store {result.store} "
        f"(scored: {', '.join(result.scored) or 'none, reused'}); "
        f"student in {result.train.final_dir}; {len(result.snapshots)} snapshot(s)",
        file=sys.stderr,
    )
    return 0
