"""``rerank vocab train`` as a library call: corpus -> pieces directory + coverage report.

The target model (the one the vocabulary is for) decides three things: the special-token
names kept in the vocabulary, whether text is lower-cased (an uncased model), and the
*before* side of the coverage report: how much of the corpus (and of optional held-out
texts) its own tokenizer maps to ``[UNK]``, next to how much the new vocabulary does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank.errors import RerankError
from rerank.vocab.coverage import Coverage, measure_coverage
from rerank.vocab.pieces import ModelType, PieceSet, Progress, read_corpus, train_pieces

__all__ = ["coverage_table", "target_specials", "train_vocabulary"]


def _quiet(_: str) -> None:
    return None


def target_specials(tokenizer: Any) -> tuple[str, ...]:
    """The target tokenizer's pad, unk, cls, sep and mask token names (all required)."""
    names = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
    values = tuple(getattr(tokenizer, n, None) for n in names)
    missing = [n for n, v in zip(names, values, strict=True) if not v]
    if missing:
        raise RerankError(
            f"{type(tokenizer).__name__}: the target tokenizer has no {', '.join(missing)}; "
            "a BERT-style vocabulary needs pad, unk, cls, sep and mask tokens"
        )
    return tuple(str(v) for v in values)


def _is_uncased(tokenizer: Any) -> bool:
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    if normalizer is not None:
        return normalizer.normalize_str("ABC") == "abc"
    return bool(getattr(tokenizer, "do_lower_case", False))


def _load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    from rerank.model import quiet_transformers

    if not model_dir.is_dir():
        raise RerankError(f"{model_dir}: model directory does not exist")
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise RerankError(
            f"{model_dir}: cannot load its tokenizer: {str(err).splitlines()[0]}"
        ) from err


def train_vocabulary(
    corpus: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    size: int,
    model_dir: str | os.PathLike[str],
    model_type: ModelType = "unigram",
    eval_files: Sequence[str | os.PathLike[str]] = (),
    character_coverage: float = 0.9995,
    progress: Progress = _quiet,
) -> PieceSet:
    """Train a vocabulary for the model in ``model_dir`` on ``corpus`` and report coverage.

    The report (``pieces.json`` -> ``meta.coverage``) has, for ``"corpus"`` and, when
    ``eval_files`` are given, ``"eval"``: ``{"before": ..., "after": ...}`` with the counts
    and rates of :class:`rerank.vocab.coverage.Coverage` (before: the target model's
    tokenizer; after: the new vocabulary).
    """
    model_path = Path(model_dir)
    tokenizer = _load_tokenizer(model_path)
    specials = target_specials(tokenizer)
    lowercase = _is_uncased(tokenizer)
    progress(f"reading {len(corpus)} corpus file(s)")
    texts = read_corpus(corpus)
    held_out = read_corpus(eval_files) if eval_files else None
    progress(f"{len(texts):,} distinct texts, {sum(map(len, texts)):,} characters")

    def report(pieces: PieceSet) -> dict[str, Any]:
        progress("measuring coverage: target tokenizer vs new vocabulary")
        sets = {"corpus": texts, **({"eval": held_out} if held_out is not None else {})}
        new = pieces.tokenizer()
        return {
            name: {
                "before": measure_coverage(tokenizer, items).as_dict(),
                "after": measure_coverage(new, items).as_dict(),
            }
            for name, items in sets.items()
        }

    return train_pieces(
        texts,
        out,
        size=size,
        model_type=model_type,
        lowercase=lowercase,
        character_coverage=character_coverage,
        specials=specials,
        extra={
            "target_model": str(model_path),
            "corpus": [str(p) for p in corpus],
            "eval": [str(p) for p in eval_files],
        },
        report=report,
        progress=progress,
    )


def coverage_table(pieces: PieceSet) -> list[str]:
    """Markdown lines: unknown characters/tokens before and after, per text set."""
    rows = [
        "| texts | tokenizer | unknown characters | unknown tokens | tokens | characters/token |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, sides in pieces.meta.get("coverage", {}).items():
        for side, label in (("before", "target model"), ("after", "new vocabulary")):
            c = Coverage(**{k: sides[side][k] for k in Coverage.__dataclass_fields__})
            rows.append(
                f"| {name} | {label} | {c.unknown_character_rate:.2%} | "
                f"{c.unknown_token_rate:.2%} | {c.tokens:,} | {c.characters_per_token:.2f} |"
            )
    return rows
