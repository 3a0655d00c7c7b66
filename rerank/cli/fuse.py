"""``rerank fuse``: several score files of the same candidates mixed into one ranking."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fuse",
        help="mix score files of the same candidates (per-query z-scores, weighted sum)",
        description=(
            "Z-score each file's scores within each query, then add them with the given "
            "weights: e.g. a cross-encoder with the zero-shot bi-encoder or the BM25 first "
            "stage it re-ranks. Every file must score the same (query_id, doc_id) pairs."
        ),
    )
    parser.add_argument(
        "scores", nargs="+", metavar="SCORES", help="score tables or TREC runs (two or more)"
    )
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        required=True,
        metavar="W",
        help="one weight per file, in order (e.g. 0.7 0.3)",
    )
    parser.add_argument(
        "--out", required=True, help="fused scores: .run/.trec, .tsv, .jsonl or .parquet"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.fusion import fuse_files

    rows = fuse_files(args.scores, args.weights, args.out)
    print(f"fused {len(args.scores)} score files: {rows} rows -> {args.out}")
    return 0
