"""rerank.grouped_data: a query-grouped table tokenized once, and its padded rows."""

from __future__ import annotations

import numpy as np
import pytest
from test_batching import encoder, make_frame  # noqa: F401 (the module's fixture)

from rerank.errors import RerankError
from rerank.grouped_data import GroupedData, pad_rows


def test_pretokenized_rows_match_the_encoder_and_groups_are_made_contiguous(encoder):  # noqa: F811
    frame = make_frame([3, 2])
    shuffled = frame[[3, 0, 4, 1, 2]]  # q1, q0, q1, q0, q0
    data = GroupedData.from_frame(shuffled, encoder, targets=["label", "teacher:t1"])
    assert data.query_ids == ["q1", "q0"]
    assert data.group_offsets.tolist() == [0, 2, 5]
    regrouped = shuffled[[0, 2, 1, 3, 4]]
    expect = encoder.encode(
        regrouped["query"].to_list(),
        list(zip(regrouped["title"], regrouped["summary"], strict=True)),
    )
    for i in range(data.n_rows):
        a, b = data.row_offsets[i], data.row_offsets[i + 1]
        assert data.tokens[a:b].tolist() == expect.input_ids[i]
        assert data.token_types[a:b].tolist() == expect.token_type_ids[i]
    assert data.doc_ids.tolist() == regrouped["doc_id"].to_list()
    assert data.targets["label"].dtype == np.float32
    assert data.targets["teacher:t1"].tolist() == pytest.approx(regrouped["teacher:t1"].to_list())


def test_missing_target_column_is_a_user_error(encoder):  # noqa: F811
    with pytest.raises(RerankError, match=r"train.parquet: missing column\(s\) 'teacher:t2'"):
        GroupedData.from_frame(
            make_frame([2]), encoder, targets=["teacher:t2"], source="train.parquet"
        )


def test_pad_rows_pads_to_a_multiple_of_8_with_the_pad_id(encoder):  # noqa: F811
    data = GroupedData.from_frame(make_frame([3, 2]), encoder, targets=["label"])
    rows = np.array([4, 0])
    inputs = pad_rows(data, rows)
    lengths = np.diff(data.row_offsets)[rows]
    assert inputs["input_ids"].shape == (2, -(-int(lengths.max()) // 8) * 8)
    assert inputs["attention_mask"].sum(dim=1).tolist() == lengths.tolist()
    a, b = data.row_offsets[4], data.row_offsets[5]
    assert inputs["input_ids"][0, : b - a].tolist() == data.tokens[a:b].tolist()
    assert (inputs["input_ids"][0, b - a :] == data.pad_id).all()
