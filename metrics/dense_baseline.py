"""The free baselines of every labeled split: BM25 and the zero-shot dense bi-encoder.

Usage (from the repository root)::

    .venv/bin/python metrics/dense_baseline.py [--nfcorpus DIR] [--model default]

``DIR`` is the output of ``data/nfcorpus/prepare.py`` (its first 100 dev and 100 test
queries are used, as in ``metrics/nfcorpus.md``). Writes ``metrics/dense_baseline.json``
and ``.md``: per split, PNR, nDCG@10 and MAP of BM25 (the shipped/prepared run) and of
the dense model scored zero-shot (``rerank.dense``, fp32: cosine of the query and
``title. summary`` with the model's own pooling), and dense minus BM25 paired over
queries with a 95% bootstrap interval. These rows are what a trained re-ranker has to
beat before it is worth shipping.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import polars as pl
from _record import ROOT, git

MEASURES = ["pnr", "ndcg@10", "map"]


def first_queries(path: Path, n: int) -> pl.DataFrame:
    from rerank.data import read_pairs

    frame = read_pairs(path, labels="required")
    if n:
        keep = frame["query_id"].unique(maintain_order=True).head(n)
        frame = frame.filter(pl.col("query_id").is_in(keep.implode()))
    return frame


def splits(args: argparse.Namespace) -> list[tuple[str, Path, Path, int]]:
    """(name, labeled split, BM25 run, first N queries or 0)."""
    cran = ROOT / "data" / "cranfield"
    out = [
        ("cranfield eval", cran / "eval.parquet", cran / "bm25_eval.run", 0),
        ("cranfield test", cran / "test.parquet", cran / "bm25_test.run", 0),
    ]
    if args.nfcorpus:
        d = Path(args.nfcorpus)
        out += [
            ("nfcorpus dev (first 100 queries)", d / "dev.parquet", d / "bm25_dev.run", 100),
            ("nfcorpus test (first 100 queries)", d / "test.parquet", d / "bm25_test.run", 100),
        ]
    return out


def measure(frame: pl.DataFrame, scores: pl.DataFrame) -> tuple[dict, dict]:
    """Aggregate measures and per-query values (nDCG@10, PNR counts) of one scorer."""
    from rerank.measures import evaluate

    joined = frame.select("query_id", "doc_id", "label").join(
        scores, on=["query_id", "doc_id"], how="inner"
    )
    if joined.height != frame.height:
        raise SystemExit(f"scores cover {joined.height} of {frame.height} judged rows")
    ev = evaluate(joined, MEASURES, per_query=True)
    pq = ev.per_query
    ids = pq["query_id"].to_list()
    per_query = {
        "ndcg@10": dict(zip(ids, pq["ndcg@10"].to_list(), strict=True)),
        "pnr": dict(zip(ids, zip(pq["concordant"], pq["discordant"], strict=True), strict=True)),
    }
    return {m: float(ev.aggregate[m]) for m in MEASURES}, per_query


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nfcorpus", default="", help="data/nfcorpus/prepare.py output dir")
    parser.add_argument("--model", default="default", help="the sentence-embedding model")
    parser.add_argument("--name", default="dense_baseline", help="metrics/<name>.json and .md")
    args = parser.parse_args()

    from rerank.data import read_scores
    from rerank.dense import BiEncoder
    from rerank.measures.significance import paired_comparison, paired_ratio_comparison

    encoder = BiEncoder.from_pretrained(args.model, precision="fp32")
    rows = {}
    for name, split, run, n in splits(args):
        frame = first_queries(split, n)
        bm25, bm25_q = measure(frame, read_scores(run))
        scores = frame.select("query_id", "doc_id").with_columns(
            pl.Series("score", encoder.score_frame(frame, progress=True))
        )
        dense, dense_q = measure(frame, scores)
        nd = paired_comparison(bm25_q["ndcg@10"], dense_q["ndcg@10"], seed=0)
        pn = paired_ratio_comparison(bm25_q["pnr"], dense_q["pnr"], seed=0)
        rows[name] = {
            "queries": frame["query_id"].n_unique(),
            "rows": frame.height,
            "bm25": bm25,
            "dense": dense,
            "dense_minus_bm25": {
                m: {"delta": r.delta, "ci95": list(r.ci95), "p_randomization": r.p_randomization}
                for m, r in (("pnr", pn), ("ndcg@10", nd))
            },
        }
        print(name, json.dumps(rows[name]), file=sys.stderr)
    record = {
        "name": args.name,
        "model": args.model,
        "command": " ".join(["python", *sys.argv]),
        "git_commit": git("rev-parse", "HEAD"),
        "date": dt.date.today().isoformat(),
        "splits": rows,
    }
    here = Path(__file__).resolve().parent
    (here / f"{args.name}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    (here / f"{args.name}.md").write_text(markdown(record))
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    lines = [
        "# Free baselines: BM25 and the zero-shot dense bi-encoder",
        "",
        f"Dense model: `{record['model']}` (all-MiniLM-L6-v2 for `default`), scored zero-shot "
        "as a bi-encoder in fp32 by `rerank.dense` (its own mean pooling and normalisation, "
        "cosine of the query and `title. summary`). Dense minus BM25 is paired over the "
        "split's queries with a 95% bootstrap interval (PNR: resampled concordant/discordant "
        "counts).",
        "",
        "| split | queries | BM25 PNR | BM25 nDCG@10 | BM25 MAP | dense PNR | dense nDCG@10 | "
        "dense MAP | dense - BM25, nDCG@10 [95% CI] |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in record["splits"].items():
        d = r["dense_minus_bm25"]["ndcg@10"]
        lines.append(
            f"| {name} | {r['queries']} | "
            + " | ".join(f"{r['bm25'][m]:.4f}" for m in MEASURES)
            + " | "
            + " | ".join(f"{r['dense'][m]:.4f}" for m in MEASURES)
            + f" | {d['delta']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] |"
        )
    lines += [
        "",
        "## How this was made",
        "",
        "```",
        record["command"],
        "```",
        "",
        f"git commit {record['git_commit']}, {record['date']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
