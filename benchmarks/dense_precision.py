"""Zero-shot bi-encoder on Cranfield: fp32 against bf16, and against sentence-transformers.

Run: ``.venv/bin/python benchmarks/dense_precision.py [--model default] [--data data/cranfield/test.parquet]``

Scores the split with :class:`rerank.dense.BiEncoder` in fp32 and in bf16 (where the CPU
computes bf16 natively; emulated elsewhere, slower), prints PNR / nDCG@10 / MAP of both,
the largest score difference, and the largest difference from
``SentenceTransformer(dir).encode`` cosines (when sentence-transformers is installed).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import polars as pl


def main() -> None:
    from rerank.dense import BiEncoder, document_texts, resolve_model_path
    from rerank.measures import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="data/cranfield/test.parquet")
    args = parser.parse_args()
    frame = pl.read_parquet(args.data)
    scores = {}
    for precision in ("fp32", "bf16"):
        dense = BiEncoder.from_pretrained(args.model, precision=precision, device="cpu")
        t0 = time.perf_counter()
        scores[precision] = dense.score_frame(frame)
        seconds = time.perf_counter() - t0
        result = evaluate(
            frame.select("query_id", "doc_id", "label").with_columns(
                pl.Series("score", scores[precision], dtype=pl.Float64)
            ),
            ["pnr", "ndcg@10", "map"],
        )
        shown = ", ".join(f"{k} {result.aggregate[k]:.4f}" for k in ("pnr", "ndcg@10", "map"))
        print(f"{precision}: {shown} ({seconds:.1f}s)")
    print(f"max |bf16 - fp32| = {np.abs(scores['bf16'] - scores['fp32']).max():.5f}")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return
    st = SentenceTransformer(str(resolve_model_path(args.model)), device="cpu")
    q = st.encode(frame["query"].to_list(), normalize_embeddings=True, batch_size=64)
    d = st.encode(document_texts(frame), normalize_embeddings=True, batch_size=64)
    ref = (q * d).sum(axis=1)
    print(f"max |fp32 - sentence-transformers| = {np.abs(scores['fp32'] - ref).max():.2e}")


if __name__ == "__main__":
    main()
