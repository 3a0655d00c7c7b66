"""How much of a text a tokenizer cannot represent: unknown tokens and unknown characters.

Two shares, for any Hugging Face ``tokenizers`` pipeline (a model's fast tokenizer or a
pieces directory's ``tokenizer.json``):

- *unknown token rate*: ``[UNK]`` tokens / all tokens (special tokens not counted);
- *unknown character rate*: non-whitespace characters of the original text that lie inside
  an ``[UNK]`` token's span / all non-whitespace characters. This is the share of the text
  the model never sees. WordPiece maps a whole word to one ``[UNK]`` when any character of
  it is missing, so this rate can be far above the token rate.

Spans come from the tokenizer's own offsets, which point into the original text through
normalisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Coverage", "measure_coverage", "plain_backend"]


@dataclass(frozen=True)
class Coverage:
    """Counts behind the unknown-token and unknown-character rates of one tokenizer on one text set."""

    texts: int
    characters: int
    unknown_characters: int
    tokens: int
    unknown_tokens: int

    @property
    def unknown_character_rate(self) -> float:
        return self.unknown_characters / self.characters if self.characters else 0.0

    @property
    def unknown_token_rate(self) -> float:
        return self.unknown_tokens / self.tokens if self.tokens else 0.0

    @property
    def characters_per_token(self) -> float:
        return self.characters / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict[str, float | int]:
        d: dict[str, float | int] = dict(asdict(self))
        d["unknown_character_rate"] = round(self.unknown_character_rate, 6)
        d["unknown_token_rate"] = round(self.unknown_token_rate, 6)
        d["characters_per_token"] = round(self.characters_per_token, 4)
        return d

    def line(self) -> str:
        """``unknown: 12.3% of characters, 4.5% of tokens (1,234 tokens, 2.10 characters/token)``."""
        return (
            f"unknown: {self.unknown_character_rate:.2%} of characters, "
            f"{self.unknown_token_rate:.2%} of tokens "
            f"({self.tokens:,} tokens, {self.characters_per_token:.2f} characters/token)"
        )


def measure_coverage(tokenizer: Any, texts: Iterable[str], *, batch_size: int = 256) -> Coverage:
    """Count unknown tokens and the characters they cover.

    Parameters
    ----------
    tokenizer
        A ``tokenizers.Tokenizer``, or a ``transformers`` fast tokenizer (its backend is used).
    texts
        The texts to measure.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> c = measure_coverage(tok, ["a bb a"])
    >>> (c.tokens, c.unknown_tokens, c.characters, c.unknown_characters)
    (3, 1, 4, 2)
    """
    backend = plain_backend(tokenizer)
    unk = _unk_id(tokenizer, backend)
    texts = list(texts)
    n_chars = n_unk_chars = n_tokens = n_unk = 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        for text, enc in zip(
            chunk, backend.encode_batch(chunk, add_special_tokens=False), strict=True
        ):
            n_chars += sum(not ch.isspace() for ch in text)
            n_tokens += len(enc.ids)
            covered = set()
            for token_id, (begin, end) in zip(enc.ids, enc.offsets, strict=True):
                if token_id == unk:
                    n_unk += 1
                    covered.update(i for i in range(begin, end) if not text[i].isspace())
            n_unk_chars += len(covered)
    return Coverage(len(texts), n_chars, n_unk_chars, n_tokens, n_unk)


def plain_backend(tokenizer: Any) -> Any:
    """A copy of the ``tokenizers.Tokenizer`` behind ``tokenizer`` with padding and truncation off
    (a saved ``tokenizer.json`` may pad and cut every text to 128 tokens)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    plain = Tokenizer.from_str(backend.to_str())
    plain.no_padding()
    plain.no_truncation()
    return plain


def _unk_id(tokenizer: Any, backend: Any) -> int | None:
    for name in (
        getattr(tokenizer, "unk_token", None),
        getattr(backend.model, "unk_token", None),
        "[UNK]",
        "<unk>",
    ):
        if isinstance(name, str) and backend.token_to_id(name) is not None:
            return int(backend.token_to_id(name))
    return None
