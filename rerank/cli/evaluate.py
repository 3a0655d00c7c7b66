"""``rerank evaluate``: PNR and IR measures of a score file against judgments."""

from __future__ import annotations

import argparse
import sys

from rerank.errors import RerankError, input_error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="PNR and IR measures of scores against judgments",
        description=(
            "Join SCORED onto LABELED by (query_id, doc_id) and print PNR and IR measures "
            "with the row counts (judged rows without a score are left out and counted)."
        ),
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="LABELED",
        help="judgments: a query-grouped table with query_id, doc_id, label "
        "(.tsv, .jsonl, .parquet) or TREC qrels (.qrels)",
    )
    parser.add_argument(
        "--scores",
        required=True,
        metavar="SCORED",
        help="a table with query_id, doc_id, score or a TREC run (.run, .trec)",
    )
    parser.add_argument(
        "--metrics",
        default=None,
        metavar="NAME[,NAME...]",
        help="measures, e.g. pnr,pnr_macro,ndcg@10,map,mrr or ir-measures names "
        "such as 'AP(rel=2)' (default: the standard set)",
    )
    parser.add_argument(
        "--per-query",
        default=None,
        metavar="FILE",
        help="also write one row per query (.tsv, .jsonl, .parquet)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--unmatched",
        choices=("error", "drop"),
        default="error",
        help="scored rows without a judgment: fail, or drop and count them (default: %(default)s)",
    )
    parser.add_argument(
        "--label-range",
        default="0..4",
        metavar="LOW..HIGH",
        help="accepted integer grades, or 'any' (default: %(default)s)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank import data
    from rerank.evaluation import evaluate_files

    measures = _split(args.metrics) if args.metrics is not None else None
    label_range = _label_range(args.label_range)
    if args.per_query is not None and data.file_format(args.per_query) not in data.TABLE_FORMATS:
        # fail before reading large inputs, not after
        raise input_error(args.per_query, "expected a .tsv, .jsonl or .parquet per-query file")
    report = evaluate_files(
        args.data,
        args.scores,
        measures=measures,
        unmatched=args.unmatched,
        label_range=label_range,
        per_query=args.per_query is not None,
    )
    if args.per_query is not None and report.per_query is not None:
        data.write_table(report.per_query, args.per_query)
    print(report.to_json() if args.json else report.format_table())
    counts = report.counts
    if counts["unscored_rows"]:
        print(
            f"rerank evaluate: note: {counts['unscored_rows']} judged row(s) have no score "
            "and were left out",
            file=sys.stderr,
        )
    if counts["unmatched_rows"]:
        print(
            f"rerank evaluate: note: dropped {counts['unmatched_rows']} scored row(s) "
            "without a judgment",
            file=sys.stderr,
        )
    return 0


def _split(text: str) -> list[str]:
    """Split a comma list, keeping commas inside parentheses (``AP(rel=2,judged_only)``)."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += ch
    names.append(current.strip())
    if not all(names):
        raise RerankError(f"--metrics: expected comma-separated measure names, got {text!r}")
    return names


def _label_range(text: str) -> tuple[int, int] | None:
    if text.strip().lower() == "any":
        return None
    low, sep, high = text.partition("..")
    try:
        bounds = int(low), int(high)
    except ValueError:
        bounds = None
    if not sep or bounds is None or bounds[0] > bounds[1]:
        raise RerankError(f"--label-range: expected LOW..HIGH such as 0..4, or any, got {text!r}")
    return bounds
