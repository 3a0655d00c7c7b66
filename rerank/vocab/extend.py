"""Add a trained vocabulary's missing pieces to a pretrained BERT-family model.

How a piece becomes a token the old tokenizer can produce
---------------------------------------------------------
BERT's tokenizer normalises text (lower-case, strip accents, and a space on each side of
every CJK ideograph), splits it into words at whitespace and punctuation, then runs
WordPiece (greedy longest match; ``##`` marks a piece that continues a word) inside each
word. So a two-character Chinese piece such as ``北京`` can never come out of WordPiece:
the normaliser has already cut it into ``北`` and ``京``. Each SentencePiece piece is
therefore converted by asking the old tokenizer's own normaliser and pre-tokenizer:

- **word piece**: the normalised piece is one word, so it becomes a WordPiece vocabulary
  entry: ``▁foo`` (a word start) -> ``foo``; ``bar`` (found inside a word, which for BERT
  may be after a letter or after punctuation) -> both ``bar`` and ``##bar``, the latter
  only when a letter can precede it in one word (never for a CJK character or a
  punctuation mark, which the normaliser always isolates). Counted as *word* and
  *continuation* tokens.
- **span piece**: every character of the piece is one the normaliser isolates (CJK
  ideographs, punctuation), e.g. ``图书馆``. It becomes a vocabulary entry *and* an added
  token (``normalized=False``) that the fast tokenizer matches in the raw text before
  normalisation, greedily, leftmost-longest. Since word boundaries fall around those
  characters anyway, cutting the piece out changes nothing around it.
- **unreachable**: anything else (e.g. ``e.g.``, which would need an added token that also
  fires inside English text); skipped and counted.

Pieces the old vocabulary already has are skipped. Consequence: text in which no new piece
occurs is tokenized exactly as before (same ids), and since the old embedding rows and all
other weights are untouched, the extended model's outputs on it are identical.

Differences from SentencePiece: span pieces are matched greedily (leftmost-longest), not
by the unigram model's best segmentation, and on the raw text, so a piece holding an NFKC-
normalised character (``,`` for ``，``) only matches that exact character.

New embedding rows
------------------
A new token's row is the mean of the old rows of the sub-pieces the *old* tokenizer
produces for its text (``[UNK]`` excluded), so the model starts from what it already
"thought" of that text; likewise its MLM decoder bias. Only when the old tokenizer yields
nothing but ``[UNK]`` does the row fall back to the mean of all old rows (``fallback="mean"``)
or the ``[UNK]`` row (``"unk"``); the report counts those rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rerank.errors import RerankError
from rerank.vocab.coverage import plain_backend
from rerank.vocab.pieces import WORD_START, PieceSet, load_pieces

__all__ = [
    "REPORT_FILE",
    "ExtensionReport",
    "NewToken",
    "extend_model",
    "extend_tokenizer",
    "plan_tokens",
]

REPORT_FILE = "rerank_vocab.json"
Fallback = Literal["mean", "unk"]
Kind = Literal["word", "continuation", "span"]


@dataclass(frozen=True)
class NewToken:
    """One token to add: its vocabulary string, kind and the old ids it is initialised from."""

    token: str
    kind: Kind
    piece: str
    sub_ids: tuple[int, ...]


@dataclass
class ExtensionReport:
    """What :func:`extend_model` did (also written to ``rerank_vocab.json`` in the output)."""

    old_vocab_size: int
    new_vocab_size: int
    pieces: int
    added: dict[str, int]
    already_present: int
    unreachable: int
    from_sub_pieces: int
    fallback_rows: int
    fallback: str
    mlm_bias_extended: bool
    examples: list[str] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        added = sum(self.added.values())
        return [
            f"vocabulary {self.old_vocab_size:,} -> {self.new_vocab_size:,}: added {added:,} "
            f"tokens from {self.pieces:,} pieces ({self.added['word']:,} word, "
            f"{self.added['continuation']:,} continuation, {self.added['span']:,} span); "
            f"{self.already_present:,} tokens already present, "
            f"{self.unreachable:,} pieces unreachable",
            f"new rows: {self.from_sub_pieces:,} from the mean of old sub-piece rows, "
            f"{self.fallback_rows:,} fell back to the {self.fallback} row "
            "(the old tokenizer gave only [UNK])",
        ]


def _words(backend: Any, text: str) -> list[str]:
    normalizer = backend.normalizer
    norm = normalizer.normalize_str(text) if normalizer is not None else text
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(norm)]


def _isolated(backend: Any, surface: str) -> bool:
    """Every character of ``surface`` becomes its own word, even between letters."""
    words = _words(backend, f"a{surface}a")
    return len(words) == len(surface) + 2


def plan_tokens(tokenizer: Any, pieces: PieceSet) -> tuple[list[NewToken], int, int]:
    """Decide which pieces to add and how (see the module docstring).

    Returns
    -------
    (tokens, already_present, unreachable)
    """
    backend = tokenizer.backend_tokenizer
    model = backend.model
    if type(model).__name__ != "WordPiece":
        raise RerankError(
            f"{type(tokenizer).__name__}: vocabulary extension supports WordPiece (BERT-family) "
            f"tokenizers; this one is {type(model).__name__}"
        )
    prefix = model.continuing_subword_prefix
    known = backend.get_vocab(with_added_tokens=True)
    unk_id = tokenizer.unk_token_id
    vocab = backend.get_vocab(with_added_tokens=False)
    specials = set(pieces.specials)
    plain = plain_backend(tokenizer)
    plan: dict[str, NewToken] = {}
    present = unreachable = 0
    for piece in pieces.pieces:
        surface = piece.lstrip(WORD_START)
        if piece in specials or not surface:
            continue
        words = _words(backend, surface)
        candidates: list[tuple[str, Kind, tuple[int, ...]]] = []
        if len(words) == 1:
            word = words[0]
            candidates.append((word, "word", _wordpiece(word, vocab, prefix, False, unk_id)))
            # A piece SentencePiece found inside a word ("▁" absent) may follow a letter
            # (a WordPiece continuation) or punctuation (a word start for BERT): add both.
            if not piece.startswith(WORD_START) and len(_words(backend, "a" + surface)) == 1:
                sub = _wordpiece(word, vocab, prefix, True, unk_id)
                candidates.append((prefix + word, "continuation", sub))
        elif len(words) > 1 and _isolated(backend, surface):
            sub = tuple(plain.encode(surface, add_special_tokens=False).ids)
            candidates.append((surface, "span", sub))
        else:
            unreachable += 1
            continue
        for token, kind, sub in candidates:
            if token in known:
                present += 1
            elif token not in plan:
                plan[token] = NewToken(token, kind, piece, tuple(i for i in sub if i != unk_id))
    return list(plan.values()), present, unreachable


def _wordpiece(
    word: str, vocab: dict[str, int], prefix: str, continuation: bool, unk_id: int
) -> tuple[int, ...]:
    """Old WordPiece ids of one word (greedy longest match), ``(unk_id,)`` if it fails."""
    ids, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = word[start:end]
            if start > 0 or continuation:
                candidate = prefix + candidate
            if candidate in vocab:
                ids.append(vocab[candidate])
                break
            end -= 1
        if end == start:
            return (unk_id,)
        start = end
    return tuple(ids)


def extend_tokenizer(tokenizer: Any, tokens: Sequence[NewToken], first_id: int) -> dict[str, int]:
    """Add ``tokens`` to a fast WordPiece tokenizer in place, with ids from ``first_id``.

    Returns the new ids (token -> id). Every token enters the WordPiece vocabulary; span
    tokens are also registered as added tokens (they reuse their vocabulary id).
    """
    from tokenizers import AddedToken
    from tokenizers.models import WordPiece

    backend = tokenizer.backend_tokenizer
    old = backend.model
    vocab = backend.get_vocab(with_added_tokens=False)
    ids = {t.token: first_id + i for i, t in enumerate(tokens)}
    vocab.update(ids)
    backend.model = WordPiece(
        vocab=vocab,
        unk_token=old.unk_token,
        continuing_subword_prefix=old.continuing_subword_prefix,
        max_input_chars_per_word=old.max_input_chars_per_word,
    )
    spans = [
        AddedToken(
            t.token, normalized=False, single_word=False, lstrip=False, rstrip=False, special=False
        )
        for t in tokens
        if t.kind == "span"
    ]
    if spans:
        backend.add_tokens(spans)
    for t in tokens:
        if backend.token_to_id(t.token) != ids[t.token]:
            raise RerankError(f"extend: token {t.token!r} did not get id {ids[t.token]}")
    return ids


def _init_rows(
    old: torch.Tensor, tokens: Sequence[NewToken], fallback: Fallback, unk_id: int
) -> tuple[torch.Tensor, int]:
    """New rows (``[len(tokens), ...]``) as means of old rows; the number of fallback rows."""
    default = old.mean(dim=0) if fallback == "mean" else old[unk_id]
    rows, fell_back = [], 0
    for t in tokens:
        if t.sub_ids:
            rows.append(old[list(t.sub_ids)].mean(dim=0))
        else:
            rows.append(default)
            fell_back += 1
    if not rows:
        return old.new_zeros((0, *old.shape[1:])), 0
    return torch.stack(rows), fell_back


def has_mlm_head(path: Path) -> bool:
    """Whether a model directory carries an MLM head (rerank sidecar or BERT ``cls.predictions``)."""
    from rerank.model import MLM_FILE

    if (path / MLM_FILE).is_file():
        return True
    weights = path / "model.safetensors"
    if not weights.is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        return any(k.startswith("cls.predictions.") for k in f.keys())


def extend_model(
    model_dir: str | os.PathLike[str],
    pieces_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fallback: Fallback = "mean",
    eval_texts: Sequence[str] | None = None,
) -> ExtensionReport:
    """Write ``out``: ``model_dir`` with the pieces of ``pieces_dir`` it lacks added.

    Parameters
    ----------
    model_dir
        A BERT-family model directory (plain encoder or saved ``RerankModel``).
    pieces_dir
        A pieces directory from :func:`rerank.vocab.train_pieces`.
    out
        Output directory (atomic); an ordinary HF directory plus ``rerank_vocab.json``.
    fallback
        Row for tokens whose old sub-pieces are all ``[UNK]``: ``"mean"`` of the old
        embedding rows, or the ``"unk"`` row.
    eval_texts
        If given, the unknown-token and unknown-character rates of the old and the new
        tokenizer on them go into the report.
    """
    from rerank.atomic import atomic_path
    from rerank.model import RerankModel
    from rerank.vocab.coverage import measure_coverage

    if fallback not in ("mean", "unk"):
        raise RerankError(f"extend: fallback must be 'mean' or 'unk', got '{fallback}'")
    pieces = load_pieces(pieces_dir)
    path = Path(model_dir)
    model = RerankModel.from_pretrained(path, mlm=path.is_dir() and has_mlm_head(path))
    tokenizer = model.tokenizer
    tokens, present, unreachable = plan_tokens(tokenizer, pieces)
    embeddings = model.encoder.get_input_embeddings().weight
    old_rows = embeddings.shape[0]
    first_id = max(len(tokenizer), old_rows)
    before = measure_coverage(tokenizer, eval_texts) if eval_texts is not None else None
    extend_tokenizer(tokenizer, tokens, first_id)
    unk_id = tokenizer.unk_token_id
    with torch.no_grad():
        rows, fell_back = _init_rows(embeddings.detach(), tokens, fallback, unk_id)
        model.encoder.resize_token_embeddings(first_id + len(tokens), mean_resizing=False)
        weight = model.encoder.get_input_embeddings().weight
        weight[first_id:] = rows.to(weight.dtype)
        if model.mlm_head is not None:
            bias = model.mlm_head.bias.detach()
            new_bias, _ = _init_rows(bias[:, None], tokens, fallback, unk_id)
            grown = torch.cat([bias, bias.new_zeros(first_id - len(bias)), new_bias[:, 0]])
            model.mlm_head.bias = torch.nn.Parameter(grown)
    counts = {"word": 0, "continuation": 0, "span": 0}
    for t in tokens:
        counts[t.kind] += 1
    report = ExtensionReport(
        old_vocab_size=old_rows,
        new_vocab_size=first_id + len(tokens),
        pieces=sum(1 for p in pieces.pieces if p not in pieces.specials),
        added=counts,
        already_present=present,
        unreachable=unreachable,
        from_sub_pieces=len(tokens) - fell_back,
        fallback_rows=fell_back,
        fallback=fallback,
        mlm_bias_extended=model.mlm_head is not None,
        examples=[t.token for t in tokens[:20]],
    )
    if before is not None:
        after = measure_coverage(tokenizer, eval_texts or [])
        report.coverage = {"before": before.as_dict(), "after": after.as_dict()}
    with atomic_path(out, is_dir=True) as tmp:
        save_into(model, tmp)
        meta = {"source_model": str(path), "pieces": str(pieces.path), **asdict(report)}
        (tmp / REPORT_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return report


def save_into(model: Any, directory: Path) -> None:
    """``model.save_pretrained`` into the existing ``directory`` (the atomic one a caller is
    filling; save_pretrained writes atomically itself, so into a sub-folder, moved up)."""
    model.save_pretrained(directory / "model")
    for item in (directory / "model").iterdir():
        item.rename(directory / item.name)
    (directory / "model").rmdir()
