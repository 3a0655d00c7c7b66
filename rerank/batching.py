"""Query groups -> padded token tensors: list sampling, length bucketing, sharding.

:class:`GroupedData` tokenizes a query-grouped frame *once* (flat int32 token arrays and
row offsets; no per-step tokenization) and keeps the per-row training targets.
:class:`GroupBatcher` turns it into batches of whole query groups:

1. **Eligible groups.** With ``skip_single_level`` (every loss term is pairwise on the
   labels), queries whose candidates all share one label contribute nothing and are
   skipped; :attr:`GroupBatcher.skipped` counts them. Pointwise and distillation
   objectives keep them.
2. **Per epoch** (a pure function of ``(seed, epoch)``): the group order is shuffled,
   and a group with more than ``list_size`` candidates is sampled down to ``list_size``
   rows keeping label diversity (one row of the highest and one of the lowest label
   present, the rest drawn at random). So memory per batch is bounded by
   ``groups_per_batch * list_size`` rows whatever the size of a query.
3. **Length bucketing**: consecutive pools of ``bucket_size`` batches' worth of groups
   are sorted by their longest sampled input and cut into batches (at most
   ``groups_per_batch`` groups and, with ``max_tokens``, at most that many padded
   tokens), then the batches of the epoch are shuffled. Groups of similar length end up
   together, so little compute goes to padding.
4. **Sharding** (DDP): rank ``r`` of ``W`` takes batches ``r, r + W, ...`` of the epoch
   plan, disjoint groups; every rank gets the same number of batches per epoch.

The table comes tokenized once (:class:`rerank.grouped_data.GroupedData`).
A batch is addressed by its data position ``(epoch, index)``; iteration can start at any
position, which is how a resumed run continues exactly where it stopped.

Batches are padded to their longest input (rounded up to a multiple of 8). Rows of a
batch are the concatenated groups; ``index [groups, list_len]`` points into the rows
and ``mask`` marks the real entries, so a list loss reads ``scores[index]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rerank.encoding import padded_width
from rerank.errors import RerankError
from rerank.grouped_data import GroupedData, pad_rows

__all__ = ["Batch", "GroupBatcher", "GroupedData", "pad_rows"]

# transform(inputs, step=...) -> inputs: e.g. rerank.training.masking.MlmMasking
Transform = Callable[..., dict[str, Any]]


@dataclass
class Batch:
    """One training batch of whole query groups.

    Attributes
    ----------
    inputs
        Model inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids``)
        ``[rows, seq]``, plus whatever a transform added (e.g. ``mlm_positions``).
    index, mask
        ``[groups, list_len]``: row of each list entry, and ``False`` on padding.
    targets
        Column -> per-row float tensor ``[rows]`` (or ``[rows, C]``).
    query_ids, doc_ids
        Per group / per row, for logging.
    epoch, position
        Data position of this batch (position = per-rank batch index in the epoch).
    """

    inputs: dict[str, torch.Tensor]
    index: torch.Tensor
    mask: torch.Tensor
    targets: dict[str, torch.Tensor]
    query_ids: list[str]
    doc_ids: list[str]
    epoch: int = 0
    position: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.inputs["input_ids"].shape[0])

    def grouped(self, values: torch.Tensor) -> torch.Tensor:
        """Per-row ``[rows, ...]`` -> per-list ``[groups, list_len, ...]`` (padding arbitrary)."""
        return values[self.index]

    def to(self, device: torch.device | str) -> Batch:
        """A copy on ``device``; inputs that are one tensor stay one tensor (MLM sharing)."""
        moved: dict[int, torch.Tensor] = {}
        move = {}
        for k, v in self.inputs.items():
            if id(v) not in moved:
                moved[id(v)] = v.to(device, non_blocking=True)
            move[k] = moved[id(v)]
        targets = {k: v.to(device, non_blocking=True) for k, v in self.targets.items()}
        return Batch(
            move,
            self.index.to(device),
            self.mask.to(device),
            targets,
            self.query_ids,
            self.doc_ids,
            self.epoch,
            self.position,
            self.stats,
        )


class GroupBatcher:
    """Deterministic, resumable batches of whole query groups (see the module docstring).

    Parameters
    ----------
    data
        The pre-tokenized groups.
    list_size
        Most rows kept of one group per batch.
    groups_per_batch
        Most groups per batch.
    max_tokens
        Optional budget of padded tokens per batch (rows x padded length); 0: none.
    bucket_size
        Batches' worth of groups sorted by length together; 1 disables bucketing.
    seed
        With the epoch, fixes group order, list sampling and batch order.
    stratify_by
        Target column that list sampling keeps diverse (``None``: plain random sampling).
    skip_single_level
        Skip groups whose ``stratify_by`` values are all equal (pairwise-only objectives).
    rank, world_size
        DDP shard of this process.
    transform
        Called on every collated batch's inputs as ``transform(inputs, step=serial)``,
        where ``serial`` is unique to the batch and identical on every run (so seeded
        transforms such as MLM masking are resumable).
    """

    def __init__(
        self,
        data: GroupedData,
        *,
        list_size: int,
        groups_per_batch: int,
        max_tokens: int = 0,
        bucket_size: int = 32,
        seed: int = 0,
        stratify_by: str | None = "label",
        skip_single_level: bool = False,
        rank: int = 0,
        world_size: int = 1,
        transform: Transform | None = None,
    ):
        if list_size < 1 or groups_per_batch < 1 or bucket_size < 1:
            raise RerankError("GroupBatcher: list_size, groups_per_batch, bucket_size must be >= 1")
        if not 0 <= rank < world_size:
            raise RerankError(f"GroupBatcher: rank {rank} outside world size {world_size}")
        self.data = data
        self.list_size = list_size
        self.groups_per_batch = groups_per_batch
        self.max_tokens = max_tokens
        self.bucket_size = bucket_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.transform = transform
        strata = data.targets.get(stratify_by) if stratify_by else None
        self.strata = strata if strata is not None and strata.ndim == 1 else None
        keep = np.ones(data.n_groups, dtype=bool)
        if skip_single_level and data.n_groups:
            if self.strata is None:
                raise RerankError(f"GroupBatcher: no target column '{stratify_by}' to skip by")
            keep &= self._levels() > 1
        self.groups = np.flatnonzero(keep)
        self.skipped = data.n_groups - len(self.groups)
        if len(self.groups) < world_size:
            raise RerankError(
                f"training data: {len(self.groups)} usable query group(s), fewer than the "
                f"{world_size} process(es)"
                + (f" ({self.skipped} skipped: a single label level)" if self.skipped else "")
            )

    def _levels(self) -> np.ndarray:
        """Whether each group has one (1) or several (2) stratum values, vectorised."""
        offsets = self.data.group_offsets  # groups are never empty (group_queries)
        lo = np.minimum.reduceat(self.strata, offsets[:-1])
        hi = np.maximum.reduceat(self.strata, offsets[:-1])
        return np.where(hi > lo, 2, 1)

    # -- planning -------------------------------------------------------------------
    def _sample(self, group: int, rng: np.random.Generator) -> np.ndarray:
        start, stop = self.data.group_offsets[group], self.data.group_offsets[group + 1]
        n = int(stop - start)
        if n <= self.list_size:
            return np.arange(start, stop)
        k = self.list_size
        if self.strata is not None and k >= 2:
            values = self.strata[start:stop]
            hi, lo = np.flatnonzero(values == values.max()), np.flatnonzero(values == values.min())
            if len(hi) < n:  # at least two levels: keep one of the highest and the lowest
                first = np.array([rng.choice(hi), rng.choice(lo)])
                rest = np.delete(np.arange(n), first)
                chosen = np.concatenate([first, rng.choice(rest, k - 2, replace=False)])
                return start + np.sort(chosen)
        return start + np.sort(rng.choice(n, k, replace=False))

    def plan(self, epoch: int) -> list[list[np.ndarray]]:
        """All batches of ``epoch`` (every rank's): lists of per-group row indices."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.groups)
        lists = [self._sample(int(g), rng) for g in order]
        lengths = self.data.lengths
        longest = np.array([int(lengths[rows].max()) for rows in lists], dtype=np.int64)
        pool = self.bucket_size * self.groups_per_batch
        batches: list[list[np.ndarray]] = []
        for p in range(0, len(lists), pool):
            idx = np.arange(p, min(p + pool, len(lists)))
            if self.bucket_size > 1:
                idx = idx[np.argsort(-longest[idx], kind="stable")]
            batches.extend(self._cut(idx, lists, longest))
        if self.bucket_size > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _cut(
        self, idx: np.ndarray, lists: list[np.ndarray], longest: np.ndarray
    ) -> Iterator[list[np.ndarray]]:
        current: list[np.ndarray] = []
        rows = width = 0
        for i in idx:
            n, w = len(lists[i]), padded_width(int(longest[i]))
            over_budget = self.max_tokens and (rows + n) * max(width, w) > self.max_tokens
            if current and (len(current) == self.groups_per_batch or over_budget):
                yield current
                current, rows, width = [], 0, 0
            current.append(lists[i])
            rows, width = rows + n, max(width, w)
        if current:
            yield current

    def batches_per_epoch(self, epoch: int = 0) -> int:
        """Batches each rank gets in ``epoch``."""
        return len(self.plan(epoch)) // self.world_size

    # -- iteration ------------------------------------------------------------------
    def iter_from(self, epoch: int = 0, position: int = 0) -> Iterator[Batch]:
        """Batches of this rank forever, starting at data position ``(epoch, position)``."""
        while True:
            plan = self.plan(epoch)
            per_rank = len(plan) // self.world_size
            if per_rank == 0:
                raise RerankError(
                    f"training data: {len(plan)} batch(es) an epoch, fewer than the "
                    f"{self.world_size} processes; lower data.groups_per_batch"
                )
            for k in range(position, per_rank):
                serial = epoch * 10_000_019 + k * self.world_size + self.rank
                yield self.collate(plan[k * self.world_size + self.rank], epoch, k, serial)
            epoch, position = epoch + 1, 0

    def collate(
        self, lists: list[np.ndarray], epoch: int = 0, position: int = 0, serial: int = 0
    ) -> Batch:
        """Pad the given per-group rows into a :class:`Batch`."""
        data = self.data
        rows = np.concatenate(lists)
        inputs = pad_rows(data, rows)
        list_len = max(len(x) for x in lists)
        sizes = np.array([len(x) for x in lists])
        mask = np.arange(list_len)[None, :] < sizes[:, None]
        index = np.zeros((len(lists), list_len), dtype=np.int64)
        index[mask] = np.arange(len(rows))
        if self.transform is not None:
            inputs = self.transform(inputs, step=serial)
        group_ids = np.searchsorted(data.group_offsets, [x[0] for x in lists], side="right") - 1
        return Batch(
            inputs=inputs,
            index=torch.from_numpy(index),
            mask=torch.from_numpy(mask),
            targets={k: torch.from_numpy(v[rows]) for k, v in data.targets.items()},
            query_ids=[data.query_ids[g] for g in group_ids],
            doc_ids=data.doc_ids[rows].tolist(),
            epoch=epoch,
            position=position,
            stats={
                "tokens": int(inputs["attention_mask"].sum()),
                "padded_tokens": int(inputs["input_ids"].numel()),
            },
        )
