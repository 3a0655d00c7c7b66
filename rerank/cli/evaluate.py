"""``rerank evaluate``: PNR and IR measures of a run (or scores) against judgments."""

from __future__ import annotations

import argparse
import sys

from rerank.atomic import check_output
from rerank.errors import RerankError, input_error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="PNR and IR measures of a run or scores against judgments",
        description=(
            "TREC mode (--qrels/--run): trec_eval's semantics; unjudged retrieved documents "
            "are non-relevant, the ideal ranking and recall use every judged document, and "
            "the values equal ir-measures'. Table mode (--data/--scores): the re-ranking "
            "setting where every candidate carries a label; measures over the judged rows "
            "that have a score (judged rows without a score are left out, scored rows "
            "without a judgment are an error, or dropped with --unmatched drop), with the "
            "row counts."
        ),
    )
    trec = parser.add_argument_group("TREC mode")
    trec.add_argument(
        "--qrels",
        metavar="QRELS",
        help="TREC qrels (qid 0 docid rel; any extension, '-' for stdin) or a labeled table",
    )
    trec.add_argument(
        "--run",
        dest="run_file",  # args.run is the subcommand's function
        metavar="RUN",
        help="TREC run (qid Q0 docid rank score tag; any extension, '-' for stdin) or a "
        "score table",
    )
    add_trec_options(trec)
    table = parser.add_argument_group("table mode")
    table.add_argument(
        "--data",
        metavar="LABELED",
        help="judgments: a query-grouped table with query_id, doc_id, label "
        "(.tsv, .jsonl, .parquet) or TREC qrels",
    )
    table.add_argument(
        "--scores",
        metavar="SCORED",
        help="a table with query_id, doc_id, score or a TREC run",
    )
    add_unmatched_option(table, "(for TREC judgments use --qrels/--run)")
    add_measure_options(
        parser,
        "pnr, pnr_macro, ndcg@10, map, mrr@10, p@10, r@100, err@20, their ir-measures "
        "(nDCG@10, AP, RR@10, P@10, R@100, 'AP(rel=2)') or trec_eval (ndcg_cut_10, map, "
        "recip_rank, P_10, recall_100) names (default: pnr,pnr_macro,ndcg@10,map,mrr)",
    )
    parser.add_argument(
        "--per-query",
        default=None,
        metavar="FILE",
        help="also write one row per query (.tsv, .jsonl, .parquet)",
    )
    parser.set_defaults(run=run)
    return parser


def add_trec_options(group: argparse._ActionsContainer, *, prefix: str = "") -> None:
    """-c/--complete and --pnr-unjudged (``rerank evaluate`` and ``rerank compare``)."""
    group.add_argument(
        "-c",
        "--complete",
        action="store_true",
        help=f"{prefix}judged queries missing from the run count as zero (trec_eval -c; "
        "ir-measures always counts them)",
    )
    group.add_argument(
        "--pnr-unjudged",
        choices=("skip", "zero"),
        default="skip",
        help=f"{prefix}PNR over judged retrieved documents only, or with unjudged ones as "
        "grade 0 (default: %(default)s)",
    )


def add_unmatched_option(group: argparse._ActionsContainer, note: str) -> None:
    """--unmatched (table mode of ``rerank evaluate`` and ``rerank compare``)."""
    group.add_argument(
        "--unmatched",
        choices=("error", "drop"),
        default="error",
        help=f"scored rows without a judgment: fail, or drop and count them "
        f"(default: %(default)s; {note})",
    )


def add_measure_options(parser: argparse.ArgumentParser, names_help: str) -> None:
    """--metrics, --json, -l/--relevance-level and --label-range (evaluate and compare)."""
    parser.add_argument(
        "--metrics",
        "--measures",
        dest="metrics",
        default=None,
        metavar="NAME[,NAME...]",
        help=f"measures: {names_help}",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "-l",
        "--relevance-level",
        type=int,
        default=1,
        metavar="N",
        help="binary measures (AP, RR, P, R) count labels >= N as relevant (trec_eval -l; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--label-range",
        default="0..4",
        metavar="LOW..HIGH",
        help="accepted integer grades, or 'any' (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from rerank import data
    from rerank.evaluation import canonical_names, evaluate_files, evaluate_trec_files
    from rerank.measures import DEFAULT_MEASURES
    from rerank.measures.names import split_names

    trec = args.qrels is not None or args.run_file is not None
    if trec and (args.data is not None or args.scores is not None):
        raise RerankError(
            "give --qrels/--run (TREC mode) or --data/--scores (table mode), not both"
        )
    if trec and (args.qrels is None or args.run_file is None):
        raise RerankError("TREC mode needs both --qrels and --run")
    if not trec and (args.data is None or args.scores is None):
        raise RerankError(
            "give --qrels QRELS --run RUN (TREC judgments, trec_eval semantics) or "
            "--data LABELED --scores SCORED (every candidate labeled)"
        )
    measures = canonical_names(
        split_names(args.metrics) if args.metrics is not None else DEFAULT_MEASURES
    )
    label_range = _label_range(args.label_range)
    inputs = (
        ("--data", "data"),
        ("--scores", "scores"),
        ("--qrels", "qrels"),
        ("--run", "run_file"),
    )
    check_output(args.per_query, {flag: getattr(args, dest, None) for flag, dest in inputs})
    if args.per_query is not None and data.file_format(args.per_query) not in data.TABLE_FORMATS:
        # fail before reading large inputs, not after
        raise input_error(args.per_query, "expected a .tsv, .jsonl or .parquet per-query file")
    if trec:
        report = evaluate_trec_files(
            args.qrels,
            args.run_file,
            measures=measures,
            complete=args.complete,
            pnr_unjudged=args.pnr_unjudged,
            label_range=label_range,
            per_query=args.per_query is not None,
            relevance_level=args.relevance_level,
        )
    else:
        report = evaluate_files(
            args.data,
            args.scores,
            measures=measures,
            unmatched=args.unmatched,
            label_range=label_range,
            per_query=args.per_query is not None,
            relevance_level=args.relevance_level,
        )
    if args.per_query is not None and report.per_query is not None:
        data.write_table(report.per_query, args.per_query)
    print(report.to_json() if args.json else report.format_table())
    for note in _notes(report.counts, trec, args.complete):
        print(f"rerank evaluate: note: {note}", file=sys.stderr)
    return 0


def _notes(counts: dict[str, int], trec: bool, complete: bool) -> list[str]:
    notes = []
    if trec:
        if counts["unjudged_queries"]:
            notes.append(
                f"{counts['unjudged_queries']} run queries have no judgment and were ignored"
            )
        if counts["missing_queries"] and not complete:
            notes.append(
                f"{counts['missing_queries']} judged queries are not in the run and were left "
                "out (-c counts them as zero)"
            )
        return notes
    if counts["unscored_rows"]:
        notes.append(f"{counts['unscored_rows']} judged row(s) have no score and were left out")
    if counts["unmatched_rows"]:
        notes.append(f"dropped {counts['unmatched_rows']} scored row(s) without a judgment")
    return notes


def __getattr__(name: str):
    # split_names moved to rerank.measures.names; imported on use (it loads numba)
    if name == "split_names":
        from rerank.measures.names import split_names

        return split_names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
