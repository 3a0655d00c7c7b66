"""``rerank compare``: runs against a baseline, with paired significance tests."""

from __future__ import annotations

import argparse

from rerank.cli.evaluate import add_measure_options, add_trec_options, add_unmatched_option
from rerank.errors import RerankError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="compare runs with a baseline: deltas, paired t-test, randomization test",
        description=(
            "Evaluate each RUN per query on the same judgments and compare each with the "
            "first: mean difference, 95% bootstrap interval, paired t-test, paired "
            "randomization test (fixed seed) and its Holm-corrected p-value across runs. "
            "PNR is compared on per-query concordant/discordant counts."
        ),
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="runs or score tables; the first is the baseline"
    )
    judged = parser.add_mutually_exclusive_group(required=True)
    judged.add_argument(
        "--qrels", metavar="QRELS", help="TREC judgments: trec_eval semantics (see rerank evaluate)"
    )
    judged.add_argument(
        "--data", metavar="LABELED", help="a labeled table: table mode (see rerank evaluate)"
    )
    add_measure_options(
        parser, "in any spelling rerank evaluate accepts (default: pnr,ndcg@10,map,mrr)"
    )
    add_trec_options(parser, prefix="TREC mode: ")
    add_unmatched_option(parser, "table mode")
    parser.add_argument(
        "--seed", type=int, default=0, help="resampling seed (default: %(default)s)"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=10_000,
        help="resamples of the randomization test and the bootstrap (default: %(default)s)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.cli.evaluate import _label_range
    from rerank.comparison import compare
    from rerank.measures.names import split_names

    if len(args.runs) < 2:
        raise RerankError("compare needs at least two runs: the baseline, then the others")
    if args.resamples < 1:
        raise RerankError(f"--resamples: expected a positive integer, got {args.resamples}")
    result = compare(
        args.runs,
        qrels=args.qrels,
        data=args.data,
        metrics=split_names(args.metrics) if args.metrics is not None else None,
        complete=args.complete,
        pnr_unjudged=args.pnr_unjudged,
        unmatched=args.unmatched,
        label_range=_label_range(args.label_range),
        relevance_level=args.relevance_level,
        seed=args.seed,
        n_resamples=args.resamples,
    )
    print(result.to_json() if args.json else result.format_table())
    return 0
