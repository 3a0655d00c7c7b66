"""rerank.dense_layout: sentence-transformers' pooling, checked by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from rerank.dense_layout import POOLING_MODES, pool


@pytest.fixture
def hidden():
    # two texts, three positions, two dims; the second text's last position is padding
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [[1.0, -1.0], [2.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return h, mask


def test_each_pooling_mode_by_hand(hidden):
    h, mask = hidden
    assert pool(h, mask, ["cls"]).tolist() == [[1.0, 2.0], [1.0, -1.0]]
    assert pool(h, mask, ["max"]).tolist() == [[5.0, 6.0], [2.0, 0.0]]
    assert pool(h, mask, ["mean"]).tolist() == [[3.0, 4.0], [1.5, -0.5]]
    sqrt = [[9 / 3**0.5, 12 / 3**0.5], [3 / 2**0.5, -1 / 2**0.5]]
    torch.testing.assert_close(pool(h, mask, ["mean_sqrt_len_tokens"]), torch.tensor(sqrt))
    assert pool(h, mask, ["lasttoken"]).tolist() == [[5.0, 6.0], [2.0, 0.0]]
    # weights 1, 2, 3 by position
    weighted = [[22 / 6, 28 / 6], [5 / 3, -1 / 3]]
    torch.testing.assert_close(pool(h, mask, ["weightedmean"]), torch.tensor(weighted))


def test_modes_concatenate_in_the_order_given(hidden):
    h, mask = hidden
    both = pool(h, mask, ["cls", "mean"])
    assert both.shape == (2, 4)
    assert both[:, :2].tolist() == pool(h, mask, ["cls"]).tolist()
    assert set(POOLING_MODES) >= {"cls", "mean", "max", "lasttoken", "weightedmean"}
