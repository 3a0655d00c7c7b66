"""``rerank pairs``: unlabeled (query, document) pairs by BM25 retrieval (rekindle data)."""

from __future__ import annotations

import argparse
import sys

from rerank.errors import RerankError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pairs",
        help="pair queries with their BM25 top-k documents (unlabeled rekindle data)",
        description=(
            "Retrieve the BM25 top-k documents of every query and write unlabeled rows "
            "query_id, doc_id, query, title, summary: the pairs a teacher scores for "
            "knowledge rekindle. BM25 runs over title + summary (bm25s, k1=1.5, b=0.75, "
            "English stop words, Snowball stemming); ties go to the smaller doc_id. "
            "--mode sentences instead pairs sentences of the same document (rekindle data "
            "for GLUE teachers; see rerank.glue.sentences). --mode judged turns TREC qrels "
            "+ queries + corpus into labeled query lists (training/eval data). An --out "
            "ending in .run or .trec writes the BM25 retrieval as a TREC run."
        ),
    )
    parser.add_argument(
        "--mode",
        choices=("bm25", "sentences", "judged"),
        default="bm25",
        help="bm25: queries x their top-k documents; sentences: adjacent + --random-pairs "
        "random sentence pairs of each document, no queries; judged: the --qrels pairs "
        "with their labels and texts (default: %(default)s)",
    )
    parser.add_argument(
        "--queries",
        metavar="FILE",
        help="queries: .tsv/.jsonl/.parquet with query_id and query (or text); "
        "a headerless qid<TAB>text TSV (MS MARCO topics) works too (bm25 mode)",
    )
    parser.add_argument(
        "--corpus",
        required=True,
        metavar="FILE",
        help="documents: doc_id, title, summary (or abstract/text); title may be absent",
    )
    parser.add_argument(
        "--k", type=int, default=10, help="documents per query (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output .parquet, .tsv, .csv or .jsonl (.gz too); bm25 mode: .run/.trec for a "
        "TREC run with the BM25 scores",
    )
    parser.add_argument(
        "--qrels",
        metavar="FILE",
        help="judged mode: TREC qrels (qid 0 docid rel) or a table query_id, doc_id, label",
    )
    parser.add_argument(
        "--exclude-judged",
        metavar="FILE",
        help="TREC qrels or a table with query_id, doc_id: pairs never to emit "
        "(the query gets its next-best documents instead)",
    )
    parser.add_argument(
        "--random-pairs",
        type=int,
        default=1,
        help="sentences mode: non-adjacent pairs per document (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pairs", type=int, help="sentences mode: keep a seeded subsample of this many"
    )
    parser.add_argument("--seed", type=int, default=0, help="sentences mode: seed (default: 0)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rerank.atomic import check_output
    from rerank.data import read_documents, read_judged, read_queries, write_table
    from rerank.pairs import build_pairs

    inputs = {"--queries": args.queries, "--corpus": args.corpus}
    check_output(args.out, {**inputs, "--exclude-judged": args.exclude_judged})
    if args.mode == "sentences":
        return _run_sentences(args)
    if args.mode == "judged":
        return _run_judged(args)
    if not args.queries:
        raise RerankError("--queries is required in bm25 mode")
    if args.k < 1:
        raise RerankError(f"--k: expected a positive integer, got {args.k}")
    queries = read_queries(args.queries)
    docs = read_documents(args.corpus)
    exclude = read_judged(args.exclude_judged) if args.exclude_judged else None
    as_run = str(args.out).lower().endswith((".run", ".trec"))
    pairs = build_pairs(queries, docs, k=args.k, exclude=exclude, scores=as_run)
    if as_run:
        from rerank.data import write_trec_run

        write_trec_run(pairs.select("query_id", "doc_id", "score"), args.out, tag="bm25")
    else:
        write_table(pairs, args.out)
    matched = pairs.get_column("query_id").n_unique()
    print(
        f"wrote {pairs.height:,} pairs for {matched:,} of {queries.height:,} queries "
        f"({queries.height - matched:,} without a matching document) to {args.out}",
        file=sys.stderr,
    )
    return 0


def _run_judged(args: argparse.Namespace) -> int:
    from rerank.data import read_documents, read_labels, read_queries, write_table
    from rerank.pairs import labeled_pairs

    if not args.qrels or not args.queries:
        raise RerankError("--mode judged needs --qrels, --queries and --corpus")
    qrels = read_labels(args.qrels, label_range=None)
    pairs = labeled_pairs(
        qrels, read_queries(args.queries), read_documents(args.corpus), qrels_path=args.qrels
    )
    write_table(pairs, args.out)
    print(
        f"wrote {pairs.height:,} labeled pairs of {pairs['query_id'].n_unique():,} queries "
        f"to {args.out}",
        file=sys.stderr,
    )
    return 0


def _run_sentences(args: argparse.Namespace) -> int:
    from rerank.data import read_documents, write_table
    from rerank.glue.sentences import sentence_pairs

    if args.max_pairs is not None and args.max_pairs < 1:
        raise RerankError(f"--max-pairs: expected a positive integer, got {args.max_pairs}")
    docs = read_documents(args.corpus)
    pairs = sentence_pairs(
        docs, random_pairs=args.random_pairs, max_pairs=args.max_pairs, seed=args.seed
    )
    write_table(pairs, args.out)
    print(
        f"wrote {pairs.height:,} sentence pairs from {docs.height:,} documents to {args.out}",
        file=sys.stderr,
    )
    return 0
