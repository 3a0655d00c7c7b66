"""rerank fuse / rerank.fusion: per-query z-scores mixed with weights."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rerank.cli import main
from rerank.errors import RerankError
from rerank.fusion import fuse_frames


def frame(values, docs=("a", "b", "c"), queries=("q1", "q2")):
    n = len(docs)
    return pl.DataFrame(
        {
            "query_id": [q for q in queries for _ in range(n)],
            "doc_id": list(docs) * len(queries),
            "score": [float(v) for v in values],
        }
    )


def z(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


def test_weighted_sum_of_per_query_z_scores_in_the_first_frames_order():
    a = frame([3, 2, 1, 10, 30, 20])
    b = frame([0.5, 0.1, 0.3, 0.2, 0.2, 0.9]).reverse()  # any row order
    got = fuse_frames([a, b], [0.7, 0.3])
    assert got["doc_id"].to_list() == a["doc_id"].to_list()
    want = np.concatenate(
        [
            0.7 * z([3, 2, 1]) + 0.3 * z([0.5, 0.1, 0.3]),
            0.7 * z([10, 30, 20]) + 0.3 * z([0.2, 0.2, 0.9]),
        ]
    )
    assert got["score"].to_numpy() == pytest.approx(want)
    # scale and shift of one scorer do not matter: only the order within a query does
    again = fuse_frames([a.with_columns(pl.col("score") * 100 - 7), b], [0.7, 0.3])
    assert again["score"].to_numpy() == pytest.approx(want)
    # a query whose scores are all equal contributes 0, never NaN
    flat = fuse_frames([frame([1] * 6), frame([1] * 6)], [0.5, 0.5])
    assert flat["score"].to_list() == [0.0] * 6


def test_mismatched_inputs_are_one_line_errors():
    a = frame(range(6))
    with pytest.raises(RerankError, match=r"lacks \(q2, c\), a candidate of"):
        fuse_frames([a, a.head(5)], [0.5, 0.5])
    with pytest.raises(RerankError, match="1 candidate"):
        extra = pl.concat([a, frame([1], docs=("d",), queries=("q1",))])
        fuse_frames([a, extra], [0.5, 0.5])
    with pytest.raises(RerankError, match="one weight each"):
        fuse_frames([a, a], [1.0])
    with pytest.raises(RerankError, match="finite"):
        fuse_frames([a, a], [1.0, float("nan")])


def test_cli_fuses_a_run_and_a_table_into_a_run(tmp_path, capsys):
    a = tmp_path / "ce.parquet"
    frame([3, 2, 1, 1, 2, 3]).write_parquet(a)
    run = tmp_path / "bm25.run"
    run.write_text(
        "".join(
            f"{q} Q0 {d} {r} {s} bm25\n"
            for q, d, r, s in [
                ("q1", "c", 1, 9.0),
                ("q1", "b", 2, 5.0),
                ("q1", "a", 3, 1.0),
                ("q2", "a", 1, 7.0),
                ("q2", "c", 2, 6.0),
                ("q2", "b", 3, 2.0),
            ]
        )
    )
    out = tmp_path / "fused.run"
    assert main(["fuse", str(a), str(run), "--weights", "1", "1", "--out", str(out)]) == 0
    assert "6 rows" in capsys.readouterr().out
    lines = [x.split() for x in out.read_text().splitlines()]
    # q1: the two scorers disagree exactly, so every candidate ties at 0
    assert {(x[2], float(x[4])) for x in lines if x[0] == "q1"} == {
        ("a", 0.0),
        ("b", 0.0),
        ("c", 0.0),
    }
    assert next(x[2] for x in lines if x[0] == "q2") == "c"  # 1.22 + 0.46 beats the rest
    # the output may not be an input; nothing is written on error
    assert main(["fuse", str(a), str(run), "--weights", "1", "1", "--out", str(run)]) == 2
    assert "is also the input" in capsys.readouterr().err
    assert main(["fuse", str(a), "--weights", "1", "--out", str(tmp_path / "x.run")]) == 2
    assert not (tmp_path / "x.run").exists()
