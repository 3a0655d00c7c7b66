"""``rerank vocab train|extend``: vocabularies for languages beyond the pretrained one."""

from __future__ import annotations

import argparse
import sys

from rerank.errors import RerankError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "vocab",
        help="train a SentencePiece vocabulary on rekindle text; extend a model with it",
        description=(
            "For query logs in a language the pretrained vocabulary covers badly (e.g. "
            "Chinese on an English model): 'train' learns a SentencePiece vocabulary from "
            "the text and reports how much of it is unknown before and after; 'extend' adds "
            "the missing pieces to a pretrained model (or, with --from-scratch, builds a "
            "random BERT over the new vocabulary)."
        ),
    )
    sub = parser.add_subparsers(dest="vocab_command", required=True, metavar="ACTION")

    train = sub.add_parser(
        "train",
        help="train a SentencePiece vocabulary and report coverage",
        description=(
            "Train a SentencePiece vocabulary on query-grouped tables (their query, title "
            "and summary texts; .tsv/.jsonl/.parquet) or plain text files (one text per "
            "line), keeping the target model's special tokens, and report the share of "
            "characters and tokens that are [UNK] under the model's tokenizer and under the "
            "new vocabulary."
        ),
    )
    train.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help="training text")
    train.add_argument("--size", type=int, required=True, help="vocabulary size, specials included")
    train.add_argument("--out", required=True, metavar="DIR", help="pieces directory to write")
    train.add_argument(
        "--model-type", choices=("unigram", "bpe"), default="unigram", help="(default: %(default)s)"
    )
    train.add_argument(
        "--model",
        default="default",
        metavar="DIR",
        help="target model: its special tokens, casing and tokenizer for the 'before' "
        "coverage ('default': all-MiniLM-L6-v2)",
    )
    train.add_argument(
        "--eval", nargs="+", default=[], metavar="FILE", help="held-out text to report coverage on"
    )
    train.add_argument(
        "--character-coverage",
        type=float,
        default=0.9995,
        help="share of corpus characters the vocabulary must cover (default: %(default)s)",
    )
    train.set_defaults(run=run_train)

    extend = sub.add_parser(
        "extend",
        help="add a vocabulary's missing pieces to a model (or build one from scratch)",
        description=(
            "Add the pieces of --pieces that the model's tokenizer lacks; each new embedding "
            "row (and MLM decoder bias) is the mean of the rows of the sub-pieces the old "
            "tokenizer produced for that piece. Text without new pieces is tokenized and "
            "scored exactly as before. With --from-scratch: a randomly initialised BERT of "
            "--layers x --hidden over the new vocabulary instead (the costly path: it must "
            "learn the language from rekindle alone)."
        ),
    )
    extend.add_argument("--pieces", required=True, metavar="DIR", help="from 'rerank vocab train'")
    extend.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    extend.add_argument(
        "--model", metavar="DIR", help="pretrained BERT-family model ('default': all-MiniLM-L6-v2)"
    )
    extend.add_argument(
        "--eval", nargs="+", default=[], metavar="FILE", help="texts to report coverage on"
    )
    extend.add_argument(
        "--from-scratch", action="store_true", help="random BERT over the new vocabulary"
    )
    extend.add_argument("--layers", type=int, help="--from-scratch: layers (default: 6)")
    extend.add_argument("--hidden", type=int, help="--from-scratch: hidden size (default: 384)")
    extend.add_argument("--seed", type=int, help="--from-scratch: initialisation seed (default: 0)")
    extend.set_defaults(run=run_extend)
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def run_train(args: argparse.Namespace) -> int:
    from rerank.atomic import check_output, check_output_dir
    from rerank.config import resolve_model_path
    from rerank.vocab import coverage_table, train_vocabulary

    for flag in ("corpus", "eval"):
        for path in getattr(args, flag):
            check_output(args.out, {f"--{flag}": path})
    check_output(args.out, {"--model": args.model})
    check_output_dir(args.out, marker="pieces.json", what="a vocabulary ('rerank vocab train')")
    pieces = train_vocabulary(
        args.corpus,
        args.out,
        size=args.size,
        model_dir=resolve_model_path(args.model, key="--model"),
        model_type=args.model_type,
        eval_files=args.eval,
        character_coverage=args.character_coverage,
        progress=_say,
    )
    _say(f"wrote {len(pieces.pieces):,} pieces ({pieces.model_type}) to {args.out}")
    print("\n".join(coverage_table(pieces)))
    return 0


def run_extend(args: argparse.Namespace) -> int:
    from rerank.atomic import check_output, check_output_dir
    from rerank.config import resolve_model_path
    from rerank.vocab import extend_model, read_corpus, scratch_model
    from rerank.vocab.scratch import ScratchSpec

    check_output(args.out, {"--pieces": args.pieces, "--model": args.model})
    for path in args.eval:
        check_output(args.out, {"--eval": path})
    check_output_dir(args.out, marker="config.json", what="a model directory")
    if args.from_scratch:
        if args.model:
            raise RerankError("--from-scratch builds a new model: drop --model or --from-scratch")
        spec = ScratchSpec(
            layers=6 if args.layers is None else args.layers,
            hidden=384 if args.hidden is None else args.hidden,
        )
        seed = 0 if args.seed is None else args.seed
        summary = scratch_model(args.pieces, args.out, spec=spec, seed=seed)
        _say(
            f"wrote a random {summary['layers']}-layer, {summary['hidden']}-wide BERT "
            f"({summary['parameters']:,} parameters, vocabulary {summary['vocab_size']:,}) "
            f"to {args.out}"
        )
        return 0
    given = [f"--{n}" for n in ("layers", "hidden", "seed") if getattr(args, n) is not None]
    if given:
        raise RerankError(f"{', '.join(given)}: only with --from-scratch")
    if not args.model:
        raise RerankError("--model is required (or --from-scratch)")
    texts = read_corpus(args.eval) if args.eval else None
    _say("extending the vocabulary")
    report = extend_model(
        resolve_model_path(args.model, key="--model"), args.pieces, args.out, eval_texts=texts
    )
    for line in report.lines():
        _say(line)
    if report.coverage:
        b, a = report.coverage["before"], report.coverage["after"]
        _say(
            f"--eval unknown characters {b['unknown_character_rate']:.2%} -> "
            f"{a['unknown_character_rate']:.2%}, unknown tokens {b['unknown_token_rate']:.2%} -> "
            f"{a['unknown_token_rate']:.2%}"
        )
    _say(f"wrote {args.out}")
    return 0
