"""Build NFCorpus query-grouped train/dev/test tables, BM25 runs and rekindle pairs.

Run from the repository root (the output is not shipped; it is tens of MB)::

    .venv/bin/python data/nfcorpus/prepare.py --out runs/nfcorpus [--shared ../shared/data/nfcorpus]

Source: the original ECIR-2016 release as described in its PROVENANCE.md
(``docs_test_dev_union.tsv.gz``, ``original/{train,dev,test}.titles.queries``,
``original/*.3-2-1.qrel``). Academic use only; cite Boteva et al., ECIR 2016.
Deterministic: re-running gives identical tables. README.md beside this file
explains the choices and lists the counts you should get.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from rerank.data import write_table
from rerank.pairs import judged_pool, title_pairs
from rerank.retrieval import Bm25Index

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[1].parent / "shared" / "data" / "nfcorpus"

SPLITS = ("train", "dev", "test")
SEED = "nfcorpus-v1"
TITLE_MARKER = "abstract"
"""The pre-processed text is ``<title words> abstract <abstract words>``; split there."""
TITLE_MAX_WORDS = 40
"""A marker later than this is a word of the abstract, not the section marker."""


def split_title(text: str) -> tuple[str, str]:
    """``(title, summary)`` of a pre-processed document; ``("", text)`` when there is no marker.

    >>> split_title("statin breast cancer survival abstract recent studies suggested")
    ('statin breast cancer survival', 'recent studies suggested')
    >>> split_title("sitting endothelial dysfunction summary sedentary activity")
    ('', 'sitting endothelial dysfunction summary sedentary activity')
    """
    words = text.split(" ")
    if TITLE_MARKER in words[1 : TITLE_MAX_WORDS + 1]:
        at = words.index(TITLE_MARKER, 1)
        return " ".join(words[:at]), " ".join(words[at + 1 :])
    return "", text


def load_docs(shared: Path) -> pl.DataFrame:
    """``doc_id, title, summary`` of the 3,395 dev/test documents."""
    rows = []
    with gzip.open(shared / "docs_test_dev_union.tsv.gz", "rt", encoding="utf-8") as f:
        for line in f:
            doc_id, text = line.rstrip("\n").split("\t", 1)
            rows.append((doc_id, *split_title(text)))
    return pl.DataFrame(rows, schema=["doc_id", "title", "summary"], orient="row")


def load_split(shared: Path, split: str, labels: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Queries (``query_id, query``) and judgments (``query_id, doc_id, label``) of a split."""
    original = shared / "original"
    queries = pl.read_csv(
        original / f"{split}.titles.queries",
        separator="\t",
        has_header=False,
        new_columns=["query_id", "query"],
        quote_char=None,
        infer_schema=False,
    )
    qrels_path = original / f"{split}.{labels}.qrel"
    if not qrels_path.exists():
        qrels_path = qrels_path.with_name(qrels_path.name + ".gz")
    qrels = pl.read_csv(
        qrels_path,
        separator="\t",
        has_header=False,
        new_columns=["query_id", "iteration", "doc_id", "label"],
        schema_overrides={"label": pl.Int64},
        quote_char=None,
    ).select(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String), "label")
    return queries, qrels


def candidates(
    index: Bm25Index, docs: pl.DataFrame, queries: pl.DataFrame, qrels: pl.DataFrame, depth: int
) -> pl.DataFrame:
    """Judged docs plus each query's BM25 top-``depth``; unjudged candidates get label 0.

    Judged documents missing from the collection are dropped, then queries left
    without a judged document.
    """
    qrels = qrels.join(docs.select("doc_id"), on="doc_id", how="semi")
    queries = queries.join(qrels.select("query_id"), on="query_id", how="semi")
    retrieved = index.retrieve(queries, depth, show_progress=False)
    return judged_pool(retrieved, qrels, queries, docs).sort("query_id", "doc_id")


def rekindle_pairs(
    index: Bm25Index, docs: pl.DataFrame, n_queries: int, depth: int
) -> pl.DataFrame:
    """Document titles as pseudo-queries (distinct, ``n_queries`` drawn by seeded hash), BM25 top-``depth``."""
    titles = (
        docs.filter(pl.col("title") != "")
        .sort("doc_id")
        .unique("title", keep="first", maintain_order=True)
    )
    key = {d: hashlib.sha256(f"{SEED}:rekindle:{d}".encode()).hexdigest() for d in titles["doc_id"]}
    chosen = sorted(sorted(key, key=key.__getitem__)[:n_queries])
    return title_pairs(
        index, titles.filter(pl.col("doc_id").is_in(chosen)).sort("doc_id"), docs, depth
    )


def prepare(
    shared: Path,
    *,
    depth: int = 50,
    labels: str = "3-2-1",
    rekindle_queries: int = 2000,
    rekindle_depth: int = 8,
) -> dict[str, pl.DataFrame]:
    """All output tables, by file name."""
    docs = load_docs(shared)
    index = Bm25Index.build(docs)
    out: dict[str, pl.DataFrame] = {}
    for split in SPLITS:
        queries, qrels = load_split(shared, split, labels)
        grouped = candidates(index, docs, queries, qrels, depth)
        out[f"{split}.parquet"] = grouped
        if split != "train":
            out[f"bm25_{split}.run"] = index.run(grouped)
    if rekindle_queries > 0:
        out["rekindle.parquet"] = rekindle_pairs(index, docs, rekindle_queries, rekindle_depth)
    return out


def write(tables: dict[str, pl.DataFrame], out: Path) -> None:
    """Write every table atomically (Parquet; runs in TREC format, tag ``bm25``)."""
    for name, frame in tables.items():
        write_table(frame, out / name, tag="bm25")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="source collection")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--k", type=int, default=50, help="BM25 depth of candidate lists (default: 50)"
    )
    parser.add_argument(
        "--labels",
        choices=["3-2-1", "2-1-0"],
        default="3-2-1",
        help="judgment scale: 3-2-1 (default; 1 = marginally relevant) or 2-1-0 (BEIR's; marginal = 0)",
    )
    parser.add_argument(
        "--rekindle-queries",
        type=int,
        default=2000,
        help="title pseudo-queries (0: none; default: 2000)",
    )
    parser.add_argument(
        "--rekindle-k", type=int, default=8, help="documents per pseudo-query (default: 8)"
    )
    args = parser.parse_args(argv)
    if not (args.shared / "docs_test_dev_union.tsv.gz").is_file():
        print(
            f"prepare.py: error: {args.shared}/docs_test_dev_union.tsv.gz not found (use --shared)",
            file=sys.stderr,
        )
        return 2
    tables = prepare(
        args.shared,
        depth=args.k,
        labels=args.labels,
        rekindle_queries=args.rekindle_queries,
        rekindle_depth=args.rekindle_k,
    )
    write(tables, args.out)
    for name, frame in tables.items():
        print(f"{name}: {frame.height} rows, {frame['query_id'].n_unique()} queries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
