"""Text -> token ids for cross-encoders, with a truncation policy that keeps what matters.

A ranking input is ``[CLS] query [SEP] title [SEP] summary [SEP]`` (for BERT; other
tokenizers use their own special tokens, derived here from the tokenizer itself). The
document segment is the *parts* ``title, summary`` joined by the separator token, which
is exactly what a BERT tokenizer produces for the text ``"title [SEP] summary"``; that is
what makes a saved model score identically in sentence-transformers' ``CrossEncoder``
given ``(query, join_parts([title, summary]))``.

Truncation policies (documented in README, tested in tests/test_encoding.py):

``"query_cap"`` (the default):

1. The first segment (the query) keeps at most ``max_first_length`` tokens.
2. The budget left after the query and the special tokens goes to the parts in order:
   the title takes what it needs, the summary gets the rest. So the summary is trimmed
   first, then the title; the query is only cut by its own cap (or when the query alone
   exceeds the whole budget).
3. A part that is empty (or trimmed to nothing) is omitted together with its separator.

``"longest_first"``: what a Hugging Face fast tokenizer does to the pair ``(query,
"title [SEP] summary")`` with ``truncation=True`` (and so what sentence-transformers'
``CrossEncoder`` scores): the document is the non-empty parts joined by the separator,
and the longer of the two segments is cut first until both fit (:func:`longest_first`);
``max_first_length`` is not used. The two policies give the same input whenever the
query fits in ``max_first_length`` tokens and in half the budget.

Single-sentence inputs (GLUE CoLA/SST-2) pass ``second=None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

TRUNCATIONS = ("query_cap", "longest_first")


def longest_first(first: list[int], second: list[int], budget: int) -> tuple[list, list]:
    """Cut a pair to ``budget`` tokens as the Hugging Face ``tokenizers`` library does.

    The ``LongestFirst`` strategy of ``tokenizers`` (``utils/truncation.rs``): the shorter
    segment is kept whole when it fits in half the budget and the longer gets the rest;
    otherwise each gets half (the longer one the odd token).

    Examples
    --------
    >>> [len(x) for x in longest_first([1] * 10, [2] * 100, 50)]
    [10, 40]
    >>> [len(x) for x in longest_first([1] * 40, [2] * 100, 51)]
    [25, 26]
    """
    n1, n2 = len(first), len(second)
    if n1 + n2 <= budget:
        return first, second
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    if swap:
        n1, n2 = n2, n1
    return first[:n1], second[:n2]


# Characters kept from any one text before tokenizing: long documents are cut before
# WordPiece sees them (a 512-token budget never needs more than a few thousand
# characters), which keeps tokenization cost independent of document length.
_MAX_CHARS_PER_TOKEN = 12


@dataclass(frozen=True)
class _Template:
    """Special tokens around one or two segments, as the tokenizer itself places them."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    single_suffix: list[int]
    second_type: int


def _derive_template(tokenizer: Any) -> _Template:
    # Encode two sentinel words alone and as a pair; whatever surrounds them is the
    # tokenizer's special-token template (works for BERT, RoBERTa, DeBERTa...).
    a = tokenizer("a", add_special_tokens=False)["input_ids"]
    b = tokenizer("b", add_special_tokens=False)["input_ids"]
    pair = tokenizer("a", "b", return_token_type_ids=True)
    single = tokenizer("a")["input_ids"]
    ids = pair["input_ids"]
    ia = _find(ids, a, 0)
    ib = _find(ids, b, ia + len(a))
    types = pair.get("token_type_ids") or [0] * len(ids)
    sa = _find(single, a, 0)
    return _Template(
        prefix=ids[:ia],
        middle=ids[ia + len(a) : ib],
        suffix=ids[ib + len(b) :],
        single_suffix=single[sa + len(a) :],
        second_type=int(types[ib]),
    )


def _find(seq: list[int], sub: list[int], start: int) -> int:
    for i in range(start, len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i
    raise ValueError("could not derive the tokenizer's special-token template")


@dataclass
class Encoded:
    """Token ids of a batch of inputs, unpadded (``input_ids[i]`` is one input)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    def select(self, index: Sequence[int]) -> Encoded:
        return Encoded([self.input_ids[i] for i in index], [self.token_type_ids[i] for i in index])


class PairEncoder:
    """Tokenize (query, [title, summary]) inputs with the truncation policy above.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer.
    max_length
        Total length cap, special tokens included.
    max_first_length
        Cap on the first segment (the query) under ``truncation="query_cap"``.
    truncation
        ``"query_cap"`` or ``"longest_first"`` (see the module docstring).

    Examples
    --------
    >>> enc = PairEncoder(tokenizer, max_length=16)  # doctest: +SKIP
    >>> enc.encode(["what is lift"], [["wing theory", "the lift of a wing"]])  # doctest: +SKIP
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int = 256,
        max_first_length: int = 64,
        truncation: str = "query_cap",
    ):
        if max_length < 8:
            raise ValueError(f"PairEncoder: max_length must be >= 8, got {max_length}")
        if truncation not in TRUNCATIONS:
            raise ValueError(
                f"PairEncoder: truncation must be one of {TRUNCATIONS}, got {truncation!r}"
            )
        self.truncation = truncation
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_first_length = max_first_length
        self.template = _derive_template(tokenizer)
        sep = tokenizer.sep_token_id
        self.part_sep = [sep] if sep is not None else list(self.template.middle)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.uses_token_types = "token_type_ids" in tokenizer.model_input_names

    def join_parts(self, parts: Sequence[str]) -> str:
        """The document text that a plain HF tokenizer turns into our document segment."""
        sep = f" {self.tokenizer.sep_token} " if self.tokenizer.sep_token else " "
        return sep.join(p for p in parts if p and p.strip())

    def _tokenize(self, texts: Sequence[str], *, clip: bool = True) -> list[list[int]]:
        cap = self.max_length * _MAX_CHARS_PER_TOKEN if clip else None
        clipped = [t[:cap] if t else "" for t in texts]
        # verbose=False: the tokenizer would warn that texts exceed model_max_length; the
        # truncation policy above cuts them, so the warning is noise
        return self.tokenizer(clipped, add_special_tokens=False, verbose=False)["input_ids"]

    def encode(
        self, first: Sequence[str], second: Sequence[Sequence[str]] | None = None
    ) -> Encoded:
        """Encode a batch: ``first[i]`` with the parts ``second[i]`` (or alone)."""
        t = self.template
        firsts = self._tokenize(first)
        if second is None:
            budget = self.max_length - len(t.prefix) - len(t.single_suffix)
            ids = [t.prefix + f[:budget] + t.single_suffix for f in firsts]
            return Encoded(ids, [[0] * len(x) for x in ids])
        n_parts = max((len(p) for p in second), default=0)
        columns = [
            self._tokenize([p[k] if k < len(p) else "" for p in second]) for k in range(n_parts)
        ]
        fixed = len(t.prefix) + len(t.middle) + len(t.suffix)
        out_ids, out_types = [], []
        for i, f in enumerate(firsts):
            if self.truncation == "longest_first":
                parts = [col[i] for col in columns]
                doc = self._joined(parts)
                if self._clipped_matters(first[i], second[i], f, doc):
                    f, *parts = self._tokenize([first[i], *second[i]], clip=False)
                    doc = self._joined(parts)
                f, doc = longest_first(f, doc, self.max_length - fixed)
            else:
                f, doc = self._query_cap(f, [col[i] for col in columns], fixed)
            ids = t.prefix + f + t.middle + doc + t.suffix
            n_first = len(t.prefix) + len(f) + len(t.middle)
            out_ids.append(ids)
            out_types.append([0] * n_first + [t.second_type] * (len(ids) - n_first))
        return Encoded(out_ids, out_types)

    def _joined(self, parts: Sequence[list[int]]) -> list[int]:
        doc: list[int] = []
        for piece in parts:
            if piece:
                doc = doc + self.part_sep + piece if doc else list(piece)
        return doc

    def _clipped_matters(
        self, query: str, parts: Sequence[str], f: list[int], doc: list[int]
    ) -> bool:
        """Whether clipping long texts (``_tokenize``) may change which segment is longer,
        which ``longest_first`` needs to know; then the pair is tokenized whole."""
        cap = self.max_length * _MAX_CHARS_PER_TOKEN
        query_clipped = len(query or "") > cap
        doc_clipped = any(len(p or "") > cap for p in parts)
        return (query_clipped and len(f) <= len(doc)) or (doc_clipped and len(doc) <= len(f))

    def _query_cap(self, f: list[int], parts: list[list[int]], fixed: int) -> tuple[list, list]:
        f = f[: min(self.max_first_length, self.max_length - fixed - 1)]
        budget = self.max_length - fixed - len(f)
        doc: list[int] = []
        for piece in parts:
            if not piece:
                continue
            room = budget - len(doc) - (len(self.part_sep) if doc else 0)
            if room <= 0:
                break
            doc = doc + self.part_sep + piece[:room] if doc else piece[:room]
        return f, doc

    def collate(self, enc: Encoded, *, pad_to_multiple_of: int = 8) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest input (rounded up to ``pad_to_multiple_of``)."""
        longest = padded_width(max(enc.lengths(), default=1), pad_to_multiple_of)
        input_ids, mask = pad_ids(enc.input_ids, self.pad_id, longest)
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if self.uses_token_types:
            batch["token_type_ids"] = pad_ids(enc.token_type_ids, 0, longest)[0]
        return batch


def padded_width(n: int, multiple: int = 8) -> int:
    """``n`` tokens rounded up to a multiple of ``multiple``: the one padding rule of every
    batch (pair batches, training batches, bi-encoder batches, batch planning).

    Examples
    --------
    >>> padded_width(13), padded_width(16), padded_width(13, 1)
    (16, 16, 13)
    """
    m = max(multiple, 1)
    return -(-n // m) * m


def pad_ids(
    rows: Sequence[Sequence[int]], value: int, width: int, *, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` of token ids as one int64 ``[n, width]`` tensor padded with ``value`` (on the
    right, or on the left), and its attention mask (1 on the rows' own tokens).

    Examples
    --------
    >>> ids, mask = pad_ids([[5, 6, 7], [8]], 0, 4)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7, 0], [8, 0, 0, 0]], [[1, 1, 1, 0], [1, 0, 0, 0]])
    >>> pad_ids([[8]], 0, 2, left=True)[0].tolist()
    [[0, 8]]
    """
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
