from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rerank.cli import main
from rerank.config import resolve_model_path
from rerank.data import read_scores
from rerank.errors import RerankError
from rerank.model import HeadSpec, RerankModel
from rerank.score import plan_batches, resolve_precision, score_file, score_frame

ROWS = [
    ("q1", "d1", "flow of heat", "boundary layer", "the heat transfer in a laminar flow"),
    ("q1", "d2", "flow of heat", "the wing", "lift and drag of a wing at high speed"),
    ("q1", "d3", "flow of heat", "", "heat"),
    ("q2", "d1", "pressure on a wing", "boundary layer", "the heat transfer in a laminar flow"),
    ("q2", "d4", "pressure on a wing", "pressure", ""),
    ("q2", "d5", "pressure on a wing", "a long title about the pressure distribution", "on a"),
    ("q3", "d2", "lift", "the wing", "lift and drag of a wing at high speed"),
]
PAIRS = pl.DataFrame(ROWS, schema=["query_id", "doc_id", "query", "title", "summary"], orient="row")
LEN = 48  # tiny BERT has 128 positions


@pytest.fixture(scope="module")
def ckpt(tiny_model_dir, tmp_path_factory) -> Path:
    """A saved ranking checkpoint with a second score head ``t2`` and a classifier ``cls``."""
    torch.manual_seed(0)
    heads = {"score": HeadSpec(), "t2": HeadSpec(), "cls": HeadSpec("classification", 3)}
    model = RerankModel.from_pretrained(tiny_model_dir, heads=heads)
    path = tmp_path_factory.mktemp("score") / "ckpt"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model(ckpt) -> RerankModel:
    return RerankModel.from_pretrained(ckpt).eval()


def one_by_one(model: RerankModel, head: str = "score") -> np.ndarray:
    """Reference scores: each pair alone, unpadded, fp32."""
    enc = model.pair_encoder(max_length=LEN)
    out = []
    with torch.no_grad():
        for _, _, q, t, s in ROWS:
            batch = enc.collate(enc.encode([q], [[t, s]]), pad_to_multiple_of=1)
            out.append(model(**batch, heads=(head,))[head].item())
    return np.array(out, dtype=np.float32)


def test_plan_batches_sorts_longest_first_and_respects_both_limits():
    lengths = [3, 9, 5, 9, 1]
    assert [b.tolist() for b in plan_batches(lengths, batch_size=2)] == [[1, 3], [2, 0], [4]]
    # padded to 16 -> 40 // 16 = 2 a batch; then 8 -> 5 (capped by batch_size 3)
    got = plan_batches(lengths, batch_size=3, max_tokens=40, pad_to_multiple_of=8)
    assert [b.tolist() for b in got] == [[1, 3], [2, 0, 4]]
    # an input longer than the budget still gets its own batch
    assert [b.tolist() for b in plan_batches([30, 2], batch_size=8, max_tokens=10)] == [[0], [1]]
    with pytest.raises(RerankError, match="batch_size"):
        plan_batches(lengths, batch_size=0)


def test_score_frame_matches_unbatched_scores_in_input_order(model):
    expected = one_by_one(model)
    for kwargs in ({"batch_size": 1}, {"batch_size": 3}, {"batch_size": 64, "max_tokens": 70}):
        got = score_frame(model, PAIRS, max_length=LEN, precision="fp32", **kwargs)
        assert got.shape == (len(ROWS),) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_score_frame_heads_columns_and_restores_training_mode(model):
    model.train()
    try:
        both = score_frame(model, PAIRS, heads=("t2", "score"), max_length=LEN, precision="fp32")
        assert model.training
    finally:
        model.eval()
    assert both.shape == (len(ROWS), 2)
    np.testing.assert_allclose(both[:, 0], one_by_one(model, "t2"), atol=1e-5)
    np.testing.assert_allclose(both[:, 1], one_by_one(model, "score"), atol=1e-5)
    with pytest.raises(RerankError, match="classification head"):
        score_frame(model, PAIRS, heads=("cls",), max_length=LEN)
    with pytest.raises(RerankError, match="no head 'nope'"):
        score_frame(model, PAIRS, heads=("nope",), max_length=LEN)
    with pytest.raises(RerankError, match=r"missing column\(s\) \['summary'\]"):
        score_frame(model, PAIRS.drop("summary"), max_length=LEN)
    with pytest.raises(RerankError, match="exceeds the model's 128 positions"):
        score_frame(model, PAIRS, max_length=256)


def test_bf16_scores_close_to_fp32_and_not_rounded_to_bf16(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fp32 = score_frame(model, PAIRS, max_length=LEN, precision="fp32")
    bf16 = score_frame(model, PAIRS, max_length=LEN, precision="bf16")
    after = model.state_dict()  # the fp32 weights are back, bit for bit
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    # the head runs in fp32: scores are not bf16 numbers (8-bit mantissa)
    as_bf16 = torch.tensor(bf16).bfloat16().float().numpy()
    assert (as_bf16 != bf16).any()


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) in ("fp32", "bf16")
    with pytest.raises(RerankError, match="fp32, bf16 or auto"):
        resolve_precision("fp16", cpu)


def write_input(frame: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".tsv":
        frame.write_csv(path, separator="\t", quote_style="never")
    else:
        frame.write_ndjson(path)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".tsv", ".jsonl"])
def test_score_file_streams_chunks_and_keeps_input_order(model, ckpt, tmp_path, suffix):
    data = write_input(PAIRS.with_columns(label=pl.lit(1)), tmp_path / f"pairs{suffix}")
    out = tmp_path / "scores.parquet"
    summary = score_file(
        ckpt, data, out, chunk_rows=3, batch_size=2, max_length=LEN, precision="fp32"
    )
    assert summary.rows == len(ROWS) and summary.precision == "fp32"
    got = pl.read_parquet(out)
    assert got.columns == ["query_id", "doc_id", "score"]
    assert got.schema["score"] == pl.Float64
    assert got.select("query_id", "doc_id").rows() == [r[:2] for r in ROWS]
    np.testing.assert_allclose(got["score"].to_numpy(), one_by_one(model), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, out.name])


def test_score_file_output_formats_and_heads(model, ckpt, tmp_path):
    data = write_input(PAIRS, tmp_path / "pairs.parquet")
    opts = {"max_length": LEN, "precision": "fp32", "chunk_rows": 4}
    score_file(ckpt, data, tmp_path / "s.tsv", **opts)
    tsv = read_scores(tmp_path / "s.tsv")
    np.testing.assert_allclose(tsv["score"].to_numpy(), one_by_one(model), atol=1e-5)
    score_file(ckpt, data, tmp_path / "s.run", **opts)
    run = read_scores(tmp_path / "s.run")
    assert run.sort("query_id", "doc_id").equals(tsv.sort("query_id", "doc_id"))
    lines = (tmp_path / "s.run").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["q1"] * 3 + ["q2"] * 3 + ["q3"]
    ranks = [int(line.split()[3]) for line in lines]
    assert ranks == [1, 2, 3, 1, 2, 3, 1]
    score_file(ckpt, data, tmp_path / "s.jsonl", heads=["score", "t2"], **opts)
    both = pl.read_ndjson(tmp_path / "s.jsonl")
    assert both.columns == ["query_id", "doc_id", "score", "t2"]
    np.testing.assert_allclose(both["t2"].to_numpy(), one_by_one(model, "t2"), atol=1e-5)
    with pytest.raises(RerankError, match="a TREC run holds one score"):
        score_file(ckpt, data, tmp_path / "two.run", heads=["score", "t2"], **opts)


def test_score_file_bad_input_gives_one_line_error_and_no_output(ckpt, tmp_path):
    data = write_input(PAIRS, tmp_path / "pairs.tsv")
    out = tmp_path / "out" / "scores.tsv"
    cases = [
        (tmp_path / "nope", data, out, "model directory does not exist"),
        (ckpt, tmp_path / "missing.tsv", out, "no such file"),
        (ckpt, data, tmp_path / "scores.csv", "unknown output format"),
    ]
    bad_cols = write_input(PAIRS.drop("title"), tmp_path / "cols.parquet")
    cases.append((ckpt, bad_cols, out, "missing column 'title'"))
    blank = PAIRS.with_columns(
        doc_id=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("")).otherwise("doc_id")
    )
    cases.append((ckpt, write_input(blank, tmp_path / "blank.tsv"), out, r"blank.tsv:7: column"))
    (tmp_path / "file").write_text("x")
    cases.append((ckpt, data, tmp_path / "file" / "scores.tsv", "cannot write here"))
    for model_dir, data_path, out_path, message in cases:
        with pytest.raises(RerankError, match=message) as err:
            score_file(model_dir, data_path, out_path, max_length=LEN, chunk_rows=2)
        assert "\n" not in str(err.value)
        assert not out.exists() and not (tmp_path / "scores.csv").exists()
    assert not list(tmp_path.rglob(".*parts*"))


def test_cli_score_writes_scores_and_exits_2_on_error(ckpt, tmp_path, capsys):
    data = write_input(PAIRS, tmp_path / "pairs.jsonl")
    out = tmp_path / "scores.tsv"
    argv = ["score", "--model", str(ckpt), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--max-length", str(LEN), "--precision", "fp32"]) == 0
    assert read_scores(out).height == len(ROWS)
    assert "scored 7 pairs" in capsys.readouterr().err
    out.unlink()
    assert main([*argv, "--max-length", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank score: error: max_length") and err.count("\n") == 1
    assert not out.exists()


def test_default_model_name_resolves_to_the_bundled_encoder():
    path = resolve_model_path("default")
    assert (path / "config.json").is_file()
    assert resolve_model_path("some/dir") == Path("some/dir")


@pytest.mark.slow
def test_torchrun_two_ranks_merge_in_input_order(model, ckpt, tmp_path):
    data = write_input(PAIRS, tmp_path / "pairs.parquet")
    out = tmp_path / "scores.parquet"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd = [
        *torchrun,
        "--nproc-per-node",
        "2",
        "-m",
        "rerank",
        "score",
        "--model",
        str(ckpt),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-length",
        str(LEN),
        "--precision",
        "fp32",
        "--chunk-rows",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x2 ranks" in done.stderr
    got = pl.read_parquet(out)
    assert got.select("query_id", "doc_id").rows() == [r[:2] for r in ROWS]
    np.testing.assert_allclose(got["score"].to_numpy(), one_by_one(model), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, out.name])
    shutil.rmtree(tmp_path, ignore_errors=True)
