"""One layer's self-attention, forward + backward, on CPU: with and without dropout.

Run: ``.venv/bin/python benchmarks/attention.py [--batch 32] [--length 256] [--repeats 5]``

BERT-base/MiniLM-sized heads (12 x 32) over a full batch of ``--length`` tokens, fp32 (the
precision ``rerank train`` runs attention in on CPU, bf16 autocast or not):

- SDPA without dropout: PyTorch's fused (flash) CPU kernel, the floor;
- SDPA with ``dropout_p = 0.1``: PyTorch's unfused fallback (what a Hugging Face BERT trains
  with at its default attention dropout, sentence-transformers' trainer included);
- ``rerank.attention.dropout_attention`` with ``p = 0.1``: what ``rerank train`` runs.

Seconds per forward + backward, best of ``--repeats``, in one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from score import load, machine  # noqa: E402

from rerank.attention import dropout_attention  # noqa: E402


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    shape = (args.batch, args.heads, args.length, args.head_dim)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    mask = torch.zeros(args.batch, 1, 1, args.length)
    mask[::2, ..., args.length * 3 // 4 :] = float("-inf")  # every other row: 1/4 padding

    def sdpa(p: float):
        return lambda: (
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p).sum().backward()
        )

    runs = {
        "SDPA, no dropout (fused kernel)": sdpa(0.0),
        "SDPA, dropout 0.1 (unfused fallback)": sdpa(0.1),
        "rerank dropout_attention, dropout 0.1": lambda: (
            dropout_attention(q, k, v, mask, 0.1).sum().backward()
        ),
    }
    before = load()
    seconds = {name: best_of(fn, args.repeats) for name, fn in runs.items()}
    m = machine()
    print("## One layer's attention, forward + backward (fp32)\n")
    print(f"Command: `{' '.join(['.venv/bin/python benchmarks/attention.py', *sys.argv[1:]])}`")
    print()
    print(
        f"- machine: {m['nproc']} CPU cores, {m['cpu']}; torch {m['torch']}, "
        f"{m['torch threads']} threads"
    )
    print(
        f"- q, k, v {list(shape)}, additive padding mask; best of {args.repeats}; "
        f"load average {before} before, {load()} after"
    )
    print()
    base = seconds["SDPA, dropout 0.1 (unfused fallback)"]
    print("| attention | s per fwd+bwd | vs SDPA with dropout |")
    print("|---|---:|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.3f} | {base / s:.2f}x |")


if __name__ == "__main__":
    main()
