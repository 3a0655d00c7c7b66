"""The ``rerank`` command line: argparse wiring only.

Each subcommand lives in its own module under ``rerank/cli/`` and exposes
``add_parser(subparsers)`` and ``run(args) -> int``; the work itself is a library
function that tests call directly. (STYLE.md proposes a single ``cli.py``; one
module per subcommand keeps each short and lets subcommands grow independently.)

User mistakes raise :class:`rerank.errors.RerankError`; :func:`main` prints its
one-line message and returns exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rerank import __version__
from rerank.errors import RerankError, printable

# name -> module under rerank.cli; modules are imported lazily so that
# `rerank evaluate` never pays for importing torch.
SUBCOMMANDS: dict[str, str] = {
    "compare": "rerank.cli.compare",
    "cycle": "rerank.cli.cycle",
    "evaluate": "rerank.cli.evaluate",
    "export": "rerank.cli.export",
    "fuse": "rerank.cli.fuse",
    "glue": "rerank.cli.glue",
    "pairs": "rerank.cli.pairs",
    "rekindle": "rerank.cli.rekindle",
    "score": "rerank.cli.score",
    "train": "rerank.cli.train",
    "vocab": "rerank.cli.vocab",
}


def add_config_options(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    set_help: str = "override a config key, e.g. train.steps=100 (repeatable)",
    resume: bool = True,
) -> None:
    """--config, --set and (``resume``) --resume: the options of every config-driven command."""
    parser.add_argument("--config", required=True, metavar="FILE", help=f"{what} TOML config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    if resume:
        parser.add_argument(
            "--resume", action="store_true", help="continue from train.output_dir/checkpoint"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank",
        description="Search re-ranking with knowledge rekindle.",
    )
    parser.add_argument("--version", action="version", version=f"rerank {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RerankError as err:
        print(f"rerank {args.command}: error: {printable(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rerank {args.command}: interrupted", file=sys.stderr)
        return 130
