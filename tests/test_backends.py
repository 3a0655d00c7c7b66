"""``rerank export`` and the ONNX Runtime / OpenVINO backends on a tiny BERT.

Each backend test skips (with the reason) when its extra is not installed; ``make test``
installs them (requirements-inference.lock). Exported fp32 graphs must score as the torch
model does within :data:`BACKEND_TOL` (the runtimes fuse operators and sum in another
order, so the last bits differ).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_scores_close

from rerank.cli import main
from rerank.data import read_scores
from rerank.errors import RerankError
from rerank.model import HeadSpec, RerankModel

ROWS = [
    ("q1", "d1", "flow of heat", "boundary layer", "the heat transfer in a laminar flow", 2),
    ("q1", "d2", "flow of heat", "the wing", "lift and drag of a wing at high speed", 0),
    ("q1", "d3", "flow of heat", "", "heat", 1),
    ("q2", "d1", "pressure on a wing", "boundary layer", "the heat transfer in a laminar flow", 0),
    ("q2", "d4", "pressure on a wing", "pressure", "", 1),
    ("q2", "d5", "pressure on a wing", "a long title about the pressure distribution", "on a", 2),
    ("q3", "d2", "lift", "the wing", "lift and drag of a wing at high speed", 1),
    ("q3", "d6", "lift", "", "the lift of a thin wing in a flow", 0),
]
COLUMNS = ["query_id", "doc_id", "query", "title", "summary", "label"]
PAIRS = pl.DataFrame(ROWS, schema=COLUMNS, orient="row")
LEN = 48  # tiny BERT has 128 positions
#: Exported fp32 graphs vs torch fp32 (measured: about 1e-8 on the tiny BERT).
BACKEND_TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def ckpt(tiny_model_dir, tmp_path_factory) -> Path:
    """A trained-looking ranking checkpoint (input lengths saved) with an extra head."""
    torch.manual_seed(0)
    model = RerankModel.from_pretrained(
        tiny_model_dir, heads={"score": HeadSpec(), "t2": HeadSpec()}
    )
    model.input_lengths = {"max_length": LEN, "max_query_length": 16}
    path = tmp_path_factory.mktemp("backends") / "ckpt"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    PAIRS.with_columns(pl.col("label").cast(pl.String)).write_csv(
        path, separator="\t", quote_style="never"
    )
    return path


@pytest.fixture(scope="module")
def torch_scores(ckpt) -> np.ndarray:
    from rerank.score import score_frame

    return score_frame(RerankModel.from_pretrained(ckpt), PAIRS, precision="fp32")


@pytest.fixture(scope="module")
def onnx_dir(ckpt, pairs_file, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from rerank.export import export_model

    out = tmp_path_factory.mktemp("export") / "onnx-model"
    export_model(ckpt, out, fmt="onnx", quantize="int8", calibration=pairs_file)
    return out


@pytest.fixture(scope="module")
def openvino_dir(ckpt, pairs_file, tmp_path_factory) -> Path:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    pytest.importorskip("nncf", reason="the openvino extra (nncf) is not installed")
    pytest.importorskip("onnx", reason="the openvino extra (onnx) is not installed")
    from rerank.export import export_model

    out = tmp_path_factory.mktemp("export") / "ov-model"
    export_model(ckpt, out, fmt="openvino", quantize="int8", calibration=pairs_file)
    return out


def test_onnx_export_is_an_ordinary_hf_directory_plus_graphs(onnx_dir, ckpt):
    names = {p.relative_to(onnx_dir).as_posix() for p in onnx_dir.rglob("*") if p.is_file()}
    kept = {p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()}
    assert kept <= names  # config, tokenizer, model.safetensors, sidecars
    assert "onnx/model.onnx" in names
    assert any(n.startswith("onnx/model_qint8_") and n.endswith(".onnx") for n in names)
    report = json.loads((onnx_dir / "rerank_export.json").read_text())
    assert report["parity"]["max_abs_diff"] < 1e-4
    quality = report["quality"]
    assert quality["pairs"] == len(ROWS) and quality["queries"] == 3
    assert set(quality["fp32"]) == set(quality["int8"]) == {"pnr", "ndcg@10"}
    # the export still loads and scores through torch as before
    assert RerankModel.from_pretrained(onnx_dir).input_lengths["max_length"] == LEN


def test_openvino_export_writes_fp32_and_calibrated_int8(openvino_dir):
    assert (openvino_dir / "openvino/openvino_model.xml").is_file()
    assert (openvino_dir / "openvino/openvino_model.bin").is_file()
    int8 = (openvino_dir / "openvino/openvino_model_qint8_quantized.xml").read_text()
    assert "FakeQuantize" in int8
    # SmoothQuant off: it moved PNR furthest from fp32 (benchmarks/README.md)
    assert "nncf_smooth_quant" not in int8
    report = json.loads((openvino_dir / "rerank_export.json").read_text())
    assert report["parity"]["max_abs_diff"] < 1e-4
    assert "pnr" in report["quality"]["int8"]


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_score_file_with_a_backend_matches_torch(
    backend, request, pairs_file, torch_scores, tmp_path
):
    from rerank.score import score_file

    model_dir = request.getfixturevalue(f"{backend}_dir")
    out = tmp_path / "scores.parquet"
    summary = score_file(
        model_dir,
        pairs_file,
        out,
        backend=backend,
        precision="fp32",
        threads=1,
        chunk_rows=3,
        batch_size=2,
        progress=False,
    )
    assert (summary.backend, summary.precision, summary.threads) == (backend, "fp32", 1)
    got = read_scores(out)
    assert got["doc_id"].to_list() == PAIRS["doc_id"].to_list()  # input order kept
    assert_scores_close(got["score"].to_numpy().astype(np.float32), torch_scores, **BACKEND_TOL)
    # int8: another graph, close to fp32 on these near-constant random scores
    summary = score_file(model_dir, pairs_file, out, backend=backend, precision="int8")
    assert summary.precision == "int8"
    np.testing.assert_allclose(
        read_scores(out)["score"].to_numpy().astype(np.float32), torch_scores, atol=0.05
    )


def test_auto_backend_picks_what_the_directory_holds(onnx_dir, ckpt, tmp_path):
    from rerank.backends import resolve_backend

    assert resolve_backend(onnx_dir, "auto", device="cpu") == "onnx"
    assert resolve_backend(onnx_dir, "auto", precision="int8", device="cpu") == "onnx"
    assert resolve_backend(ckpt, "auto", device="cpu") == "torch"
    # bf16 is not an ONNX Runtime precision: auto falls back to torch, explicit onnx refuses
    assert resolve_backend(onnx_dir, "auto", precision="bf16", device="cpu") == "torch"
    with pytest.raises(RerankError, match="computes fp32 or int8"):
        resolve_backend(onnx_dir, "onnx", precision="bf16")
    with pytest.raises(RerankError, match="no int8 export"):
        resolve_backend(ckpt, "auto", precision="int8", device="cpu")
    with pytest.raises(RerankError, match=r"no onnx/model\.onnx; make an onnx export"):
        resolve_backend(ckpt, "onnx")
    with pytest.raises(RerankError, match="torch backend has no int8"):
        resolve_backend(onnx_dir, "torch", precision="int8")


def test_missing_extra_is_one_line_naming_the_install(onnx_dir, monkeypatch):
    from rerank.backends import resolve_backend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(RerankError) as err:
        resolve_backend(onnx_dir, "onnx")
    assert "pip install rerank-rekindle[onnx]" in str(err.value)
    assert "\n" not in str(err.value)
    assert resolve_backend(onnx_dir, "auto", device="cpu") == "torch"  # auto moves on


def test_cli_export_and_score_report_backend_threads_and_quality(
    ckpt, pairs_file, torch_scores, tmp_path, capsys
):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    out_dir = tmp_path / "exported"
    argv = ["export", "--model", str(ckpt), "--format", "onnx", "--quantize", "int8"]
    assert main([*argv, "--calibration", str(pairs_file), "--out", str(out_dir)]) == 0
    err = capsys.readouterr().err
    assert "onnx int8 vs fp32 on 8 pairs, 3 queries: pnr" in err
    assert "ndcg@10" in err and "vs torch fp32" in err
    scores = tmp_path / "scores.tsv"
    argv = ["score", "--model", str(out_dir), "--data", str(pairs_file), "--out", str(scores)]
    assert main([*argv, "--threads", "1", "--precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "onnx fp32 on cpu, 1 thread)" in err
    assert_scores_close(
        read_scores(scores)["score"].to_numpy().astype(np.float32), torch_scores, **BACKEND_TOL
    )
    scores.unlink()
    # user mistakes: one line, exit 2, no output
    assert main([*argv, "--backend", "openvino"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank score: error: ") and err.count("\n") == 1
    assert main([*argv, "--backend", "onnx", "--heads", "t2"]) == 2
    assert "primary head 'score' only" in capsys.readouterr().err
    assert not scores.exists()


def test_export_user_mistakes_leave_no_output(ckpt, tmp_path, capsys):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    pytest.importorskip("nncf", reason="the openvino extra (nncf) is not installed")
    out = tmp_path / "ov"
    argv = ["export", "--model", str(ckpt), "--format", "openvino", "--out", str(out)]
    assert main([*argv, "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert "needs --calibration FILE" in err and err.count("\n") == 1
    bad = tmp_path / "bad.tsv"
    bad.write_text("query_id\tdoc_id\tquery\ttitle\tsummary\nq1\td1\t\tt\ts\n")
    assert main([*argv, "--quantize", "int8", "--calibration", str(bad)]) == 2
    assert "bad.tsv:2" in capsys.readouterr().err
    assert main(["export", "--model", str(ckpt), "--format", "onnx", "--out", str(ckpt)]) == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export", "--model", str(ckpt), "--format", "onnx", "--out", str(busy)]) == 2
    assert "not an earlier rerank export" in capsys.readouterr().err
    assert (busy / "notes.txt").read_text() == "mine"
    assert not out.exists()


def test_reranker_from_pretrained_with_a_backend(onnx_dir, torch_scores):
    import rerank

    ranker = rerank.Reranker.from_pretrained(onnx_dir, backend="onnx", precision="fp32", threads=1)
    assert (ranker.backend, ranker.precision, ranker.device) == ("onnx", "fp32", "cpu")
    got = ranker.score(PAIRS.select("query", "title", "summary"), batch_size=3)
    assert_scores_close(got, torch_scores, **BACKEND_TOL)
    assert rerank.Reranker.from_pretrained(onnx_dir).backend == "onnx"  # auto
    ranked = ranker.rank("flow of heat", ["heat", "the wing"])
    assert sorted(r["corpus_id"] for r in ranked) == [0, 1]


CROSS_ENCODER = """
import json, sys
try:
    __import__(sys.argv[3])
except Exception as err:  # ImportError, or an optimum built for another transformers
    print(f"{sys.argv[3]}: {type(err).__name__}: {err}".splitlines()[0])
    sys.exit(3)
from sentence_transformers import CrossEncoder
pairs = json.loads(sys.argv[2])
ce = CrossEncoder(sys.argv[1], backend=sys.argv[4])
print(json.dumps(ce.predict(pairs, batch_size=4).tolist()))
"""


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_crossencoder_loads_the_export(backend, request, torch_scores):
    """sentence-transformers' CrossEncoder(dir, backend=...) reads the same files.

    It needs optimum (``optimum-onnx`` / ``optimum-intel``), whose releases today require
    transformers < 4.58 / < 5.6, older than requirements.lock's. So this runs in a child
    process whose ``PYTHONPATH`` is ``$RERANK_OPTIMUM_PATH`` (a folder holding optimum, a
    transformers and sentence-transformers it supports), or the environment as it is, and
    skips with the reason when optimum does not import there (fails when the folder is set:
    ``make test`` installs it from requirements-optimum.lock).
    """
    import os
    import subprocess

    module = "optimum.onnxruntime" if backend == "onnx" else "optimum.intel.openvino"
    model_dir = request.getfixturevalue(f"{backend}_dir")
    enc = RerankModel.from_pretrained(model_dir).pair_encoder()
    pairs = [(q, enc.join_parts([t, s])) for _, _, q, t, s, _ in ROWS]
    env = {**os.environ, "PYTHONPATH": os.environ.get("RERANK_OPTIMUM_PATH", "")}
    argv = [sys.executable, "-c", CROSS_ENCODER, str(model_dir), json.dumps(pairs), module]
    done = subprocess.run([*argv, backend], capture_output=True, text=True, env=env)
    if done.returncode == 3:
        # make test sets RERANK_OPTIMUM_PATH (requirements-optimum.lock): there it must import
        if os.environ.get("RERANK_OPTIMUM_PATH"):
            pytest.fail(f"optimum in $RERANK_OPTIMUM_PATH does not import: {done.stdout.strip()}")
        pytest.skip(f"optimum unavailable (set RERANK_OPTIMUM_PATH): {done.stdout.strip()}")
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_allclose(got, torch_scores, atol=1e-3 if backend == "openvino" else 1e-5)


def _torchrun(model_dir: Path, pairs_file: Path, out: Path, *extra: str) -> str:
    import os
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    cmd += ["2", "-m", "rerank", "score", "--model", str(model_dir), "--data", str(pairs_file)]
    cmd += ["--out", str(out), "--chunk-rows", "2", "--precision", "fp32", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x2 ranks" in done.stderr
    return done.stderr


def test_torchrun_two_ranks_with_an_exported_graph(onnx_dir, pairs_file, torch_scores, tmp_path):
    out = tmp_path / "scores.parquet"
    err = _torchrun(onnx_dir, pairs_file, out, "--backend", "onnx", "--threads", "1")
    assert "onnx fp32 on cpu" in err
    got = pl.read_parquet(out)
    assert got["doc_id"].to_list() == PAIRS["doc_id"].to_list()
    assert_scores_close(got["score"].to_numpy().astype(np.float32), torch_scores, **BACKEND_TOL)


@pytest.mark.gpu
def test_torchrun_two_gpus_merge_in_input_order(ckpt, pairs_file, torch_scores, tmp_path):
    """Several GPUs through the same torchrun sharding (each rank on cuda:LOCAL_RANK)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("fewer than 2 CUDA devices")
    out = tmp_path / "scores.parquet"
    assert "on cuda" in _torchrun(ckpt, pairs_file, out)
    got = pl.read_parquet(out)
    assert got["doc_id"].to_list() == PAIRS["doc_id"].to_list()
    np.testing.assert_allclose(got["score"].to_numpy(), torch_scores, atol=1e-4)


@pytest.mark.gpu
def test_gpu_scores_match_cpu_within_bf16(ckpt, pairs_file, torch_scores, tmp_path):
    """The CUDA path of ``rerank score`` (bf16 where supported) against CPU fp32."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from rerank.score import score_file

    out = tmp_path / "gpu.parquet"
    summary = score_file(ckpt, pairs_file, out, device="cuda", backend="auto")
    assert summary.backend == "torch" and summary.device.startswith("cuda")
    np.testing.assert_allclose(
        read_scores(out)["score"].to_numpy().astype(np.float32), torch_scores, atol=2e-2
    )
    score_file(ckpt, pairs_file, out, device="cuda", precision="fp32")
    np.testing.assert_allclose(
        read_scores(out)["score"].to_numpy().astype(np.float32), torch_scores, atol=1e-4
    )


def test_quality_lines_with_and_without_labels():
    from rerank.export import _quality_lines

    base = {"pairs": 300, "queries": 9, "pearson": 0.99, "spearman": 0.98, "max_abs_diff": 0.1}
    lines = _quality_lines("openvino", base)
    assert "no labels, so score agreement only" in lines[0] and "Pearson 0.99000" in lines[1]
    labelled = {
        **base,
        "fp32": {"pnr": 1.2, "ndcg@10": 0.4},
        "int8": {"pnr": 1.19, "ndcg@10": 0.41},
    }
    lines = _quality_lines("onnx", labelled)
    assert lines[0] == (
        "onnx int8 vs fp32 on 300 pairs, 9 queries: pnr 1.2000 -> 1.1900, difference -0.0100 (-0.83%)"
    )
    assert "ndcg@10 0.4000 -> 0.4100" in lines[1]
    assert "not measured" in _quality_lines("onnx", None)[0]
