"""Cost of MLM in expert-guided pre-training on CPU: one masked pass vs a separate pass.

Times optimizer steps of the training loop's own forward (``rerank.training.step.model_forward``)
and losses on real Cranfield rekindle batches, for three objectives:

- ``kd``: pointwise + pairwise MSE only (no MLM);
- ``kd+mlm shared``: one pass over the masked inputs gives scores and MLM logits
  (``data.mlm_separate_pass = false``);
- ``kd+mlm separate``: scores on the clean inputs, MLM on a masked copy, both in one
  forward call over twice the rows (``data.mlm_separate_pass = true``, the default).

The three are interleaved step by step (A, B, C, A, B, C, ...) so that a shared, busy
machine slows them alike; the first round is a warm-up and not counted. Usage::

    .venv/bin/python metrics/mlm_pass_cost.py [--steps 8] [--max-length 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=32, help="rows per batch (4 lists of 8)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import polars as pl
    import torch

    from rerank.batching import GroupBatcher, GroupedData
    from rerank.config import LossTerm, ModelConfig
    from rerank.losses import LOSSES
    from rerank.model import RerankModel
    from rerank.training.masking import MlmMasking
    from rerank.training.step import model_forward

    torch.set_num_threads(args.threads)
    frame = pl.read_parquet(ROOT / "data" / "cranfield" / "rekindle.parquet").head(2000)
    rng = np.random.default_rng(0)
    frame = frame.with_columns(pl.Series("teacher:t1", rng.normal(size=frame.height)))
    path = ModelConfig().resolved_path()
    model = RerankModel.from_pretrained(path, mlm=True)
    encoder = model.pair_encoder(max_length=args.max_length, max_first_length=48)
    data = GroupedData.from_frame(frame, encoder, targets=["teacher:t1"], source="rekindle")
    kd = [
        LossTerm("pointwise_mse", "score", "teacher:t1"),
        LossTerm("pairwise_mse", "score", "teacher:t1"),
    ]
    mlm = LossTerm("mlm", "score", "label", 0.1)
    setups = {
        "kd": (kd, None),
        "kd+mlm shared": (
            [*kd, mlm],
            MlmMasking.from_tokenizer(model.tokenizer, separate_pass=False),
        ),
        "kd+mlm separate": (
            [*kd, mlm],
            MlmMasking.from_tokenizer(model.tokenizer, separate_pass=True),
        ),
    }
    batchers = {
        name: GroupBatcher(
            data,
            list_size=8,
            groups_per_batch=args.rows // 8,
            seed=0,
            stratify_by="teacher:t1",
            transform=transform,
        ).iter_from(0, 0)
        for name, (_, transform) in setups.items()
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times: dict[str, list[float]] = {name: [] for name in setups}
    model.train()
    for step in range(args.steps + 1):
        for name, (terms, transform) in setups.items():
            batch = next(batchers[name])
            start = time.perf_counter()
            out = model_forward(model, batch, ("score",), transform is not None)
            loss = 0.0
            for term in terms:
                spec = LOSSES[term.loss]
                if spec.kind == "mlm":
                    loss = loss + term.weight * spec.fn(out["mlm"], batch.inputs["mlm_labels"])
                else:
                    s = batch.grouped(out["score"])
                    t = batch.grouped(batch.targets[term.target])
                    loss = loss + term.weight * spec.fn(s, t, batch.mask)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # step 0 warms up
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["kd"])
    result = {
        name: {
            "median_s_per_step": round(statistics.median(ts), 3),
            "relative_to_kd": round(statistics.median(ts) / base, 2),
        }
        for name, ts in times.items()
    }
    result["setup"] = {
        "rows_per_step": args.rows,
        "max_length": args.max_length,
        "threads": args.threads,
        "steps": args.steps,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
