"""Fusion with the dense expert and paired comparisons of cycle rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rerank.errors import RerankError
from rerank.rekindle.baselines import choose_fusion_weight, fuse, paired_rows, per_query


def scores(path, values):
    frame = pl.DataFrame(
        {
            "query_id": ["q1"] * 3 + ["q2"] * 3,
            "doc_id": ["a", "b", "c"] * 2,
            "score": [float(v) for v in values],
        }
    )
    frame.write_parquet(path)
    return path


def labels(path):
    pl.DataFrame(
        {
            "query_id": ["q1"] * 3 + ["q2"] * 3,
            "doc_id": ["a", "b", "c"] * 2,
            "query": ["x"] * 6,
            "title": ["t"] * 6,
            "summary": ["s"] * 6,
            "label": [2, 1, 0, 0, 1, 2],
        }
    ).write_parquet(path)
    return str(path)


def test_fuse_mixes_per_query_z_scores(tmp_path):
    # the model's scores live on a scale 100x the dense cosines, and q2's are shifted by 50
    model = scores(tmp_path / "m.parquet", [300, 200, 100, 150, 250, 50])
    dense = scores(tmp_path / "d.parquet", [0.1, 0.2, 0.3, 0.3, 0.2, 0.1])
    z = lambda x: (np.asarray(x) - np.mean(x)) / np.std(x)  # noqa: E731
    for w in (0.0, 0.3, 1.0):
        got = fuse(model, dense, w)["score"].to_numpy()
        want = np.concatenate(
            [
                (1 - w) * z([300, 200, 100]) + w * z([0.1, 0.2, 0.3]),
                (1 - w) * z([150, 250, 50]) + w * z([0.3, 0.2, 0.1]),
            ]
        )
        assert got == pytest.approx(want)
    # a one-candidate query has no spread: its z-score is 0, not NaN
    one = tmp_path / "one.parquet"
    pl.DataFrame({"query_id": ["q"], "doc_id": ["a"], "score": [3.0]}).write_parquet(one)
    assert fuse(one, one, 0.5)["score"].to_list() == [0.0]


def test_fuse_refuses_different_candidates(tmp_path):
    model = scores(tmp_path / "m.parquet", range(6))
    other = tmp_path / "o.parquet"
    pl.read_parquet(model).head(5).write_parquet(other)
    with pytest.raises(RerankError, match="fused score tables must hold the same candidates"):
        fuse(model, other, 0.5)


def test_weight_is_chosen_on_the_split_given(tmp_path):
    split = labels(tmp_path / "eval.parquet")
    # the model ranks q1 right and q2 backwards; the dense expert the opposite
    model = scores(tmp_path / "m.parquet", [3, 2, 1, 3, 2, 1])
    dense = scores(tmp_path / "d.parquet", [1, 2, 3, 1, 2, 3])
    weight, curve = choose_fusion_weight(split, model, dense)
    assert set(curve) == {f"{0.1 * i:.1f}" for i in range(11)}
    assert curve[f"{weight:.1f}"] == max(curve.values())
    # a perfect dense expert wins outright at the largest weights; ties go to the smaller
    perfect = scores(tmp_path / "p.parquet", [3, 2, 1, 1, 2, 3])
    weight, curve = choose_fusion_weight(split, model, perfect)
    assert curve[f"{weight:.1f}"] == pytest.approx(1.0)
    assert all(v < 1.0 for k, v in curve.items() if float(k) < weight)


def test_paired_rows_delta_interval_and_verdict(tmp_path):
    split = labels(tmp_path / "eval.parquet")
    good = scores(tmp_path / "g.parquet", [3, 2, 1, 1, 2, 3])
    bad = scores(tmp_path / "b.parquet", [1, 2, 3, 3, 2, 1])
    values = {"final": per_query(split, good), "other": per_query(split, bad)}
    assert values["final"]["pnr"] == {"q1": (3, 0), "q2": (3, 0)}
    out = paired_rows("final", values, seed=0)
    nd = out["other"]["ndcg@10"]
    assert nd["delta"] > 0 and nd["ci95"][0] > 0 and nd["wins"]
    # against itself: no difference, never a win
    same = paired_rows("final", {"final": values["final"], "copy": values["final"]})
    assert same["copy"]["ndcg@10"]["delta"] == 0.0 and not same["copy"]["ndcg@10"]["wins"]
