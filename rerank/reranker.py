"""The Python entry point for scoring: :class:`Reranker` (``rerank.Reranker``).

A :class:`Reranker` holds a loaded model and scores (query, document) pairs the way
``rerank score`` does (same truncation, batching and precision default), with the
call shapes of sentence-transformers' ``CrossEncoder``: :meth:`Reranker.score` is
``CrossEncoder.predict`` and :meth:`Reranker.rank` is ``CrossEncoder.rank``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from rerank.errors import RerankError, input_error
from rerank.precision import DEFAULT_PRECISION

__all__ = ["BACKENDS", "Reranker"]

#: Inference backends; ``"auto"`` picks what the directory holds
#: (:func:`rerank.backends.resolve_backend`).
BACKENDS = ("torch", "onnx", "openvino")

_DOCUMENT_ALIASES = ("document", "text", "passage", "doc")


class Reranker:
    """A saved re-ranking model, ready to score (query, document) pairs.

    Build one with :meth:`from_pretrained`. Scores are the model's raw outputs (higher
    is more relevant), the same numbers ``rerank score`` writes for the same pairs.

    Examples
    --------
    >>> import rerank
    >>> ranker = rerank.Reranker.from_pretrained("default")  # doctest: +SKIP
    >>> ranker.score([("wing flutter", "Flutter of wings at high speed")]).shape  # doctest: +SKIP
    (1,)
    """

    def __init__(
        self,
        model: Any,
        *,
        precision: str,
        backend: str = "torch",
        max_length: int | None = None,
        max_query_length: int | None = None,
        encoder: Any = None,
    ) -> None:
        self.model = model  # a RerankModel, or an exported graph (rerank.backends)
        self.encoder = encoder  # the PairEncoder of an exported graph
        self.precision = precision
        self.backend = backend
        self.max_length = max_length
        self.max_query_length = max_query_length

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: str = "auto",
        precision: str = DEFAULT_PRECISION,
        device: str | None = None,
        max_length: int | None = None,
        max_query_length: int | None = None,
        threads: int | None = None,
    ) -> Reranker:
        """Load a saved model directory (``rerank train`` output, or any HF cross-encoder).

        Parameters
        ----------
        path
            A local model directory; ``"default"`` is the bundled all-MiniLM-L6-v2 encoder
            (its ranking head is untrained: fine-tune it first).
        backend
            ``"torch"``, ``"onnx"``, ``"openvino"`` (the graphs ``rerank export`` writes;
            optional extras) or ``"auto"``: what the directory holds, as ``rerank score
            --backend auto`` (:func:`rerank.backends.resolve_backend`).
        precision
            ``"fp32"``, ``"bf16"`` (encoder in bf16, heads in fp32) or ``"auto"``: bf16
            where the device computes it natively, else fp32. The same default as
            ``rerank score --precision`` (:data:`rerank.precision.DEFAULT_PRECISION`).
            ``"int8"``: the int8 graph of an export.
        device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None``: CUDA when available.
        max_length, max_query_length
            Truncation (tokens per pair, tokens of the query); ``None``: the lengths the
            model was trained with, else 256 (at most the model's positions) and 64.
        threads
            CPU threads of an exported graph (``None``: the physical cores).

        Returns
        -------
        Reranker
        """
        if backend not in ("auto", *BACKENDS):
            raise RerankError(
                f"backend: unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}"
            )
        if precision not in ("auto", "fp32", "bf16", "int8"):
            raise RerankError(f"precision: expected fp32, bf16, int8 or auto, got {precision!r}")
        from rerank.backends import resolve_backend
        from rerank.config import resolve_model_path
        from rerank.inference import resolve_device

        resolved = resolve_model_path(path)
        if not resolved.is_dir():
            raise input_error(path, "no such model directory")
        try:
            dev = resolve_device(device)
        except RuntimeError as err:
            raise RerankError(f"device: {str(err).splitlines()[0]}") from None
        kind = resolve_backend(resolved, backend, precision=precision, device=device)
        lengths = {"max_length": max_length, "max_query_length": max_query_length}
        if kind != "torch":
            return cls._exported(resolved, kind, precision, threads, **lengths)
        return cls._torch(resolved, dev, precision, **lengths)

    @classmethod
    def _exported(
        cls,
        path: Any,
        kind: str,
        precision: str,
        threads: int | None,
        *,
        max_length: int | None,
        max_query_length: int | None,
    ) -> Reranker:
        """An exported ONNX / OpenVINO graph with its pair encoder."""
        from rerank.backends import check_primary_score, load_runner, pair_encoder

        check_primary_score(path, None)
        encoder = pair_encoder(
            path, max_length=max_length, max_first_length=max_query_length, clip=True
        )
        runner = load_runner(path, kind, precision=precision, threads=threads)
        return cls(
            runner,
            precision=runner.precision,
            backend=kind,
            max_length=encoder.max_length,
            max_query_length=max_query_length,
            encoder=encoder,
        )

    @classmethod
    def _torch(
        cls,
        path: Any,
        device: Any,
        precision: str,
        *,
        max_length: int | None,
        max_query_length: int | None,
    ) -> Reranker:
        """The PyTorch model; an untrained default length kept within its positions."""
        from rerank.model_dir import default_max_length
        from rerank.precision import resolve_precision
        from rerank.score import load_scoring_model

        model = load_scoring_model(path, device=device)
        if max_length is None and "max_length" not in model.input_lengths:
            fitted = default_max_length(model.encoder.config)
            max_length = fitted if fitted < model.pair_encoder().max_length else None
        encoder = model.pair_encoder(max_length=max_length, max_first_length=max_query_length)
        model.check_max_length(encoder.max_length)
        return cls(
            model,
            precision=resolve_precision(precision, device),
            backend=BACKENDS[0],
            max_length=max_length,
            max_query_length=max_query_length,
        )

    @property
    def device(self) -> str:
        """The device the model runs on, e.g. ``"cpu"``."""
        if self.encoder is not None:  # an exported graph
            return "cpu"
        return str(next(self.model.parameters()).device)

    def __repr__(self) -> str:
        return f"Reranker(backend={self.backend!r}, precision={self.precision!r}, device={self.device!r})"

    # -- scoring -----------------------------------------------------------------------
    def score(
        self,
        pairs: Any,
        *,
        batch_size: int = 64,
        progress: bool = False,
    ) -> np.ndarray:
        """Score (query, document) pairs.

        Parameters
        ----------
        pairs
            A list of ``(query, document)`` or ``(query, title, summary)`` tuples, or a
            polars or pandas DataFrame with a ``query`` column and either ``title`` and/or
            ``summary`` or one document column (``document``, ``text``, ``passage``).
            Other columns (ids, labels) are ignored. A document given as one string is
            scored as a summary with an empty title.
        batch_size
            Pairs per forward pass.
        progress
            Show a progress bar on stderr.

        Returns
        -------
        numpy.ndarray
            float32 scores, one per pair, in input order.

        Examples
        --------
        >>> ranker.score([("what is lift", "Lift of a wing"), ("what is lift", "Jet noise")])  # doctest: +SKIP
        array([ 2.31, -4.02], dtype=float32)
        """
        from rerank.score import score_frame

        if batch_size < 1:
            raise RerankError(f"batch_size: expected a positive integer, got {batch_size}")
        frame = pair_frame(pairs)
        if frame.height == 0:
            return np.empty(0, dtype=np.float32)
        if self.encoder is not None:  # an exported graph: the same core, its forward
            from rerank.inference import exported_forward, score_texts
            from rerank.streaming import progress_bar

            with progress_bar(frame.height, progress) as bar:
                forward = exported_forward(self.model)
                return score_texts(forward, self.encoder, frame, batch_size=batch_size, bar=bar)[
                    :, 0
                ]
        return score_frame(
            self.model,
            frame,
            batch_size=batch_size,
            max_length=self.max_length,
            max_first_length=self.max_query_length,
            precision=self.precision,
            progress=progress,
        )

    def rank(
        self,
        query: str,
        documents: Sequence[Any],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 64,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Rank ``documents`` for ``query``, best first (as ``CrossEncoder.rank``).

        Parameters
        ----------
        query
            The query text.
        documents
            Document texts, or ``(title, summary)`` tuples.
        top_k
            Keep the best ``top_k``; ``None``: all.
        return_documents
            Add each document under ``"text"``.

        Returns
        -------
        list of dict
            ``{"corpus_id": index into documents, "score": float}`` (and ``"text"``),
            sorted by descending score; ties keep the input order.

        Examples
        --------
        >>> ranker.rank("what is lift", ["Jet noise", "Lift of a wing"], top_k=1)  # doctest: +SKIP
        [{'corpus_id': 1, 'score': 2.31}]
        """
        if not isinstance(query, str):
            raise input_error(None, f"query: expected a string, got {type(query).__name__}")
        if isinstance(documents, (str, bytes, dict)) or not hasattr(documents, "__iter__"):
            raise input_error(
                None, f"documents: expected a list of texts, got {type(documents).__name__}"
            )
        documents = list(documents)  # a pandas Series, a numpy array, a generator...
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise RerankError(f"top_k: expected a positive integer or None, got {top_k!r}")
        pairs = []
        for i, doc in enumerate(documents):
            if isinstance(doc, str):
                pairs.append((query, doc))
            elif isinstance(doc, (tuple, list)) and len(doc) == 2:
                pairs.append((query, *doc))
            else:
                raise input_error(
                    None,
                    f"documents[{i}]: expected a text or a (title, summary) tuple, "
                    f"got {type(doc).__name__}",
                )
        if len({len(p) for p in pairs}) > 1:
            raise RerankError("documents: mix of texts and (title, summary) tuples; use one")
        scores = self.score(pairs, batch_size=batch_size, progress=progress)
        order = np.argsort(-scores, kind="stable")[:top_k]
        out = []
        for i in order.tolist():
            item: dict[str, Any] = {"corpus_id": i, "score": float(scores[i])}
            if return_documents:
                item["text"] = documents[i]
            out.append(item)
        return out


def pair_frame(pairs: Any) -> pl.DataFrame:
    """``query, title, summary`` (strings) from tuples or a polars/pandas frame.

    Raises :class:`RerankError` with a one-line message for anything else.

    Examples
    --------
    >>> pair_frame([("q", "a document")]).rows()
    [('q', '', 'a document')]
    >>> pair_frame([("q", "a title", "a summary")]).rows()
    [('q', 'a title', 'a summary')]
    """
    if isinstance(pairs, (pl.DataFrame, pl.LazyFrame)) or hasattr(pairs, "columns"):
        from rerank.data import as_polars

        return _frame_texts(as_polars(pairs, "pairs"))
    if isinstance(pairs, (str, bytes, dict)) or not hasattr(pairs, "__iter__"):
        raise input_error(
            None,
            "pairs: expected a list of (query, document) tuples or a polars/pandas "
            f"DataFrame, got {type(pairs).__name__}",
        )
    pairs = [tuple(p) if isinstance(p, np.ndarray) else p for p in pairs]  # numpy rows too
    width = None
    rows = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) not in (2, 3):
            got = f"{len(pair)} values" if isinstance(pair, (tuple, list)) else type(pair).__name__
            raise input_error(
                None,
                f"pairs[{i}]: expected a (query, document) or (query, title, summary) "
                f"tuple, got {got}",
            )
        if width is None:
            width = len(pair)
        elif len(pair) != width:
            raise input_error(None, f"pairs[{i}]: {len(pair)} values, but pairs[0] has {width}")
        for k, value in enumerate(pair):
            if value is not None and not isinstance(value, str):
                raise input_error(
                    None, f"pairs[{i}][{k}]: expected a string, got {type(value).__name__}"
                )
        query = pair[0]
        if query is None or not query.strip():
            raise input_error(None, f"pairs[{i}]: expected a non-empty query text, got {query!r}")
        title, summary = ("", pair[1]) if width == 2 else (pair[1], pair[2])
        rows.append((query, title or "", summary or ""))
    return pl.DataFrame(rows, schema=["query", "title", "summary"], orient="row")


def _frame_texts(frame: pl.DataFrame) -> pl.DataFrame:
    """``query, title, summary`` of a pairs frame, checked as the table readers check them
    (:mod:`rerank.tables.checks`: a non-blank query, text columns, nulls as ``""``)."""
    from rerank.tables import checks
    from rerank.tables.files import Source

    if "query" not in frame.columns:
        raise input_error(
            None, f"the pairs frame: missing column 'query'; found columns: {frame.columns}"
        )
    documents = [c for c in ("title", "summary") if c in frame.columns]
    renamed = {}
    if not documents:
        found = next((c for c in _DOCUMENT_ALIASES if c in frame.columns), None)
        if found is None:
            raise input_error(
                None,
                "the pairs frame: missing document column: expected 'title' and/or "
                f"'summary', or one of {', '.join(map(repr, _DOCUMENT_ALIASES))}; "
                f"found columns: {frame.columns}",
            )
        documents, renamed = [found], {found: "summary"}
    raw = frame.select("query", *documents)
    source = Source("the pairs frame", "frame")
    typed = {"query": checks.as_query_text(raw, source)}
    typed |= {c: checks.as_text(raw, c, source) for c in documents}
    out = checks.validated(raw, typed, source).rename(renamed)
    return out.select(
        pl.col(c) if c in out.columns else pl.lit("", dtype=pl.String).alias(c)
        for c in ("query", "title", "summary")
    )
