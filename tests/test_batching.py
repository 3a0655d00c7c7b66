"""Batching invariants: whole groups, diverse lists, skips, bounded memory, resumable order."""

from __future__ import annotations

import tracemalloc

import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoTokenizer

from rerank.batching import GroupBatcher, GroupedData
from rerank.encoding import PairEncoder

WORDS = "flow heat wing pressure boundary layer plate shock wave theory speed lift".split()


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    return PairEncoder(AutoTokenizer.from_pretrained(str(tiny_model_dir)), max_length=32)


def make_frame(sizes, *, seed=0, labels=None, single_level=()):
    """Groups q0, q1, ... of the given sizes with random texts; labels 0..4."""
    rng = np.random.default_rng(seed)
    rows = []
    for q, size in enumerate(sizes):
        for d in range(size):
            n_words = int(rng.integers(1, 12))
            label = 1 if q in single_level else int(rng.integers(0, 5))
            rows.append(
                {
                    "query_id": f"q{q}",
                    "doc_id": f"d{q}-{d}",
                    "query": " ".join(rng.choice(WORDS, 2)),
                    "title": " ".join(rng.choice(WORDS, 2)),
                    "summary": " ".join(rng.choice(WORDS, n_words)),
                    "label": label,
                    "teacher:t1": float(rng.normal()),
                }
            )
    return pl.DataFrame(rows)


def test_batches_hold_whole_groups_and_index_points_at_their_rows(encoder):
    data = GroupedData.from_frame(make_frame([5, 3, 7, 2, 4, 6, 1]), encoder, targets=["label"])
    batcher = GroupBatcher(data, list_size=8, groups_per_batch=3, bucket_size=2, seed=1)
    seen = []
    for batch in batcher.iter_from(0, 0):
        if batch.epoch > 0:
            break
        seen.extend(batch.query_ids)
        assert len(set(batch.query_ids)) == len(batch.query_ids) <= 3
        ids = batch.inputs["input_ids"]
        assert ids.shape[1] % 8 == 0
        assert torch.equal(batch.inputs["attention_mask"].sum(1), (ids != 0).sum(1))
        for g, qid in enumerate(batch.query_ids):
            rows = batch.index[g][batch.mask[g]]
            q = data.query_ids.index(qid)
            size = data.group_offsets[q + 1] - data.group_offsets[q]
            assert len(rows) == size  # list_size 8 keeps every group whole
            assert all(batch.doc_ids[r].startswith(f"d{qid[1:]}-") for r in rows.tolist())
        assert batch.mask.sum() == batch.n_rows
    assert sorted(seen) == sorted(data.query_ids)


def test_list_sampling_keeps_the_highest_and_lowest_label(encoder):
    frame = make_frame([40, 30])
    data = GroupedData.from_frame(frame, encoder, targets=["label"])
    batcher = GroupBatcher(data, list_size=3, groups_per_batch=2, seed=0)
    for epoch in range(20):
        for lists in batcher.plan(epoch):
            for rows in lists:
                assert len(rows) == 3 and len(set(rows.tolist())) == 3
                q = np.searchsorted(data.group_offsets, rows[0], side="right") - 1
                group = data.targets["label"][data.group_offsets[q] : data.group_offsets[q + 1]]
                got = data.targets["label"][rows]
                assert got.max() == group.max() and got.min() == group.min()


def test_single_level_groups_skipped_for_pairwise_kept_otherwise(encoder):
    data = GroupedData.from_frame(
        make_frame([4, 3, 5, 1], single_level=(1,)), encoder, targets=["label"]
    )
    pairwise = GroupBatcher(data, list_size=4, groups_per_batch=8, skip_single_level=True)
    # q1 has one level; q3 has a single row, so also one level
    assert pairwise.skipped == 2
    assert sorted(data.query_ids[g] for g in pairwise.groups) == ["q0", "q2"]
    pointwise = GroupBatcher(data, list_size=4, groups_per_batch=8)
    assert pointwise.skipped == 0 and len(pointwise.groups) == 4


def test_memory_stays_bounded_for_a_query_with_10000_candidates():
    n, length = 10_000, 64
    data = GroupedData(
        tokens=np.ones(n * length, dtype=np.int32),
        token_types=np.zeros(n * length, dtype=np.int8),
        row_offsets=np.arange(n + 1, dtype=np.int64) * length,
        group_offsets=np.array([0, n], dtype=np.int64),
        targets={"label": (np.arange(n) % 5).astype(np.float32)},
        query_ids=["big"],
        doc_ids=np.array([f"d{i}" for i in range(n)]),
    )
    batcher = GroupBatcher(data, list_size=16, groups_per_batch=4, seed=0)
    tracemalloc.start()
    batches = [b for _, b in zip(range(3), batcher.iter_from(0, 0), strict=False)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for batch in batches:
        assert batch.inputs["input_ids"].shape == (16, 64)
        labels = batch.targets["label"]
        assert labels.max() == 4 and labels.min() == 0
    # a padded copy of the whole group would be 10,000 x 64 x 8 bytes = 5 MB per tensor
    assert peak < 1_000_000


def test_deterministic_and_resumable_from_any_position(encoder):
    data = GroupedData.from_frame(
        make_frame(list(range(1, 15)), seed=3), encoder, targets=["label"]
    )
    make = lambda: GroupBatcher(data, list_size=4, groups_per_batch=2, bucket_size=3, seed=7)  # noqa: E731
    per_epoch = make().batches_per_epoch()
    full = [b for _, b in zip(range(3 * per_epoch), make().iter_from(0, 0), strict=False)]
    again = [b for _, b in zip(range(3 * per_epoch), make().iter_from(0, 0), strict=False)]
    start = per_epoch + 2
    resumed = [b for _, b in zip(range(len(full) - start), make().iter_from(1, 2), strict=False)]
    for a, b in zip(full, again, strict=True):
        assert torch.equal(a.inputs["input_ids"], b.inputs["input_ids"]) and a.doc_ids == b.doc_ids
    for a, b in zip(full[start:], resumed, strict=True):
        assert (a.epoch, a.position) == (b.epoch, b.position)
        assert torch.equal(a.inputs["input_ids"], b.inputs["input_ids"]) and a.doc_ids == b.doc_ids
    # epochs differ in order (shuffled per epoch)
    assert [b.query_ids for b in full[:per_epoch]] != [
        b.query_ids for b in full[per_epoch : 2 * per_epoch]
    ]


def test_ranks_take_disjoint_groups_and_equal_batch_counts(encoder):
    data = GroupedData.from_frame(make_frame([3] * 11), encoder, targets=["label"])
    shards = [
        GroupBatcher(data, list_size=4, groups_per_batch=2, seed=5, rank=r, world_size=2)
        for r in (0, 1)
    ]
    counts = [s.batches_per_epoch() for s in shards]
    assert counts == [3, 3]  # 6 batches of 2 (5 full + 1 single) split over 2 ranks
    got = [[b for _, b in zip(range(3), s.iter_from(0, 0), strict=False)] for s in shards]
    q0 = {q for b in got[0] for q in b.query_ids}
    q1 = {q for b in got[1] for q in b.query_ids}
    assert not q0 & q1 and len(q0 | q1) == 11


def test_length_bucketing_reduces_padding(encoder):
    rng = np.random.default_rng(0)
    frame = make_frame([2] * 64, seed=1)
    summaries = [" ".join(["wing"] * int(rng.integers(1, 25))) for _ in range(frame.height)]
    frame = frame.with_columns(pl.Series("summary", summaries))
    data = GroupedData.from_frame(frame, encoder, targets=["label"])

    def padded(bucket_size):
        b = GroupBatcher(data, list_size=2, groups_per_batch=4, bucket_size=bucket_size, seed=0)
        return sum(b.collate(lists).stats["padded_tokens"] for lists in b.plan(0))

    assert padded(16) < 0.9 * padded(1)


def test_token_budget_caps_padded_tokens(encoder):
    data = GroupedData.from_frame(make_frame([6] * 20, seed=2), encoder, targets=["label"])
    batcher = GroupBatcher(data, list_size=6, groups_per_batch=100, max_tokens=400, seed=0)
    plan = batcher.plan(0)
    assert sum(len(b) for b in plan) == 20
    for lists in plan:
        batch = batcher.collate(lists)
        assert batch.stats["padded_tokens"] <= 400 or len(lists) == 1


def test_transform_hook_sees_every_collated_batch_with_a_stable_serial(encoder):
    data = GroupedData.from_frame(make_frame([2, 3, 4]), encoder, targets=["label"])
    calls = []

    def transform(inputs, *, step):
        calls.append(step)
        return {**inputs, "extra": inputs["input_ids"] + 1}

    batcher = GroupBatcher(data, list_size=4, groups_per_batch=1, seed=0, transform=transform)
    batch = next(batcher.iter_from(1, 1))
    assert torch.equal(batch.inputs["extra"], batch.inputs["input_ids"] + 1)
    next(
        GroupBatcher(data, list_size=4, groups_per_batch=1, seed=0, transform=transform).iter_from(
            1, 1
        )
    )
    assert calls[0] == calls[1]


def test_moving_a_batch_keeps_shared_inputs_shared(encoder):
    data = GroupedData.from_frame(make_frame([2, 3]), encoder, targets=["label"])

    def share(inputs, *, step):  # what MLM masking in one pass does
        return {**inputs, "mlm_input_ids": inputs["input_ids"]}

    batch = next(GroupBatcher(data, list_size=4, groups_per_batch=2, transform=share).iter_from())
    moved = batch.to("meta")
    assert moved.inputs["input_ids"].device.type == "meta"
    assert moved.inputs["mlm_input_ids"] is moved.inputs["input_ids"]
    assert moved.inputs["attention_mask"] is not moved.inputs["input_ids"]
