"""``rerank cycle``: teacher -> rekindle data -> teacher scores -> pre-training -> fine-tune -> report."""

from __future__ import annotations

import argparse
import logging
import sys

from rerank.cli import add_config_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cycle",
        help="the full knowledge-rekindle cycle with a report (resumable)",
        description=(
            "Fine-tune the teacher, build or take the rekindle pairs, score them with the "
            "teacher, run expert-guided pre-training of the student (KD+MLM, plus KD only "
            "for the checkpoint plot), fine-tune the rekindled student and a plain student "
            "with the teacher's recipe, and evaluate everything on the eval and test splits. "
            "Writes report.md, report.json, results.png and pretraining.png under "
            "cycle.output_dir. Every finished stage is skipped on a re-run, so a killed "
            "cycle continues where it stopped."
        ),
    )
    add_config_options(
        parser,
        "cycle",
        set_help="override a cycle key, e.g. cycle.seed=1 or cycle.output_dir=runs/x (repeatable)",
        resume=False,
    )
    from rerank.config_help import add_help_config

    add_help_config(parser, "rerank.rekindle.cycle_config:CycleConfig")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.api import cycle

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    report = cycle(args.config, args.set)
    out = report["provenance"]["config"]["cycle"]["output_dir"]
    from rerank.rekindle.report import results_markdown

    print(results_markdown(report["results"]))
    print(f"\nreport: {out}/report.md", file=sys.stderr)
    return 0
