"""The training batches of one process: whole query groups from :mod:`rerank.batching`."""

from __future__ import annotations

import logging

from rerank.batching import GroupBatcher, GroupedData, Transform
from rerank.config import Config
from rerank.losses import LOSSES
from rerank.training.processes import Dist

__all__ = ["make_batcher"]

log = logging.getLogger(__name__)


def make_batcher(
    cfg: Config, data: GroupedData, dist: Dist, *, targets: list[str], transform: Transform | None
) -> GroupBatcher:
    """Query-group batches for this process; single-level queries are skipped (and logged)
    only when every objective term is pairwise on the stratified target."""
    has_mlm = any(t.loss == "mlm" for t in cfg.objective)
    list_terms = [t for t in cfg.objective if LOSSES[t.loss].kind == "list"]
    stratify = "label" if "label" in targets else (list_terms[0].target if list_terms else None)
    pairwise_only = not has_mlm and all(
        LOSSES[t.loss].needs_label_pairs and t.target == stratify for t in cfg.objective
    )
    batcher = GroupBatcher(
        data,
        list_size=cfg.data.list_size,
        groups_per_batch=cfg.data.groups_per_batch,
        max_tokens=cfg.data.max_tokens,
        bucket_size=cfg.data.bucket_size,
        seed=cfg.train.seed,
        stratify_by=stratify,
        skip_single_level=pairwise_only,
        rank=dist.rank,
        world_size=dist.world,
        transform=transform,
    )
    if batcher.skipped and dist.main:
        log.warning(
            "%d of %d queries have a single label level and are skipped (no pairs to rank)",
            batcher.skipped,
            data.n_groups,
        )
    return batcher
