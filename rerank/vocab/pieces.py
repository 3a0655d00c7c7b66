"""SentencePiece vocabularies trained on rekindle text, saved as a *pieces directory*.

A pieces directory (what ``rerank vocab train`` writes, ``rerank vocab extend`` reads)::

    spm.model       the SentencePiece model (unigram or BPE), for other tools
    spm.vocab       its pieces and scores, ``piece TAB score`` per line, in id order
    tokenizer.json  the same vocabulary as a Hugging Face ``tokenizers`` pipeline
    pieces.json     specials, casing, normalisation, training options, coverage report

``rerank`` reads ``spm.vocab`` and ``pieces.json`` (so a vocabulary can also be written
by hand, as the tests do); the two tokenizers agree piece for piece.

Normalisation is ours, not SentencePiece's: text is NFKC-normalised, runs of whitespace
become one space, ends are stripped, and (when the target model is uncased) it is
lower-cased; SentencePiece is trained on that text with its own ``identity`` rule. The
same ``tokenizers`` normaliser object feeds SentencePiece and heads ``tokenizer.json``,
so both segment identically (the tests check it) without needing protobuf to carry
SentencePiece's compiled normalisation table across.

The target model's special tokens keep their names: ``[PAD]`` and ``[UNK]`` are
SentencePiece's pad and unknown pieces, ``[CLS] [SEP] [MASK]`` its control symbols
(never produced from text), ids 0..4 in that order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerank.atomic import atomic_path
from rerank.errors import RerankError, input_error
from rerank.tables.columns import TEXT_COLUMNS

__all__ = [
    "META_FILE",
    "SPECIALS",
    "PieceSet",
    "load_pieces",
    "pieces_tokenizer",
    "read_corpus",
    "save_pieces",
    "text_normalizer",
    "train_pieces",
]

ModelType = Literal["unigram", "bpe"]
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens, in the ids they get in a trained vocabulary (0..4)."""
META_FILE = "pieces.json"
SPM_MODEL = "spm.model"
SPM_VOCAB = "spm.vocab"
TABLE_SUFFIXES = (".tsv", ".jsonl", ".parquet", ".tsv.gz", ".jsonl.gz")
WORD_START = "\u2581"  # SentencePiece's word-boundary mark "▁"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class PieceSet:
    """A trained vocabulary: its pieces (id order), scores and how it was made.

    Attributes
    ----------
    path
        The pieces directory.
    pieces, scores
        Piece strings in id order (SentencePiece's ``▁`` marks a word start) and scores.
    model_type
        ``"unigram"`` or ``"bpe"``.
    lowercase
        Whether the text was lower-cased before training (to match an uncased model).
    specials
        Special-token names, ids ``0..len-1``: pad, unk, then control symbols.
    meta
        Everything else ``pieces.json`` holds (corpus summary, coverage report).
    """

    path: Path
    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    model_type: ModelType
    lowercase: bool
    specials: tuple[str, ...] = SPECIALS
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def unk_id(self) -> int:
        return 1

    def normalizer(self) -> Any:
        return text_normalizer(lowercase=self.lowercase)

    def tokenizer(self) -> Any:
        """This vocabulary as a ``tokenizers.Tokenizer`` (see :func:`pieces_tokenizer`)."""
        return pieces_tokenizer(self)


def text_normalizer(*, lowercase: bool) -> Any:
    """NFKC, whitespace runs -> one space, strip, optionally lower-case (a ``tokenizers`` normaliser)."""
    from tokenizers import Regex, normalizers

    steps = [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


def read_corpus(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Texts to train on: unique queries, titles and summaries of tables, lines of text files.

    Query-grouped tables (``.tsv``, ``.jsonl``, ``.parquet``, ``.tsv.gz``, ``.jsonl.gz``)
    give their ``query``, ``title`` and ``summary`` texts, each distinct text once (a query
    repeats on every row of its group); any other file is read as UTF-8 text, one text per
    non-blank line. Order is kept (first occurrence).
    """
    from rerank.data import read_pairs

    texts: dict[str, None] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise input_error(p, "corpus file does not exist")
        if p.name.endswith(TABLE_SUFFIXES):
            frame = read_pairs(p, label_range=None)
            for column in TEXT_COLUMNS:
                texts.update(dict.fromkeys(t for t in frame.get_column(column) if t.strip()))
            continue
        data = p.read_bytes()
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            row = data[: err.start].count(b"\n") + 1
            raise input_error(
                p, f"expected UTF-8 text, got byte {data[err.start]:#04x}", row=row
            ) from err
        texts.update(dict.fromkeys(line for line in lines if line.strip()))
    if not texts:
        raise RerankError(f"{', '.join(map(str, paths))}: the corpus has no text")
    return list(texts)


def train_pieces(
    texts: Iterable[str],
    out: str | os.PathLike[str],
    *,
    size: int,
    model_type: ModelType = "unigram",
    lowercase: bool = True,
    character_coverage: float = 0.9995,
    specials: Sequence[str] = SPECIALS,
    extra: dict[str, Any] | None = None,
    report: Callable[[PieceSet], dict[str, Any]] | None = None,
    progress: Progress = _quiet,
) -> PieceSet:
    """Train a SentencePiece vocabulary of ``size`` pieces and write a pieces directory.

    Parameters
    ----------
    texts
        Training texts (see :func:`read_corpus`).
    out
        The pieces directory to write (atomically: complete or absent).
    size
        Vocabulary size, special tokens included.
    model_type
        ``"unigram"`` (Kudo, 2018; SentencePiece's default) or ``"bpe"``.
    lowercase
        Lower-case before training (use ``True`` for an uncased target model).
    character_coverage
        Share of the corpus characters the vocabulary must cover; the rarest characters
        beyond it become ``[UNK]`` (0.9995 is SentencePiece's advice for Chinese/Japanese).
    specials
        Names of the pad, unk, cls, sep and mask tokens (the target model's), ids 0..4.
    extra
        Stored in ``pieces.json`` under ``"source"`` (corpus files, target model...).
    report
        Called with the trained vocabulary before the directory is moved into place;
        its result is stored in ``pieces.json`` under ``"coverage"``.
    progress
        Called with one-line progress messages.
    """
    specials = tuple(specials)
    _check_training(size, model_type, specials, character_coverage)
    norm = text_normalizer(lowercase=lowercase)
    lines = [n for n in (norm.normalize_str(t) for t in texts) if n]
    if not lines:
        raise RerankError("the corpus has no text left after normalisation")
    progress(
        f"training a {model_type} SentencePiece model of {size:,} pieces on {len(lines):,} texts"
    )
    with atomic_path(out, is_dir=True) as tmp:
        _train_spm(lines, tmp, size, model_type, character_coverage, specials)
        import sentencepiece as spm

        proc = spm.SentencePieceProcessor(model_file=str(tmp / SPM_MODEL))
        pieces = tuple(proc.id_to_piece(i) for i in range(proc.get_piece_size()))
        scores = tuple(float(proc.get_score(i)) for i in range(proc.get_piece_size()))
        meta = {
            "format": 1,
            "model_type": model_type,
            "size": len(pieces),
            "lowercase": lowercase,
            "normalization": "NFKC, whitespace runs -> ' ', strip"
            + (", lowercase" if lowercase else ""),
            "character_coverage": character_coverage,
            "specials": list(specials),
            "training_texts": len(lines),
            "training_characters": sum(len(t) for t in lines),
            "source": dict(extra or {}),
        }
        result = PieceSet(tmp, pieces, scores, model_type, lowercase, specials, meta)
        if report is not None:
            meta["coverage"] = report(result)
        save_pieces(result, tmp)
    return load_pieces(out)


def _check_training(
    size: int, model_type: str, specials: tuple[str, ...], character_coverage: float
) -> None:
    if model_type not in ("unigram", "bpe"):
        raise RerankError(f"--model-type: expected 'unigram' or 'bpe', got '{model_type}'")
    if size <= len(SPECIALS):
        raise RerankError(f"--size: expected more than {len(SPECIALS)} pieces, got {size}")
    if len(specials) != len(SPECIALS) or len(set(specials)) != len(specials):
        raise RerankError(
            f"specials: expected 5 distinct names (pad, unk, cls, sep, mask), got {specials}"
        )
    if not 0.0 < character_coverage <= 1.0:
        raise RerankError(f"character coverage must be in (0, 1], got {character_coverage}")


def _train_spm(
    lines: list[str],
    tmp: Path,
    size: int,
    model_type: str,
    character_coverage: float,
    specials: tuple[str, ...],
) -> None:
    """SentencePiece training into ``tmp/spm.model``: specials at ids 0..4, no BOS/EOS."""
    import sentencepiece as spm

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_prefix=str(tmp / "spm"),
            vocab_size=size,
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name="identity",
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece=specials[0],
            unk_piece=specials[1],
            control_symbols=list(specials[2:]),
            max_sentence_length=1 << 16,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise RerankError(f"--size {size}: SentencePiece refused: {_sp_message(err)}") from err


def save_pieces(pieces: PieceSet, path: str | os.PathLike[str]) -> None:
    """Write ``spm.vocab`` (piece TAB score, full precision), ``tokenizer.json`` and
    ``pieces.json`` into the existing directory ``path`` (``spm.model`` is left as is)."""
    p = Path(path)
    lines = [
        f"{piece}\t{score!r}" for piece, score in zip(pieces.pieces, pieces.scores, strict=True)
    ]
    (p / SPM_VOCAB).write_text("\n".join(lines) + "\n", encoding="utf-8")
    pieces_tokenizer(pieces).save(str(p / "tokenizer.json"))
    meta = {
        **pieces.meta,
        "model_type": pieces.model_type,
        "lowercase": pieces.lowercase,
        "specials": list(pieces.specials),
        "size": len(pieces.pieces),
    }
    (p / META_FILE).write_text(
        json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _sp_message(err: RuntimeError) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    # "Internal: src/trainer_interface.cc(661) [(...)] Vocabulary size too high (9000). Please
    # set it to a value <= 4301." -> keep the sentence after the source location.
    return text.split("] ", 1)[-1].replace("--character_coverage", "--character-coverage")


def load_pieces(path: str | os.PathLike[str]) -> PieceSet:
    """Read a pieces directory (``pieces.json`` and ``spm.vocab``; see the module docstring)."""
    p = Path(path)
    meta_file, vocab_file = p / META_FILE, p / SPM_VOCAB
    if not p.is_dir():
        raise RerankError(f"{p}: pieces directory does not exist")
    if not meta_file.is_file() or not vocab_file.is_file():
        raise RerankError(
            f"{p}: not a pieces directory (expected {META_FILE} and {SPM_VOCAB} from "
            "'rerank vocab train')"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise input_error(meta_file, f"not valid JSON: {err.msg}", row=err.lineno) from err
    pieces, scores = [], []
    for number, line in enumerate(vocab_file.read_text(encoding="utf-8").splitlines(), start=1):
        piece, tab, score = line.rpartition("\t")
        try:
            if not tab or not piece:
                raise ValueError
            scores.append(float(score))
        except ValueError:
            raise input_error(
                vocab_file, f"expected 'piece<TAB>score', got {line!r}", row=number
            ) from None
        pieces.append(piece)
    model_type = meta.get("model_type", "unigram")
    if model_type not in ("unigram", "bpe"):
        raise input_error(meta_file, f"model_type: expected 'unigram' or 'bpe', got {model_type!r}")
    specials = tuple(meta.get("specials", SPECIALS))
    if tuple(pieces[: len(specials)]) != specials:
        raise input_error(vocab_file, f"the first pieces must be the specials {list(specials)}")
    return PieceSet(
        path=p,
        pieces=tuple(pieces),
        scores=tuple(scores),
        model_type=model_type,
        lowercase=bool(meta.get("lowercase", False)),
        specials=specials,
        meta=meta,
    )


def pieces_tokenizer(pieces: PieceSet) -> Any:
    """The vocabulary as a ``tokenizers.Tokenizer`` that segments as SentencePiece does.

    Normaliser (ours) -> Metaspace pre-tokenizer (``▁`` word starts, as SentencePiece's
    dummy prefix and whitespace split) -> Unigram (Viterbi on the piece scores) or BPE
    (merges recovered from the vocabulary order, the way Hugging Face converts
    SentencePiece BPE models) -> BERT's ``[CLS] A [SEP] B [SEP]`` template.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE, Unigram

    if pieces.model_type == "bpe":
        vocab = {p: i for i, p in enumerate(pieces.pieces)}
        model = BPE(
            vocab=vocab,
            merges=_bpe_merges(vocab, skip=set(pieces.specials)),
            unk_token=pieces.specials[1],
            fuse_unk=True,
        )
    else:
        model = Unigram(list(zip(pieces.pieces, pieces.scores, strict=True)), unk_id=pieces.unk_id)
    tok = Tokenizer(model)
    tok.normalizer = pieces.normalizer()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in pieces.specials])
    cls, sep = pieces.specials[2], pieces.specials[3]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, 2), (sep, 3)],
    )
    return tok


def _bpe_merges(vocab: dict[str, int], *, skip: set[str]) -> list[tuple[str, str]]:
    """Merges of a SentencePiece BPE vocabulary: every split of a piece into two pieces,
    ordered by the merged piece's id (SentencePiece lists BPE pieces in merge order)."""
    merges = []
    for piece, rank in vocab.items():
        if piece in skip:
            continue
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab and left not in skip and right not in skip:
                merges.append((rank, vocab[left], vocab[right], left, right))
    merges.sort()
    return [(m[3], m[4]) for m in merges]
