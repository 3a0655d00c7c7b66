"""``rerank train``: wiring, and every user error as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rerank.cli import main

ROOT = Path(__file__).parent.parent
WORDS = "flow heat wing pressure boundary layer plate shock wave theory".split()


def pairs(labels=True, n_queries=4, docs=4):
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
    pairs().write_parquet(tmp_path / "train.parquet")
    pairs(labels=False).write_parquet(tmp_path / "unlabeled.parquet")
    text = f"""
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
steps = 1
bf16 = false
num_threads = 1
progress = false
"""
    config = tmp_path / "teacher.toml"
    config.write_text(text)
    return tmp_path, config


def test_train_runs_and_writes_outputs_next_to_the_config(setup, capsys):
    tmp_path, config = setup
    assert main(["train", "--config", str(config), "--set", "train.log_every=1"]) == 0
    out = tmp_path / "out"
    assert (out / "final" / "config.json").is_file()
    assert (out / "log.jsonl").is_file()
    resolved = (out / "config.toml").read_text()
    assert f'train = "{tmp_path / "train.parquet"}"' in resolved and "log_every = 1" in resolved
    assert "finished at step 1/1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.path=/no/such/model"], "/no/such/model: model directory does not exist"),
        (["train.lrmax=1"], "unknown key 'train.lrmax' (did you mean 'train.lr_max'?)"),
        (["objective.0.loss=hing"], "objective.0.loss: unknown loss 'hing' (valid: hinge,"),
        (
            ["data.train=unlabeled.parquet"],
            "unlabeled.parquet: the training data has no 'label' column, "
            "but objective term 0 ('hinge') trains on labels",
        ),
        (["train.steps=x"], "key 'train.steps': expected an integer, got 'x'"),
    ],
)
def test_user_errors_exit_2_with_one_line(setup, capsys, monkeypatch, overrides, message):
    tmp_path, config = setup
    monkeypatch.chdir(tmp_path)
    args = ["train", "--config", str(config)]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rerank train: error: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out" / "final").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model\n", "teacher.toml: not valid TOML"),
        ("[train]\nlrmax = 1\n", "teacher.toml: unknown key 'train.lrmax' (did you mean"),
        (
            "[data]\ntrain = 'x.parquet'\n[[objective]]\nloss = 'ranknet'\n",
            "teacher.toml: objective.0.loss: unknown loss 'ranknet' (valid: hinge",
        ),
    ],
)
def test_bad_config_files_exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "teacher.toml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: config file does not exist" in capsys.readouterr().err


def test_no_traceback_from_the_console_entry_point(setup):
    _, config = setup
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rerank",
            "train",
            "--config",
            str(config),
            "--set",
            "objective.0.loss=nope",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("rerank train: error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
