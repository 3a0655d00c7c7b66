"""Build the shipped Cranfield sample: query-grouped train/eval/test, BM25 runs, rekindle pairs.

Run from the repository root::

    .venv/bin/python data/cranfield/prepare.py [--shared ../shared/data/cranfield] [--out data/cranfield]

The source is the normalised Cranfield collection described in its PROVENANCE.md
(``docs.jsonl``, ``queries.tsv``, ``qrels_graded.tsv``, ``qrels_source_docs.tsv``;
labels already remapped to grade = 5 - raw code). Everything below is deterministic:
re-running gives byte-identical tables. See README.md beside this file for the
choices and the counts you should get.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from rerank.data import write_table
from rerank.pairs import judged_pool, title_pairs
from rerank.retrieval import Bm25Index

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parents[1].parent / "shared" / "data" / "cranfield"

SEED = "cranfield-sample-v1"
DEPTH = 30
"""BM25 depth of each query's candidate list (judged documents outside it are added)."""
SPLIT_SIZES = {"train": 135, "eval": 45, "test": 45}
"""Queries per split (225 in all, 60/20/20)."""
REKINDLE_QUERIES = 750
"""Pseudo-queries (document titles) kept for the rekindle pairs."""
REKINDLE_DEPTH = 8
"""BM25 documents per pseudo-query."""
EMPTY_DOCS = ("471", "995")
"""Documents with neither title nor abstract in the original file; dropped."""


def load(shared: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Documents (``doc_id, title, summary``), queries, graded and source-doc qrels."""
    docs = pl.read_ndjson(shared / "docs.jsonl", schema_overrides={"doc_id": pl.String}).select(
        "doc_id", "title", pl.col("abstract").alias("summary")
    )
    docs = docs.filter(~pl.col("doc_id").is_in(EMPTY_DOCS))
    tsv = {"separator": "\t", "quote_char": None, "infer_schema": False}
    queries = pl.read_csv(shared / "queries.tsv", **tsv).select(
        "query_id", pl.col("text").alias("query")
    )
    graded = pl.read_csv(shared / "qrels_graded.tsv", **tsv).select(
        "query_id", "doc_id", pl.col("grade").cast(pl.Int64).alias("label")
    )
    graded = graded.filter(~pl.col("doc_id").is_in(EMPTY_DOCS))
    source = pl.read_csv(shared / "qrels_source_docs.tsv", **tsv).select("query_id", "doc_id")
    return docs, queries, graded, source


def _hash(text: str) -> str:
    return hashlib.sha256(f"{SEED}:{text}".encode()).hexdigest()


def split_queries(query_ids: Sequence[str]) -> dict[str, str]:
    """query_id -> split, by the order of a seeded hash (exact sizes of SPLIT_SIZES)."""
    order = sorted(query_ids, key=_hash)
    if len(order) != sum(SPLIT_SIZES.values()):
        raise ValueError(f"expected {sum(SPLIT_SIZES.values())} queries, got {len(order)}")
    split_of, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        split_of.update(dict.fromkeys(order[start : start + size], name))
        start += size
    return split_of


def candidates(
    index: Bm25Index,
    docs: pl.DataFrame,
    queries: pl.DataFrame,
    graded: pl.DataFrame,
    source: pl.DataFrame,
) -> pl.DataFrame:
    """Each query's BM25 top-DEPTH (source doc excluded) plus its judged docs; unjudged = 0."""
    retrieved = index.retrieve(queries, DEPTH, exclude=source)
    return judged_pool(retrieved, graded, queries, docs).sort(
        pl.col("query_id").cast(pl.Int64), pl.col("doc_id").cast(pl.Int64)
    )


def bm25_run(index: Bm25Index, frame: pl.DataFrame) -> pl.DataFrame:
    """BM25's run over the rows of ``frame``, queries in numeric order (a shipped run)."""
    return index.run(frame, order=pl.col("query_id").cast(pl.Int64))


def rekindle_pairs(
    index: Bm25Index, docs: pl.DataFrame, source: pl.DataFrame, split_of: dict[str, str]
) -> pl.DataFrame:
    """Unlabeled pairs: document titles as pseudo-queries, each with its BM25 top-REKINDLE_DEPTH.

    Titles of the source documents of eval/test queries are left out (their text is
    what those queries were written from), duplicate titles are kept once (smallest
    doc_id), and REKINDLE_QUERIES titles are drawn by the seeded hash of their doc_id.
    """
    held_out = source.filter(pl.col("query_id").replace_strict(split_of) != "train")
    held_titles = docs.join(held_out.select("doc_id"), on="doc_id")["title"].unique()
    titles = (
        docs.filter(~pl.col("title").is_in(held_titles.implode()))
        .sort(pl.col("doc_id").cast(pl.Int64))
        .unique("title", keep="first", maintain_order=True)
    )
    chosen = sorted(titles["doc_id"].to_list(), key=lambda d: _hash(f"rekindle:{d}"))
    chosen = sorted(chosen[:REKINDLE_QUERIES], key=int)
    titled = titles.filter(pl.col("doc_id").is_in(chosen)).sort(pl.col("doc_id").cast(pl.Int64))
    return title_pairs(index, titled, docs, REKINDLE_DEPTH)


def prepare(shared: Path) -> dict[str, pl.DataFrame]:
    """All output tables, by file name."""
    docs, queries, graded, source = load(shared)
    index = Bm25Index.build(docs)
    split_of = split_queries(queries["query_id"].to_list())
    grouped = candidates(index, docs, queries, graded, source)
    split = grouped["query_id"].replace_strict(split_of)
    out = {f"{name}.parquet": grouped.filter(split == name) for name in SPLIT_SIZES}
    for name in ("eval", "test"):
        out[f"bm25_{name}.run"] = bm25_run(index, out[f"{name}.parquet"])
    out["rekindle.parquet"] = rekindle_pairs(index, docs, source, split_of)
    return out


def write(tables: dict[str, pl.DataFrame], out: Path) -> None:
    """Write every table atomically (Parquet; runs in TREC format, tag ``bm25``)."""
    for name, frame in tables.items():
        write_table(frame, out / name, tag="bm25")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="source collection")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
    if not (args.shared / "docs.jsonl").is_file():
        print(
            f"prepare.py: error: {args.shared}/docs.jsonl not found (use --shared)", file=sys.stderr
        )
        return 2
    tables = prepare(args.shared)
    write(tables, args.out)
    for name, frame in tables.items():
        print(f"{name}: {frame.height} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
