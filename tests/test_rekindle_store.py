from __future__ import annotations

import json

import polars as pl
import pytest

from rerank import __version__
from rerank.errors import RerankError
from rerank.model import RerankModel
from rerank.rekindle import store
from rerank.rekindle.store import Teacher, build_store, file_sha256, read_provenance, read_store

ROWS = pl.DataFrame(
    {
        "query_id": ["q1", "q1", "q1", "q2", "q2"],
        "doc_id": ["d1", "d2", "d3", "d1", "d4"],
        "query": ["flow of heat"] * 3 + ["pressure on a wing"] * 2,
        "title": ["boundary layer", "the wing", "heat transfer", "boundary layer", "lift"],
        "summary": ["the heat transfer in a laminar flow", "lift and drag", "", "flow", "drag"],
    }
)


@pytest.fixture()
def teachers(tiny_model_dir, tmp_path):
    """Two saved ranking models with different (random) score heads."""
    import torch

    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        RerankModel.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / f"t{seed}")
        paths.append(tmp_path / f"t{seed}")
    return paths


class CountingScorer:
    """The real scorer, counting which teachers it was asked to score."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, rows, head, max_length):
        self.calls.append(path.name)
        return store._default_scorer(path, rows, head, max_length)


def test_store_scores_once_and_records_provenance(teachers, tmp_path):
    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    out = tmp_path / "store" / "scores.parquet"
    scorer = CountingScorer()
    ts = [Teacher("a", teachers[0]), Teacher("b", teachers[1])]
    result = build_store(data, ts, out, max_length=32, scorer=scorer)
    assert result.scored == ("a", "b") and result.reused == ()
    frame, prov = read_store(out)
    assert frame.columns == [
        "query_id",
        "doc_id",
        "query",
        "title",
        "summary",
        "teacher:a",
        "teacher:b",
    ]
    assert frame["teacher:a"].dtype == pl.Float64 and frame.height == 5
    assert frame["teacher:a"].to_list() != frame["teacher:b"].to_list()
    # the column holds exactly what the teacher's model scores for these rows
    direct = store._default_scorer(teachers[0], ROWS, None, 32)
    assert frame["teacher:a"].to_list() == pytest.approx(direct.to_list(), abs=1e-6)
    assert prov["data"] == {"path": str(data), "sha256": file_sha256(data), "rows": 5}
    assert prov["teachers"]["a"]["weights"]["model.safetensors"] == file_sha256(
        teachers[0] / "model.safetensors"
    )
    assert prov["teachers"]["b"]["path"] == str(teachers[1])
    assert prov["teachers"]["a"]["max_length"] == 32
    assert prov["rerank_version"] == __version__ and prov["created"].startswith("20")

    # unchanged teachers and data: nothing is scored, the file is untouched
    mtime = out.stat().st_mtime_ns
    again = build_store(data, ts, out, max_length=32, scorer=scorer)
    assert again.scored == () and again.reused == ("a", "b")
    assert scorer.calls == ["t1", "t2"] and out.stat().st_mtime_ns == mtime


def test_store_rescores_only_the_changed_teacher(teachers, tmp_path, tiny_model_dir):
    import torch

    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    out = tmp_path / "scores.parquet"
    scorer = CountingScorer()
    ts = [Teacher("a", teachers[0]), Teacher("b", teachers[1])]
    build_store(data, ts, out, max_length=32, scorer=scorer)
    before = read_store(out)[0]
    # retrain teacher b in place: same path, new weights
    torch.manual_seed(99)
    RerankModel.from_pretrained(tiny_model_dir).save_pretrained(teachers[1])
    result = build_store(data, ts, out, max_length=32, scorer=scorer)
    assert result.scored == ("b",) and result.reused == ("a",)
    after, prov = read_store(out)
    assert after["teacher:a"].to_list() == before["teacher:a"].to_list()
    assert after["teacher:b"].to_list() != before["teacher:b"].to_list()
    assert prov["teachers"]["b"]["weights"]["model.safetensors"] == file_sha256(
        teachers[1] / "model.safetensors"
    )
    # a different scoring length is a different teacher record too
    assert build_store(data, ts, out, max_length=24, scorer=scorer).scored == ("a", "b")
    # changed data: everything is rescored
    ROWS.head(4).write_parquet(data)
    result = build_store(data, ts[:1], out, max_length=24, scorer=scorer)
    assert result.scored == ("a",)
    frame, prov = read_store(out)
    assert frame.height == 4 and "teacher:b" not in frame.columns and set(prov["teachers"]) == {"a"}
    assert json.loads(json.dumps(prov)) == read_provenance(out)


def test_store_errors(teachers, tmp_path):
    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    with pytest.raises(RerankError, match="names must be distinct"):
        build_store(
            data, [Teacher("a", teachers[0]), Teacher("a", teachers[1])], tmp_path / "s.parquet"
        )
    with pytest.raises(RerankError, match=r"no model\.safetensors"):
        build_store(data, [Teacher("a", tmp_path)], tmp_path / "s.parquet")
    with pytest.raises(RerankError, match=r"must be a \.parquet"):
        build_store(data, [Teacher("a", teachers[0])], tmp_path / "s.tsv")
    with pytest.raises(RerankError, match="without ':'"):
        Teacher("a:b", teachers[0])
    with pytest.raises(RerankError, match="does not exist"):
        read_store(tmp_path / "missing.parquet")
