"""``rerank score``: score (query, document) pairs with a saved model (batch inference)."""

from __future__ import annotations

import argparse
import sys

from rerank.errors import RerankError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score query/document pairs with a saved model",
        description=(
            "Score every row of a pairs table (query_id, doc_id, query, title, summary) "
            "with a saved model and write query_id, doc_id, score in input order: .tsv, "
            ".parquet or .jsonl, or a TREC run for .run/.trec. Streams inputs larger than "
            "memory; runs sharded under torchrun (rank 0 writes the output). With --run, "
            "--queries and --corpus instead of --data: re-rank a first-stage TREC run "
            "(each query's top --depth documents) and write the re-ranked run."
        ),
    )
    _input_arguments(parser)
    _batch_arguments(parser)
    _runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input and output")
    group.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="saved model directory; 'default' is the bundled all-MiniLM-L6-v2 "
        "sentence-embedding model (scored as a bi-encoder under --kind auto)",
    )
    group.add_argument(
        "--kind",
        choices=("auto", "cross-encoder", "bi-encoder"),
        default="auto",
        help="cross-encoder: the model's ranking head scores each pair; bi-encoder: cosine "
        "of the query's and the document's ('title. summary') embeddings, pooled as the "
        "checkpoint says; auto: cross-encoder for a directory with a trained ranking head, "
        "bi-encoder for a sentence-transformers directory (or 'default') without one, "
        "else cross-encoder (default: %(default)s)",
    )
    group.add_argument(
        "--data",
        metavar="FILE",
        help="pairs table: .parquet, .tsv, .jsonl or .csv (.gz too); or give --run, --queries, "
        "--corpus",
    )
    group.add_argument(
        "--run",
        dest="run_path",
        metavar="FILE",
        help="a first-stage TREC run to re-rank (instead of --data)",
    )
    group.add_argument(
        "--queries",
        metavar="FILE",
        help="with --run: query_id, query (or qid, text; a headerless qid<TAB>text TSV works)",
    )
    group.add_argument(
        "--corpus",
        metavar="FILE",
        help="with --run: doc_id, title, summary (or text/abstract; title may be absent)",
    )
    group.add_argument(
        "--depth",
        type=int,
        default=100,
        help="with --run: documents re-ranked per query, the run's best first "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--out", required=True, metavar="FILE", help="scores: .tsv, .parquet, .jsonl, .run, .trec"
    )


def _batch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("batches and lengths")
    group.add_argument(
        "--batch-size", type=int, default=64, help="pairs per batch (default: %(default)s)"
    )
    group.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="also cap each batch at this many padded tokens (default: no cap)",
    )
    group.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per pair, special tokens included (default: the length the model was "
        "trained with, else 256)",
    )
    group.add_argument(
        "--max-query-length",
        type=int,
        default=None,
        help="tokens kept of the query (default: as trained, else 64)",
    )
    group.add_argument(
        "--chunk-rows",
        type=int,
        default=8192,
        help="rows read and length-sorted at a time (default: %(default)s)",
    )


def _runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument(
        "--precision",
        choices=("fp32", "bf16", "int8", "auto"),
        default="auto",  # rerank.precision.DEFAULT_PRECISION (no torch import here)
        help="bf16: encoder in bf16, heads in fp32; auto: bf16 where the hardware computes "
        "it natively, else fp32; int8: the int8 graph of an export (--backend onnx/openvino) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "openvino"),
        default="auto",
        help="onnx/openvino: the graphs of `rerank export` (pip install "
        "rerank-rekindle[onnx] / [openvino]); auto: on CPU the first of openvino, onnx, torch "
        "that the directory holds and this install runs; torch on a GPU (default: %(default)s)",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: torch's default, the physical cores)",
    )
    group.add_argument(
        "--heads",
        default=None,
        metavar="NAME[,NAME...]",
        help="write one column per named head instead of the primary head's 'score'",
    )


def run(args: argparse.Namespace) -> int:
    import functools
    import logging

    from rerank.config import resolve_model_path
    from rerank.score import rerank_run, score_file

    logging.basicConfig(level=logging.WARNING, format="rerank score: %(message)s")
    from rerank.atomic import check_output

    inputs = (("--data", "data"), ("--run", "run_path"), ("--queries", "queries"))
    inputs += (("--corpus", "corpus"),)
    check_output(args.out, {flag: getattr(args, dest, None) for flag, dest in inputs})
    logging.getLogger("rerank.progress").setLevel(logging.INFO)  # lines where no bar shows
    heads = [h.strip() for h in args.heads.split(",") if h.strip()] if args.heads else None
    reranking = [args.run_path, args.queries, args.corpus]
    if args.data and any(reranking):
        raise RerankError("give either --data or --run with --queries and --corpus, not both")
    if not args.data and not all(reranking):
        raise RerankError("give --data (a pairs table), or --run with --queries and --corpus")
    if args.depth < 1:
        raise RerankError(f"--depth: expected a positive integer, got {args.depth}")
    bi_encoder = args.kind == "bi-encoder" or (
        args.kind == "auto" and _detect_kind(args.model) == "bi-encoder"
    )
    options = {
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
        "max_length": args.max_length,
        "chunk_rows": args.chunk_rows,
        "precision": args.precision,
    }
    if bi_encoder:
        from rerank import dense

        if heads:
            raise RerankError("--heads: a bi-encoder has no heads; it scores one cosine")
        if args.max_query_length is not None:
            raise RerankError(
                "--max-query-length: a bi-encoder truncates each text at --max-length"
            )
        if args.backend not in ("auto", "torch") or args.precision == "int8":
            raise RerankError("--backend/--precision int8: a bi-encoder scores with torch only")
        file_scorer, model = dense.score_file, args.model
    else:
        options.update(heads=heads, max_first_length=args.max_query_length)
        options.update(backend=args.backend, threads=args.threads)
        file_scorer, model = score_file, resolve_model_path(args.model, key="--model")
    if args.data:
        scorer, sources = file_scorer, (args.data,)
    else:
        scorer = functools.partial(rerank_run, depth=args.depth, scorer=file_scorer)
        sources = (args.run_path, args.queries, args.corpus)
    if args.threads is not None and args.threads < 1:
        raise RerankError(f"--threads: expected a positive integer, got {args.threads}")
    summary = scorer(model, *sources, args.out, **options)
    backend = getattr(summary, "backend", "torch")
    threads = getattr(summary, "threads", 0)
    if summary.rank != 0:
        return 0
    print(
        f"scored {summary.rows:,} pairs in {summary.seconds:.1f}s "
        f"({summary.pairs_per_second:,.1f} pairs/s, "
        + ("bi-encoder, " if bi_encoder else "")
        + f"{backend} {summary.precision} on {summary.device}"
        + (f", {threads} thread{'s' if threads > 1 else ''}" if threads else "")
        + (f" x{summary.world_size} ranks" if summary.world_size > 1 else "")
        + f") -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _detect_kind(model: str) -> str:
    from rerank.dense import detect_kind

    return detect_kind(model)
