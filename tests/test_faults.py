"""Regression tests of the faults an adversarial audit found (issue 12), one or more each.

Every user mistake is one line (a RerankError; exit 2 from the CLI), leaves nothing
behind and loses nothing. The full-disk and read-only tests need a small tmpfs (root);
elsewhere they are skipped and the mapping of write errors is still tested by
:func:`test_write_error_maps_what_writers_raise_on_a_full_disk`.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rerank import train as train_module
from rerank.atomic import atomic_path, check_output, write_error
from rerank.cli import main
from rerank.config import Config, apply_overrides, from_toml
from rerank.data import read_labels, read_pairs, write_table
from rerank.errors import RerankError, input_error
from rerank.pairs import read_documents, read_queries
from rerank.streaming import make_parts_dir
from rerank.tables.chunks import count_rows, iter_chunks, scan_pairs

WORDS = "flow heat wing pressure boundary layer plate shock wave theory".split()


def pairs_frame(n_queries: int = 4, docs: int = 4, labels: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {
            "query_id": f"q{q}",
            "doc_id": f"d{q}-{d}",
            "query": " ".join(rng.choice(WORDS, 3)),
            "title": " ".join(rng.choice(WORDS, 2)),
            "summary": " ".join(rng.choice(WORDS, 6)),
            **({"label": d % 3} if labels else {}),
        }
        for q in range(n_queries)
        for d in range(docs)
    ]
    return pl.DataFrame(rows)


@pytest.fixture
def setup(tmp_path, tiny_model_dir):
    """A training config (1 step, no checkpoints) next to its data, and a TSV copy of it."""
    pairs_frame().write_parquet(tmp_path / "train.parquet")
    write_table(pairs_frame(), tmp_path / "pairs.tsv")
    config = tmp_path / "teacher.toml"
    config.write_text(
        f"""
[model]
path = "{tiny_model_dir}"
max_length = 32
[data]
train = "train.parquet"
list_size = 4
[[objective]]
loss = "hinge"
[train]
output_dir = "out"
steps = 2
log_every = 1
bf16 = false
num_threads = 1
progress = false
"""
    )
    return tmp_path, config


def train_cli(config: Path, *args: str) -> int:
    return main(["train", "--config", str(config), *args])


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"rerank {command}: error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def ranker(tiny_model_dir, tmp_path_factory) -> Path:
    """A saved ranking model (tiny BERT + score head)."""
    from rerank.model import RerankModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ranker") / "model"
    model = RerankModel.from_pretrained(tiny_model_dir)
    model.input_lengths = {"max_length": 48, "max_query_length": 16}  # 128 positions
    model.save_pretrained(path)
    return path


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- 1. training into a directory that holds files ------------------------------------------


def test_train_refuses_a_directory_holding_files_unless_resume_or_overwrite(setup, capsys):
    tmp_path, config = setup
    out = tmp_path / "out"
    assert train_cli(config) == 0  # a finished run without checkpoints (save_every = 0)
    (out / "final" / "mine.txt").write_text("the user's")
    (out / "notes.md").write_text("the user's notes")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert train_cli(config) == 2
    line = one_line_error(capsys, "train")
    assert f"{out} already holds files" in line and "--overwrite" in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    assert train_cli(config, "--overwrite", "--resume") == 2
    assert "choose one" in one_line_error(capsys, "train")

    assert train_cli(config, "--overwrite") == 0
    assert (out / "notes.md").read_text() == "the user's notes"  # not a run output: kept
    assert not (out / "final" / "mine.txt").exists()  # final/ replaced, as asked
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # one run's log, not two runs' appended


def test_the_python_api_refuses_alike(setup):
    import rerank

    _, config = setup
    assert train_cli(config) == 0
    with pytest.raises(RerankError, match=r"already holds files"):
        rerank.train(str(config))
    with pytest.raises(RerankError, match=r"already holds files"):
        rerank.train(str(config), {"train.steps": 1})


def test_train_into_an_empty_or_new_directory_is_fine(setup):
    tmp_path, config = setup
    (tmp_path / "empty").mkdir()
    assert train_cli(config, "--set", f"train.output_dir={tmp_path / 'empty'}") == 0
    assert (tmp_path / "empty" / "final" / "config.json").is_file()


# -- 2. an output that is also an input --------------------------------------------------


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "spelling"])
def test_output_equal_to_an_input_is_refused(tmp_path, how):
    data = tmp_path / "io.tsv"
    write_table(pairs_frame(), data)
    original = data.read_bytes()
    out = {"same": data, "spelling": tmp_path / "." / "sub" / ".." / "io.tsv"}.get(how)
    if out is None:
        out = tmp_path / "link.tsv"
        (out.symlink_to if how == "symlink" else out.hardlink_to)(data)
    with pytest.raises(RerankError, match=r"is also the input --data; choose another output"):
        check_output(out, {"--data": data})
    check_output(tmp_path / "other.tsv", {"--data": data, "--unused": None})
    assert data.read_bytes() == original


def test_score_evaluate_and_pairs_refuse_to_overwrite_their_input(tmp_path, capsys):
    data = tmp_path / "io.tsv"
    frame = pairs_frame()
    write_table(frame, data)
    scores = tmp_path / "scores.tsv"
    write_table(frame.select("query_id", "doc_id", pl.lit(0.5).alias("score")), scores)
    link = tmp_path / "link.tsv"
    link.symlink_to(data)
    original = data.read_bytes()
    # score refuses before loading the model, so no model is needed here
    assert main(["score", "--model", "nope", "--data", str(data), "--out", str(link)]) == 2
    assert "link.tsv: is also the input --data" in one_line_error(capsys, "score")
    argv = ["evaluate", "--data", str(data), "--scores", str(scores), "--per-query", str(link)]
    assert main(argv) == 2
    assert "is also the input --data" in one_line_error(capsys, "evaluate")
    argv = ["evaluate", "--data", str(data), "--scores", str(scores), "--per-query", str(scores)]
    assert main(argv) == 2
    assert "is also the input --scores" in one_line_error(capsys, "evaluate")
    queries = tmp_path / "queries.tsv"
    queries.write_text("query_id\tquery\nq1\twing flow\n")
    argv = ["pairs", "--queries", str(queries), "--corpus", str(data), "--out", str(link)]
    assert main(argv) == 2
    assert "is also the input --corpus" in one_line_error(capsys, "pairs")
    assert data.read_bytes() == original and scores.is_file()


def test_vocab_outputs_never_replace_an_input_or_a_users_directory(
    tmp_path, tiny_model_dir, capsys
):
    corpus = tmp_path / "corpus.tsv"
    write_table(pairs_frame(), corpus)
    original = corpus.read_bytes()
    train = ["vocab", "train", "--corpus", str(corpus), "--size", "30", "--model"]
    assert main([*train, str(tiny_model_dir), "--out", str(corpus)]) == 2
    assert "is also the input --corpus" in one_line_error(capsys, "vocab")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert main([*train, str(tiny_model_dir), "--out", str(home)]) == 2
    assert "holds files that are not a vocabulary" in one_line_error(capsys, "vocab")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    extend = ["vocab", "extend", "--pieces", str(tmp_path / "pieces"), "--model", str(model)]
    assert main([*extend, "--out", str(model)]) == 2
    assert "is also the input --model" in one_line_error(capsys, "vocab")
    assert main([*extend, "--out", str(home)]) == 2
    assert "holds files that are not a model directory" in one_line_error(capsys, "vocab")
    assert main([*extend, "--out", str(corpus)]) == 2
    assert "exists and is not a directory" in one_line_error(capsys, "vocab")
    assert corpus.read_bytes() == original and (home / "notes.txt").read_text() == "mine"
    assert listing(model) == listing(tiny_model_dir)


def test_a_directory_output_never_replaces_a_file(tmp_path):
    keep = tmp_path / "model"
    keep.write_text("a file")
    with pytest.raises(RerankError, match="exists and is not a directory"):
        with atomic_path(keep, is_dir=True):
            pass
    assert keep.read_text() == "a file"


# -- 3, 6. non-finite numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "key 'train.lr_max': expected a finite number, got 'inf'"),
        ("nan", "key 'train.lr_max': expected a finite number, got 'nan'"),
        ("-inf", "expected a finite number"),
        ("1e300", "0 < lr_max <= 1, got 0.0 and 1e+300"),
    ],
)
def test_non_finite_or_absurd_learning_rates_are_refused(setup, capsys, value, message):
    tmp_path, config = setup
    assert train_cli(config, "--set", f"train.lr_max={value}") == 2
    assert message in one_line_error(capsys, "train")
    assert not (tmp_path / "out").exists()


def test_non_finite_numbers_in_a_config_file_are_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[train]\nclip_norm = nan\n[[objective]]\nparams = { margin = inf }\n")
    with pytest.raises(RerankError, match=r"c.toml: key 'train.clip_norm': expected a finite"):
        from_toml(config)
    config.write_text("[[objective]]\nparams = { margin = inf }\n")
    with pytest.raises(RerankError, match=r"key 'objective.0.params': .*'margin': inf"):
        from_toml(config)
    with pytest.raises(RerankError, match="expected a finite number"):
        apply_overrides(Config(), ["model.heads.score.high=nan"])


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_a_non_finite_loss_stops_training_naming_the_step_and_saves_nothing(
    setup, capsys, monkeypatch, grad_accum
):
    tmp_path, config = setup
    from rerank.training import step

    real = step.loss_terms
    calls = {"n": 0}

    def nan_in_step_two(out, batch, cfg):  # its first micro-batch only
        calls["n"] += 1
        values = real(out, batch, cfg)
        return [v * float("nan") for v in values] if calls["n"] == grad_accum + 1 else values

    monkeypatch.setattr(step, "loss_terms", nan_in_step_two)
    # no clipping: the loss alone must give it away, in whichever micro-batch it is
    argv = ["--set", "train.steps=3", "--set", "train.clip_norm=0"]
    assert train_cli(config, *argv, "--set", f"train.grad_accum={grad_accum}") == 2
    line = one_line_error(capsys, "train")
    assert "training diverged: the loss or its gradient is not finite at step 2" in line
    assert not (tmp_path / "out").exists()  # config.toml and log.jsonl of the run removed


def test_a_model_with_non_finite_weights_writes_no_scores(ranker, tmp_path):
    from rerank.model import RerankModel
    from rerank.score import score_file

    model = RerankModel.from_pretrained(ranker)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.fill_(float("nan"))
    broken = tmp_path / "diverged"
    model.save_pretrained(broken)
    data = tmp_path / "pairs.tsv"
    write_table(pairs_frame(), data)
    with pytest.raises(RerankError, match=r"diverged: the model gives a non-finite score \(\[nan"):
        score_file(broken, data, tmp_path / "s.tsv", precision="fp32")
    assert listing(tmp_path) == sorted(["pairs.tsv", "diverged", *listing_of(broken)])


def listing_of(path: Path) -> list[str]:
    return [f"{path.name}/{p}" for p in listing(path)]


# -- 4. truncated or damaged gzip --------------------------------------------------------------


@pytest.fixture
def damaged_gz(tmp_path):
    """``trunc.tsv.gz``, ``trunc.jsonl.gz`` (cut in half) and ``junk.tsv.gz`` (bad data)."""
    frame = pairs_frame(n_queries=40)
    write_table(frame, tmp_path / "ok.tsv")
    write_table(frame, tmp_path / "ok.jsonl")
    for kind in ("tsv", "jsonl"):
        packed = gzip.compress((tmp_path / f"ok.{kind}").read_bytes())
        (tmp_path / f"trunc.{kind}.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "junk.tsv.gz").write_bytes(b"\x1f\x8b" + b"not deflate data" * 8)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("trunc.tsv.gz", "trunc.tsv.gz: truncated gzip file"),
        ("trunc.jsonl.gz", "trunc.jsonl.gz: truncated gzip file"),
        ("junk.tsv.gz", "junk.tsv.gz: damaged gzip file"),
    ],
)
def test_truncated_or_damaged_gzip_is_one_line_naming_the_file(damaged_gz, name, message):
    path = damaged_gz / name
    readers = [
        lambda: read_pairs(path),  # train, vocab train
        lambda: read_labels(path),  # evaluate
        lambda: read_queries(path),  # pairs
        lambda: read_documents(path),
        lambda: count_rows(*scan_pairs(path)),  # score
    ]
    for read in readers:
        with pytest.raises(RerankError, match=message) as err:
            read()
        assert "\n" not in str(err.value)


def test_evaluate_on_a_truncated_gzip_exits_2(damaged_gz, capsys):
    argv = ["evaluate", "--data", str(damaged_gz / "trunc.tsv.gz"), "--scores"]
    assert main([*argv, str(damaged_gz / "ok.tsv")]) == 2
    assert "truncated gzip file" in one_line_error(capsys, "evaluate")


# -- 5. max_length beyond the position embeddings ----------------------------------------------


def test_max_length_beyond_the_position_embeddings_is_refused_before_writing(setup, capsys):
    tmp_path, config = setup
    assert train_cli(config, "--set", "model.max_length=512") == 2
    assert "model.max_length 512 exceeds the model's 128 positions" in one_line_error(
        capsys, "train"
    )
    assert not (tmp_path / "out").exists()  # no config.toml left behind


# -- 7, 8. read-only places and full disks --------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Path:
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs (full disk / read-only file system)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a file system with about ``free`` bytes left (``fill(free)``)."""
    with tmpfs(tmp_path / "full", "size=1m") as where:

        def fill(free: int = 0) -> Path:
            left = shutil.disk_usage(where).free
            with open(where / ".filler", "wb") as handle:
                with contextlib.suppress(OSError):
                    handle.write(b"\0" * max(left - free, 0))
            return where

        yield fill


@pytest.fixture
def read_only(tmp_path):
    """A directory on a read-only file system (root ignores permission bits)."""
    with tmpfs(tmp_path / "ro", "ro,size=64k") as where:
        yield where


def no_temporaries(where: Path) -> list[str]:
    return [p.name for p in where.iterdir() if p.name != ".filler"]


def test_writes_to_a_full_disk_are_one_line_and_leave_nothing(full_disk, ranker, tmp_path, capsys):
    frame = pairs_frame(n_queries=40)
    data = tmp_path / "pairs.tsv"
    write_table(frame, data)
    scores = tmp_path / "scores.tsv"
    write_table(frame.select("query_id", "doc_id", pl.lit(0.5).alias("score")), scores)
    where = full_disk(0)
    for write in (
        lambda: write_table(frame, where / "pairs.parquet"),
        lambda: write_table(frame, where / "pairs.tsv"),
        lambda: write_table(frame, where / "pairs.jsonl.gz"),
    ):
        with pytest.raises(RerankError, match="cannot write here: No space left on device"):
            write()
        assert no_temporaries(where) == []
    argv = ["score", "--model", str(ranker), "--data", str(data), "--out", str(where / "s.tsv")]
    assert main(argv) == 2
    assert "No space left on device" in one_line_error(capsys, "score")
    argv = ["evaluate", "--data", str(data), "--scores", str(scores), "--per-query"]
    assert main([*argv, str(where / "per_query.tsv")]) == 2
    assert "No space left on device" in one_line_error(capsys, "evaluate")
    assert no_temporaries(where) == []


def test_training_onto_a_full_disk_leaves_nothing(full_disk, setup, capsys):
    _, config = setup
    where = full_disk(16 << 10)  # room for config.toml and the log, not for the model
    out = where / "run"
    assert train_cli(config, "--set", f"train.output_dir={out}") == 2
    assert "No space left on device" in one_line_error(capsys, "train")
    assert no_temporaries(where) == []


def test_writes_to_a_read_only_place_are_one_line(read_only, setup, ranker, capsys):
    tmp_path, config = setup
    data = tmp_path / "pairs.tsv"
    argv = ["score", "--model", str(ranker), "--data", str(data), "--out", str(read_only / "s.tsv")]
    assert main(argv) == 2
    assert "s.tsv: cannot write here: Read-only file system" in one_line_error(capsys, "score")
    frame = pairs_frame()
    with pytest.raises(RerankError, match="cannot write here: Read-only file system"):
        write_table(frame, read_only / "pairs.tsv")
    with pytest.raises(RerankError, match="cannot write here: Read-only file system"):
        write_table(frame, read_only / "new" / "pairs.tsv")
    assert train_cli(config, "--set", f"train.output_dir={read_only / 'run'}") == 2
    assert "Read-only file system" in one_line_error(capsys, "train")
    queries = tmp_path / "queries.tsv"
    queries.write_text("query_id\tquery\nq1\twing flow\n")
    argv = ["pairs", "--queries", str(queries), "--corpus", str(tmp_path / "pairs.tsv")]
    assert main([*argv, "--out", str(read_only / "p.tsv")]) == 2
    assert "Read-only file system" in one_line_error(capsys, "pairs")
    scores = tmp_path / "scores.tsv"
    write_table(frame.select("query_id", "doc_id", pl.lit(0.5).alias("score")), scores)
    argv = ["evaluate", "--data", str(tmp_path / "pairs.tsv"), "--scores", str(scores)]
    assert main([*argv, "--per-query", str(read_only / "per_query.tsv")]) == 2
    assert "Read-only file system" in one_line_error(capsys, "evaluate")


def test_write_error_maps_what_writers_raise_on_a_full_disk(tmp_path, monkeypatch):
    nospace = "No space left on device"
    polars_style = pl.exceptions.ComputeError(
        f"parquet: underlying IO error: {nospace} (os error 28)"
    )
    assert str(write_error("o.parquet", polars_style)) == f"o.parquet: cannot write here: {nospace}"
    assert str(write_error("o.tsv", OSError(errno.EROFS, "x"))).endswith("Read-only file system")
    assert write_error("o.tsv", RuntimeError("a bug")) is None  # a bug keeps its traceback
    assert write_error("o.tsv", OSError(errno.EBADF, "x")) is None
    # torch.save says only "unexpected pos": recognised by the disk having no room left
    monkeypatch.setattr("rerank.atomic._disk_full", lambda path: True)
    assert nospace in str(write_error("o.pt", RuntimeError("unexpected pos 576 vs 534")))
    with pytest.raises(RerankError, match=nospace), atomic_path(tmp_path / "o.pt") as tmp:
        tmp.write_text("partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
    assert listing(tmp_path) == []


# -- 9. damaged or pickled weights ------------------------------------------------------------


def test_damaged_safetensors_are_one_line_naming_the_file(ranker, tmp_path):
    from rerank.model import RerankModel

    for name, cut in (("header", 100), ("data", -64)):
        copy = tmp_path / name
        shutil.copytree(ranker, copy)
        weights = copy / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:cut])
        with pytest.raises(RerankError, match=rf"{name}/model.safetensors: damaged safetensors"):
            RerankModel.from_pretrained(copy)


def test_a_pickled_pytorch_model_bin_is_refused_and_never_unpickled(ranker, tmp_path):
    from rerank.model import RerankModel

    copy = tmp_path / "pickled"
    shutil.copytree(ranker, copy)
    (copy / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(Payload(str(marker)))
    (copy / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(
        RerankError,
        match=r"pickled: no model.safetensors; found only "
        r"pytorch_model.bin \(pickle files",
    ):
        RerankModel.from_pretrained(copy)
    assert not marker.exists()


class Payload:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_damaged_checkpoint_files_are_one_line_naming_the_file(setup, capsys):
    tmp_path, config = setup
    assert train_cli(config, "--set", "train.save_every=1", "--set", "train.steps=1") == 0
    checkpoint = tmp_path / "out" / "checkpoint"
    for name in ("optimizer.pt", "rng.pt"):
        path = checkpoint / name
        good = path.read_bytes()
        path.write_bytes(good[:100])
        capsys.readouterr()
        assert train_cli(config, "--resume") == 2
        assert f"{path}: damaged checkpoint file" in one_line_error(capsys, "train")
        path.write_bytes(good)
    assert (checkpoint / "state.json").is_file()  # the checkpoint is kept to resume from


# -- 10. output_dir names a file ----------------------------------------------------------


def test_output_dir_naming_a_file_is_refused(setup, capsys):
    tmp_path, config = setup
    (tmp_path / "afile").write_text("keep")
    assert train_cli(config, "--set", f"train.output_dir={tmp_path / 'afile'}") == 2
    assert "afile is a file; expected a directory" in one_line_error(capsys, "train")
    with pytest.raises(RerankError, match="afile is a file; expected a directory"):
        train_module.train(run_config(config, f"train.output_dir={tmp_path / 'afile'}"))
    assert (tmp_path / "afile").read_text() == "keep"


# -- 11. --resume before the first checkpoint; resuming with changes --------------------------


def run_config(config: Path, *overrides: str) -> Config:
    cfg = from_toml(config)
    apply_overrides(cfg, list(overrides))
    return cfg


def test_resume_without_a_checkpoint_starts_over_without_repeating_log_lines(setup, caplog):
    tmp_path, config = setup
    cfg = run_config(config)
    train_module.train(cfg, max_steps_this_run=1)  # a crash before any checkpoint
    log = tmp_path / "out" / "log.jsonl"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1]
    cfg = run_config(config, "train.resume=true")
    train_module.train(cfg)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]
    assert "no checkpoint to resume from; starting at step 0" in caplog.text


def test_resume_with_other_data_lr_or_steps_warns_naming_the_change(setup, caplog):
    tmp_path, config = setup
    train_module.train(run_config(config, "train.save_every=1"), max_steps_this_run=1)
    write_table(pairs_frame(n_queries=5), tmp_path / "more.parquet")
    caplog.clear()
    again = ("train.resume=true", "train.save_every=1", "train.steps=4")
    train_module.train(run_config(config, *again, "train.lr_max=1e-4"), max_steps_this_run=2)
    assert "resuming with train.lr_max 3e-05 -> 0.0001" in caplog.text
    assert "resuming with train.steps 2 -> 4" in caplog.text
    caplog.clear()
    more = f"data.train={tmp_path / 'more.parquet'}"
    train_module.train(run_config(config, *again, more), max_steps_this_run=3)
    assert "resuming with data.train" in caplog.text and "more.parquet'" in caplog.text
    assert "train.lr_max 0.0001 -> 3e-05" in caplog.text
    caplog.clear()
    train_module.train(run_config(config, *again, more))
    assert "resuming with" not in caplog.text  # the same settings: no warning


def test_a_changed_data_file_under_the_same_name_is_warned_about(setup):
    from rerank.config import to_toml
    from rerank.training.resume import changes_since

    tmp_path, config = setup
    cfg = run_config(config)
    size = (tmp_path / "train.parquet").stat().st_size
    same = {"config": to_toml(cfg), "data_bytes": size}
    assert changes_since(same, cfg) == []
    changed = {"config": to_toml(cfg), "data_bytes": size + 10}
    assert changes_since(changed, cfg) == [
        f"data.train changed since the checkpoint ({size + 10:,} -> {size:,} bytes)"
    ]


# -- 12. control characters from a file are escaped ------------------------------------------


def test_header_bytes_are_escaped_in_score_errors(ranker, tmp_path, capsys):
    data = tmp_path / "esc.tsv"
    data.write_bytes(b"query_id\tdoc_id\x1b[31mRED\tquery\nq\td\tx\n")
    argv = ["score", "--model", str(ranker), "--data", str(data), "--out", str(tmp_path / "s.tsv")]
    assert main(argv) == 2
    line = one_line_error(capsys, "score")
    assert "\x1b" not in line and "'doc_id\\x1b[31mRED'" in line
    assert "\x1b" not in str(input_error("a\x1b.tsv", "bad \x9b value\r"))
    assert "\\x9b" in str(input_error(None, "bad \x9b value"))


# -- 13. scratch directories left by kill -9 ---------------------------------------------------


def test_stale_scratch_directories_of_the_same_output_are_removed(tmp_path):
    out = tmp_path / "scores.tsv"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    host = socket.gethostname()
    stale = tmp_path / ".scores.tsv.abc123.parts"
    stale.mkdir()
    (stale / "owner").write_text(f"{host} {dead.stdout.strip()}\n")
    (stale / "part-00000-000000000000.parquet").write_bytes(b"x")
    ownerless = tmp_path / ".scores.tsv.def456.parts"  # killed before writing its owner
    ownerless.mkdir()
    alive = tmp_path / ".scores.tsv.ghi789.parts"
    alive.mkdir()
    (alive / "owner").write_text(f"{host} {os.getpid()}\n")
    remote = tmp_path / ".scores.tsv.jkl012.parts"
    remote.mkdir()
    (remote / "owner").write_text("another-host 1\n")
    other = tmp_path / ".other.tsv.mno345.parts"  # another output's: not ours to judge
    other.mkdir()
    made = Path(make_parts_dir(out))
    assert not stale.exists() and not ownerless.exists()
    assert alive.is_dir() and remote.is_dir() and other.is_dir()
    assert (made / "owner").read_text().split() == [host, str(os.getpid())]


def test_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    import socket

    host = socket.gethostname()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale_file = tmp_path / f".out.tsv.{host}-{dead}.k2j4_x.tmp"
    stale_file.write_text("partial")
    stale_dir = tmp_path / f".out.tsv.{host}-{dead}.a8b7c6.tmp"
    stale_dir.mkdir()
    alive = tmp_path / f".out.tsv.{host}-{os.getpid()}.zz9y8x.tmp"
    alive.write_text("being written")
    remote = tmp_path / ".out.tsv.another-host-7.qq1w2e.tmp"
    remote.write_text("another machine's")
    unowned = tmp_path / ".out.tsv.r4nd0m.tmp"  # named before owners were recorded
    unowned.write_text("left alone")
    write_table(pairs_frame(), tmp_path / "out.tsv")
    assert not stale_file.exists() and not stale_dir.exists()
    assert alive.exists() and remote.exists() and unowned.exists()


# -- 14. a UTF-8 byte-order mark ------------------------------------------------------------


def test_a_byte_order_mark_reads_in_jsonl_as_in_tsv(tmp_path):
    frame = pairs_frame()
    write_table(frame, tmp_path / "plain.jsonl")
    bom = b"\xef\xbb\xbf"
    (tmp_path / "bom.jsonl").write_bytes(bom + (tmp_path / "plain.jsonl").read_bytes())
    (tmp_path / "bom.jsonl.gz").write_bytes(gzip.compress((tmp_path / "bom.jsonl").read_bytes()))
    for name in ("bom.jsonl", "bom.jsonl.gz"):
        assert read_pairs(tmp_path / name).equals(frame), name
        lazy, source = scan_pairs(tmp_path / name)
        assert count_rows(lazy, source) == frame.height
    queries = tmp_path / "q.jsonl"
    queries.write_bytes(bom + b'{"query_id": "q1", "query": "wing"}\n')
    assert read_queries(queries).rows() == [("q1", "wing")]
    # a bad row after the mark is still located by its line
    (tmp_path / "bad.jsonl").write_bytes(bom + b'{"query_id": "q1"}\n{"query_id": \n')
    with pytest.raises(RerankError, match=r"bad.jsonl:2: expected a JSON object"):
        read_pairs(tmp_path / "bad.jsonl")


# -- 15. score reads gzipped tables ---------------------------------------------------------


@pytest.mark.parametrize("name", ["pairs.tsv.gz", "pairs.jsonl.gz"])
def test_score_reads_gzipped_tables(ranker, tmp_path, name):
    from rerank.score import score_file

    frame = pairs_frame()
    write_table(frame, tmp_path / name)
    write_table(frame, tmp_path / "pairs.parquet")
    lazy, source = scan_pairs(tmp_path / name)
    assert count_rows(lazy, source) == frame.height
    chunks = [c for _, c in iter_chunks(lazy, source, 0, frame.height, 5)]
    assert pl.concat(chunks).equals(frame.drop("label"))
    score_file(ranker, tmp_path / name, tmp_path / "a.tsv", precision="fp32")
    score_file(ranker, tmp_path / "pairs.parquet", tmp_path / "b.tsv", precision="fp32")
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()


# -- bad inputs found beyond the audit's list --------------------------------------------------


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    from rerank.pairs import read_judged

    dup = tmp_path / "dup.tsv"
    dup.write_text("query_id\tdoc_id\tquery\ttitle\tsummary\tquery\nq\td\tx\tt\ts\ty\n")
    for read in (lambda: read_pairs(dup), lambda: scan_pairs(dup), lambda: read_queries(dup)):
        with pytest.raises(RerankError, match=r"dup.tsv:1: column 'query' appears twice"):
            read()
    # a headerless qrels-like TSV may repeat a value on its first line
    judged = tmp_path / "judged.tsv"
    judged.write_text("q1\t0\td1\t0\n")
    assert read_judged(judged).rows() == [("q1", "d1")]


def test_a_directory_given_as_an_input_file_is_named_so(tmp_path):
    folder = tmp_path / "queries.tsv"
    folder.mkdir()
    with pytest.raises(RerankError, match=r"queries\.tsv: is a directory, not a file"):
        read_queries(folder)
    with pytest.raises(RerankError, match=r"queries\.tsv: not a file"):
        read_pairs(folder)
    (tmp_path / "conf.toml").mkdir()
    with pytest.raises(RerankError, match=r"conf\.toml: is a directory; expected a TOML"):
        from_toml(tmp_path / "conf.toml")


def test_a_non_finite_teacher_score_is_refused_at_reading(setup, capsys):
    tmp_path, config = setup
    frame = pairs_frame(labels=False).with_columns(
        pl.Series("teacher:t1", [0.5] * 5 + [float("nan")] + [0.5] * 10)
    )
    write_table(frame, tmp_path / "rekindle.tsv")
    argv = [
        "--set",
        f"data.train={tmp_path / 'rekindle.tsv'}",
        "--set",
        "objective.0.loss=pointwise_mse",
    ]
    assert train_cli(config, *argv, "--set", "objective.0.target=teacher:t1") == 2
    line = one_line_error(capsys, "train")
    assert "rekindle.tsv:7: column 'teacher:t1': expected a finite number, got 'NaN'" in line


def test_non_utf8_bytes_in_a_pairs_input_are_located(tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_bytes(b"query_id\tquery\nq1\tok\nq2\tbad \xff here\n")
    with pytest.raises(RerankError, match=r"q\.tsv:3: expected UTF-8 text, got byte 0xff"):
        read_queries(queries)
    docs = tmp_path / "d.jsonl"
    docs.write_bytes(b'{"doc_id": "d1", "summary": "a"}\n{"doc_id": "d2", "summary": "\xfe"}\n')
    with pytest.raises(RerankError, match=r"d\.jsonl:2: expected UTF-8 text, got byte 0xfe"):
        read_documents(docs)
