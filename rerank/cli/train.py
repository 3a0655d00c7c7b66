"""``rerank train``: fine-tune a cross-encoder (or any configured objective) from a TOML config."""

from __future__ import annotations

import argparse
import logging
import sys

from rerank.cli import add_config_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a re-ranker: the one loop for fine-tuning, distillation and GLUE",
        description=(
            "Train as the TOML config says: model, data (query-grouped pairs), objective "
            "(weighted loss terms, e.g. hinge on labels) and schedule. Relative paths in the "
            "config are relative to the config file. Writes config.toml (resolved), "
            "log.jsonl, checkpoint/, best/ and final/ under train.output_dir. Runs "
            "unchanged under torchrun."
        ),
    )
    add_config_options(
        parser,
        "training",
        set_help="override a config key, e.g. train.lr_max=3e-5 or "
        "objective.0.params.margin=0.5 (repeatable; relative paths are relative to the "
        "current directory)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a train.output_dir that holds an earlier run: its config.toml, "
        "log.jsonl, checkpoint/, best/ and final/ are removed first (other files are kept). "
        "Without --resume or --overwrite, a directory holding files is refused",
    )
    from rerank.config_help import add_help_config

    add_help_config(parser, "rerank.config:Config")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.api import train_config
    from rerank.train import prepare_output_dir, train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = train_config(args.config, args.set, resume=args.resume)
    prepare_output_dir(cfg.train.output_dir, resume=cfg.train.resume, overwrite=args.overwrite)
    result = train(cfg)
    done = "finished" if result.finished else "stopped"
    best = (
        f"; best {cfg.train.metric_for_best} {result.best_metric:.4f} at step "
        f"{result.best_step} in {result.best_dir}"
        if result.best_dir
        else ""
    )
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(
        f"{done} at step {result.steps}/{result.total_steps} in {result.seconds:.0f}s"
        f"{'; eval ' + metrics if metrics else ''}{best}; final model in {result.final_dir}",
        file=sys.stderr,
    )
    return 0
