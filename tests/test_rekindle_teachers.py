"""Teachers of any kind: cross-encoder, bi-encoder (rerank.dense) and first-stage run."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from conftest import build_tiny_bert

from rerank.dense import BiEncoder
from rerank.errors import RerankError
from rerank.model import RerankModel
from rerank.rekindle.store import (
    PROVENANCE_KEY,
    Teacher,
    build_store,
    file_sha256,
    read_store,
    teacher_kind,
)

ROWS = pl.DataFrame(
    {
        "query_id": ["q1", "q1", "q1", "q2", "q2"],
        "doc_id": ["d1", "d2", "d3", "d1", "d4"],
        "query": ["flow of heat"] * 3 + ["pressure on a wing"] * 2,
        "title": ["boundary layer", "the wing", "heat transfer", "boundary layer", "lift"],
        "summary": ["the heat transfer in a laminar flow", "lift and drag", "", "flow", "drag"],
    }
)


def sentence_transformers_dir(path):
    """A tiny BERT laid out as a sentence-transformers directory (mean pooling, normalised).

    Written by hand (the layout ``SentenceTransformer.save`` writes, checked against the
    library in tests/test_dense.py) to keep sentence-transformers' slow import out of here.
    """
    build_tiny_bert(path)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32}))
    return path


def write_run(path, frame, *, skip=()):
    """A TREC run scoring ``frame``'s pairs (score 10 - row), leaving out rows ``skip``."""
    lines = [
        f"{q} Q0 {d} {i + 1} {10.0 - i} bm25"
        for i, (q, d) in enumerate(frame.select("query_id", "doc_id").iter_rows())
        if i not in skip
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def experts(tmp_path_factory, tiny_model_dir):
    """A sentence-transformers dir (bi-encoder), a ranking model and the rekindle data."""
    root = tmp_path_factory.mktemp("teachers")
    st = sentence_transformers_dir(root / "st")
    ranker = root / "ranker"
    RerankModel.from_pretrained(tiny_model_dir).save_pretrained(ranker)
    return root, st, ranker


def test_kinds_auto_detected(experts, tmp_path, tiny_model_dir):
    _, st, ranker = experts
    run = write_run(tmp_path / "bm25.run", ROWS)
    assert teacher_kind(Teacher("a", run)) == "run"
    assert teacher_kind(Teacher("a", st)) == "bi-encoder"
    assert teacher_kind(Teacher("a", ranker)) == "cross-encoder"
    assert teacher_kind(Teacher("a", tiny_model_dir)) == "cross-encoder"
    assert teacher_kind(Teacher("a", st, kind="cross-encoder")) == "cross-encoder"
    with pytest.raises(RerankError, match="kind must be one of"):
        Teacher("a", st, kind="dense")
    with pytest.raises(RerankError, match="a run teacher has no head"):
        Teacher("a", run, head="score", kind="run")
    with pytest.raises(RerankError, match="a run teacher has no head"):
        teacher_kind(Teacher("a", run, head="score"))
    with pytest.raises(RerankError, match="a bi-encoder teacher has no head"):
        teacher_kind(Teacher("a", st, head="score"))


def test_store_mixes_kinds_records_them_and_reuses_columns(experts, tmp_path):
    _, st, ranker = experts
    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    run = write_run(tmp_path / "bm25.run", ROWS.reverse())  # run order need not match
    out = tmp_path / "store.parquet"
    teachers = [Teacher("ce", ranker), Teacher("dense", st), Teacher("bm25", run)]
    result = build_store(data, teachers, out, max_length=32)
    assert result.scored == ("ce", "dense", "bm25")
    frame, prov = read_store(out)
    dense = BiEncoder.from_pretrained(st, device="cpu").score_frame(ROWS)
    np.testing.assert_allclose(frame["teacher:dense"].to_numpy(), dense, rtol=0, atol=1e-5)
    # the reversed run gave row i the score 10 - (4 - i)
    assert frame["teacher:bm25"].to_list() == [6.0, 7.0, 8.0, 9.0, 10.0]
    records = prov["teachers"]
    assert [records[n]["kind"] for n in ("ce", "dense", "bm25")] == [
        "cross-encoder",
        "bi-encoder",
        "run",
    ]
    assert records["bm25"]["sha256"] == file_sha256(run)
    assert records["dense"]["weights"]["model.safetensors"] == file_sha256(st / "model.safetensors")
    assert "1_Pooling/config.json" in records["dense"]["weights"]

    # nothing changed: all reused; a changed run file: only the run column is rescored
    assert build_store(data, teachers, out, max_length=32).reused == ("ce", "dense", "bm25")
    write_run(run, ROWS)
    again = build_store(data, teachers, out, max_length=32)
    assert again.scored == ("bm25",) and again.reused == ("ce", "dense")
    after = read_store(out)[0]
    assert after["teacher:bm25"].to_list() == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert after["teacher:dense"].to_list() == frame["teacher:dense"].to_list()
    # the same directory scored as another kind is another teacher
    other = [teachers[0], Teacher("dense", st, kind="cross-encoder"), teachers[2]]
    assert build_store(data, other, out, max_length=32).scored == ("dense",)


def test_store_built_before_kinds_is_reused(experts, tmp_path):
    _, _, ranker = experts
    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    out = tmp_path / "store.parquet"
    build_store(data, [Teacher("ce", ranker)], out, max_length=32)
    frame, prov = read_store(out)
    del prov["teachers"]["ce"]["kind"]
    frame.write_parquet(out, metadata={PROVENANCE_KEY: json.dumps(prov)})
    assert build_store(data, [Teacher("ce", ranker)], out, max_length=32).reused == ("ce",)


def test_run_missing_a_pair_is_a_one_line_error_naming_file_and_pair(experts, tmp_path):
    data = tmp_path / "rekindle.parquet"
    ROWS.write_parquet(data)
    run = write_run(tmp_path / "bm25.run", ROWS, skip=(2, 4))
    out = tmp_path / "store.parquet"
    with pytest.raises(RerankError) as err:
        build_store(data, [Teacher("bm25", run)], out)
    message = str(err.value)
    assert message.startswith(str(run)) and "\n" not in message
    assert "(query_id 'q1', doc_id 'd3')" in message and "2 of 5" in message
    assert not out.exists()
    with pytest.raises(RerankError, match="does not exist"):
        build_store(data, [Teacher("bm25", tmp_path / "nothing.run", kind="run")], out)


def test_rekindle_cli_moegp_with_a_bi_encoder_and_a_run_teacher(experts, tmp_path, capsys):
    from rerank.cli import main

    root, st, _ = experts
    rows = pl.concat([ROWS, ROWS.with_columns(pl.col("query_id") + "x")])
    rows.write_parquet(tmp_path / "pairs.parquet")
    write_run(tmp_path / "bm25.run", rows)
    student = build_tiny_bert(root / "student", seed=3)
    config = tmp_path / "rekindle.toml"
    config.write_text(
        f"""
[model]
path = "{student}"
max_length = 32
heads = {{ dense = {{}}, bm25 = {{}} }}
[data]
list_size = 3
groups_per_batch = 2
[train]
output_dir = "{tmp_path / "out"}"
steps = 3
lr_max = 1e-3
bf16 = false
num_threads = 1
progress = false
[rekindle]
data = "pairs.parquet"
standardize = true
teachers = {{ dense = {{ path = "{st}" }}, bm25 = {{ path = "bm25.run" }} }}
[[objective]]
loss = "pointwise_mse"
head = "dense"
target = "teacher:dense"
[[objective]]
loss = "pairwise_mse"
head = "bm25"
target = "teacher:bm25"
"""
    )
    assert main(["rekindle", "--config", str(config)]) == 0, capsys.readouterr().err
    assert "finished at step 3/3" in capsys.readouterr().err
    frame, prov = read_store(tmp_path / "out" / "teacher_scores.parquet")
    assert {k: v["kind"] for k, v in prov["teachers"].items()} == {
        "dense": "bi-encoder",
        "bm25": "run",
    }
    assert frame["teacher:bm25"].to_list() == [10.0 - i for i in range(10)]
    saved = json.loads((tmp_path / "out" / "final" / "config.json").read_text())
    assert set(saved["rerank"]["heads"]) == {"dense", "bm25"}
    # a run that lacks a rekindle pair stops the command with one line, exit 2
    write_run(tmp_path / "bm25.run", rows, skip=(7,))
    assert main(["rekindle", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank rekindle: error: ") and err.count("\n") == 1, err
    assert "bm25.run: the run has no score for (query_id 'q1x', doc_id 'd3')" in err
