"""``rerank glue``: GLUE teachers, rekindled students and their metrics (the same loop and configs)."""

from __future__ import annotations

import argparse
import logging
import sys

from rerank.cli import add_config_options
from rerank.config_help import add_help_config
from rerank.glue.tasks import TASKS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "glue",
        help="GLUE tasks: fine-tune, rekindle (UEGP/MoEGP), evaluate, cycle",
        description=(
            "GLUE adapters on the same training loop and configs as ranking: task heads "
            "(classification logits or STS-B regression), cross-entropy/MSE fine-tuning, "
            "KL/MSE distillation from GLUE teachers on unlabeled sentence pairs "
            "('rerank pairs --mode sentences'), and the GLUE metrics."
        ),
    )
    sub = parser.add_subparsers(dest="glue_command", required=True, metavar="ACTION")
    train = sub.add_parser(
        "train",
        help="fine-tune a model on a GLUE task (selects on dev)",
        description="A 'rerank train' config plus a [glue] section (task, data_dir, ...); "
        "heads, objective and metric_for_best default to the task's.",
    )
    add_config_options(train, "GLUE training")
    rekindle = sub.add_parser(
        "rekindle",
        help="expert-guided pre-training of a student on GLUE teachers (KD + MLM)",
        description="A 'rerank rekindle' config whose teachers are named after their tasks "
        "(rekindle.teachers = { stsb = { path = ... } }); an objective term with "
        'loss = "task" becomes each task\'s distillation loss.',
    )
    add_config_options(rekindle, "GLUE rekindle")
    evaluate = sub.add_parser("evaluate", help="a model's GLUE metrics on a task's split")
    evaluate.add_argument("--task", required=True, choices=sorted(TASKS), help="GLUE task")
    evaluate.add_argument("--model", required=True, metavar="DIR", help="saved model directory")
    evaluate.add_argument(
        "--data", required=True, metavar="PATH", help="GLUE folder (or the task's), or one file"
    )
    evaluate.add_argument(
        "--split", choices=("dev", "test", "train"), default="dev", help="default: %(default)s"
    )
    evaluate.add_argument("--head", help="head to evaluate (default: the model's primary)")
    evaluate.add_argument(
        "--max-length", type=int, help="token cap (default: the lengths saved with the model)"
    )
    evaluate.add_argument("--format", choices=("table", "json"), default="table")
    cycle = sub.add_parser(
        "cycle",
        help="teachers -> scores -> rekindled (and multi-teacher) students -> report",
        description="Resumable: a finished stage is skipped on a re-run and a killed training "
        "stage continues from its checkpoint. Writes report.md and report.json under "
        "cycle.output_dir.",
    )
    add_config_options(cycle, "GLUE cycle", resume=False)
    add_help_config(cycle, "rerank.glue.cycle:GlueCycleConfig")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    return {"train": _train, "rekindle": _rekindle, "evaluate": _evaluate, "cycle": _cycle}[
        args.glue_command
    ](args)


def _train(args: argparse.Namespace) -> int:
    from rerank.config import apply_overrides, from_toml
    from rerank.glue.stages import GlueConfig, finetune

    cfg = from_toml(args.config, GlueConfig)
    apply_overrides(cfg, args.set)
    cfg.train.resume = cfg.train.resume or args.resume
    result = finetune(cfg)
    best = "no dev evaluation"
    if result.best_step is not None:
        best = f"best dev {result.best_metric:.4f} at step {result.best_step} in {result.best_dir}"
    print(
        f"{cfg.glue.task}: {'finished' if result.finished else 'stopped'} at step "
        f"{result.steps}/{result.total_steps} in {result.seconds:.0f}s; {best}",
        file=sys.stderr,
    )
    return 0


def _rekindle(args: argparse.Namespace) -> int:
    from rerank.config import apply_overrides, from_toml
    from rerank.glue.stages import pretrain
    from rerank.rekindle.pretrain import RekindleConfig

    cfg = from_toml(args.config, RekindleConfig)
    apply_overrides(cfg, args.set)
    cfg.train.resume = cfg.train.resume or args.resume
    result = pretrain(cfg).train
    print(
        f"{'finished' if result.finished else 'stopped'} at step {result.steps}/"
        f"{result.total_steps} in {result.seconds:.0f}s; student in {result.final_dir}",
        file=sys.stderr,
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rerank.glue.predict import evaluate_model
    from rerank.glue.readers import read_glue, read_splits
    from rerank.glue.tasks import get_task
    from rerank.measures import Evaluation
    from rerank.model import RerankModel

    task = get_task(args.task)
    if Path(args.data).is_file():
        frame = read_glue(task, args.data)
    else:
        splits = read_splits(task, args.data)
        frame = getattr(splits, args.split)
        if frame is None:
            from rerank.errors import RerankError

            raise RerankError(f"{task.name} has no labeled {args.split} split in {args.data}")
    model = RerankModel.from_pretrained(args.model)
    report = evaluate_model(model, frame, task, head=args.head, max_length=args.max_length)
    evaluation = Evaluation(report)
    print(evaluation.to_json() if args.format == "json" else evaluation.format_table())
    return 0


def _cycle(args: argparse.Namespace) -> int:
    from rerank.glue.cycle import format_markdown, load_cycle, run_cycle

    cfg = load_cycle(args.config, args.set)
    report = run_cycle(cfg)
    print(format_markdown(report))
    print(f"report: {cfg.cycle.output_dir}/report.md", file=sys.stderr)
    return 0
