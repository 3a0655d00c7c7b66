"""A query-grouped table tokenized once: flat token arrays, row and group offsets, targets.

:class:`GroupedData` is what the training loop samples batches from
(:class:`rerank.batching.GroupBatcher`) and what its evaluation scores
(:mod:`rerank.training.evaluation`); :func:`pad_rows` turns any of its rows into padded
model inputs (to the longest row, rounded up to a multiple of 8).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from rerank.encoding import PairEncoder, padded_width
from rerank.errors import RerankError
from rerank.grouping import group_queries
from rerank.tables.columns import PAIRS

__all__ = ["GroupedData", "pad_rows"]

_CHUNK_ROWS = 4096


@dataclass
class GroupedData:
    """A query-grouped table, tokenized once.

    Attributes
    ----------
    tokens, token_types
        Flat int32 token ids and int8 token type ids of all rows.
    row_offsets
        int64 ``[n_rows + 1]``: row ``i``'s tokens are ``tokens[row_offsets[i]:row_offsets[i+1]]``.
    group_offsets
        int64 ``[n_groups + 1]``: group ``q``'s rows are ``group_offsets[q]:group_offsets[q+1]``.
    targets
        Column name -> float32 ``[n_rows]`` (or ``[n_rows, C]`` for list columns).
    query_ids, doc_ids
        Per group / per row identifiers.
    """

    tokens: np.ndarray
    token_types: np.ndarray
    row_offsets: np.ndarray
    group_offsets: np.ndarray
    targets: dict[str, np.ndarray]
    query_ids: list[str]
    doc_ids: np.ndarray
    pad_id: int = 0
    uses_token_types: bool = True

    @property
    def n_rows(self) -> int:
        return len(self.row_offsets) - 1

    @property
    def n_groups(self) -> int:
        return len(self.group_offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_offsets)

    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        encoder: PairEncoder,
        *,
        targets: Sequence[str] = (),
        source: str = "training data",
        single: bool = False,
    ) -> GroupedData:
        """Tokenize ``frame`` (``query_id, doc_id, query, title, summary`` + targets).

        Rows are grouped by query (stable; no sort when already contiguous). ``single``
        encodes the query alone (single-sentence tasks: GLUE CoLA, SST-2).
        """
        need = [*PAIRS, *targets]
        missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
        if missing:
            raise RerankError(
                f"{source}: missing column(s) {', '.join(repr(c) for c in missing)} "
                f"(have {', '.join(frame.columns)})"
            )
        groups = group_queries(frame.get_column("query_id").cast(pl.String))
        if groups.order is not None:
            frame = frame[groups.order]
        ids: list[np.ndarray] = []
        types: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        for start in range(0, frame.height, _CHUNK_ROWS):
            chunk = frame.slice(start, _CHUNK_ROWS)
            enc = encoder.encode(
                chunk.get_column("query").to_list(),
                None
                if single
                else list(
                    zip(
                        chunk["title"].fill_null("").to_list(),
                        chunk["summary"].fill_null("").to_list(),
                        strict=True,
                    )
                ),
            )
            lengths.append(np.fromiter((len(x) for x in enc.input_ids), np.int64, len(enc)))
            ids.append(np.fromiter(itertools.chain.from_iterable(enc.input_ids), np.int32))
            types.append(np.fromiter(itertools.chain.from_iterable(enc.token_type_ids), np.int8))
        row_offsets = np.zeros(frame.height + 1, dtype=np.int64)
        if frame.height:
            np.cumsum(np.concatenate(lengths), out=row_offsets[1:])
        return cls(
            tokens=np.concatenate(ids) if ids else np.zeros(0, np.int32),
            token_types=np.concatenate(types) if types else np.zeros(0, np.int8),
            row_offsets=row_offsets,
            group_offsets=groups.offsets.astype(np.int64),
            targets={t: _target_array(frame, t, source) for t in dict.fromkeys(targets)},
            query_ids=groups.query_ids.cast(pl.String).to_list(),
            doc_ids=frame.get_column("doc_id").cast(pl.String).to_numpy(),
            pad_id=encoder.pad_id,
            uses_token_types=encoder.uses_token_types,
        )


def _target_array(frame: pl.DataFrame, name: str, source: str) -> np.ndarray:
    column = frame.get_column(name)
    if column.null_count():
        row = int(column.is_null().arg_max() or 0) + 1
        raise RerankError(f"{source}: row {row}: column '{name}': missing value")
    if isinstance(column.dtype, pl.List | pl.Array):
        return np.asarray(column.to_list(), dtype=np.float32)
    if not column.dtype.is_numeric():
        raise RerankError(f"{source}: column '{name}': expected numbers, got {column.dtype}")
    return column.cast(pl.Float32).to_numpy().copy()


def pad_rows(data: GroupedData, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Model inputs for the given rows, padded to the longest (rounded up to 8)."""
    starts = data.row_offsets[rows]
    lengths = data.row_offsets[rows + 1] - starts
    width = padded_width(int(lengths.max()))
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    gather = (starts[:, None] + cols[None, :])[valid]
    ids = np.full((len(rows), width), data.pad_id, dtype=np.int64)
    ids[valid] = data.tokens[gather]
    inputs = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(valid.astype(np.int64)),
    }
    if data.uses_token_types:
        types = np.zeros((len(rows), width), dtype=np.int64)
        types[valid] = data.token_types[gather]
        inputs["token_type_ids"] = torch.from_numpy(types)
    return inputs
