"""Progress lines in logs where no bar is shown (stderr not a terminal, or progress off)."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

import rerank
from rerank.progress import ProgressLog

WORDS = "flow heat wing pressure boundary layer plate shock wave theory".split()


def test_lines_are_throttled_and_the_last_always_logs(caplog):
    caplog.set_level(logging.INFO, logger="rerank.progress")
    log = ProgressLog(10, unit="step", every_s=3600)
    for _ in range(10):
        log.update(1, loss=0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the first, then nothing for an hour, then the last
    assert lines[0].startswith("step 1/10 (10%), loss 0.5000, ")
    assert lines[1].startswith("step 10/10 (100%)") and "steps/s" in lines[1]
    assert "ETA 0:00:00" in lines[1] and "elapsed" in lines[1]


def pairs(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {
            "query_id": f"q{q}",
            "doc_id": f"d{q}-{d}",
            "query": " ".join(rng.choice(WORDS, 3)),
            "title": " ".join(rng.choice(WORDS, 2)),
            "summary": " ".join(rng.choice(WORDS, 6)),
            "label": d % 3,
        }
        for q in range(4)
        for d in range(4)
    ]
    pl.DataFrame(rows).write_parquet(tmp_path / "train.parquet")
    return tmp_path / "train.parquet"


def test_training_logs_progress_lines_without_a_bar(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.INFO)
    rerank.train(
        {
            "model": {"path": str(tiny_model_dir), "max_length": 32},
            "data": {"train": str(pairs(tmp_path)), "list_size": 4},
            "train": {"output_dir": str(tmp_path / "out"), "steps": 3, "bf16": False},
        },
        # progress off, as the cycle's stages run: lines instead of a bar
        ["train.progress=false", "train.num_threads=1", "train.log_every=1"],
    )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert lines[0].startswith("step 1/3 (33%), loss ")
    assert lines[-1].startswith("step 3/3 (100%), loss ") and "pairs_per_s" in lines[-1]
    assert "steps/s" in lines[-1] and "ETA" in lines[-1]
    # and the loss curve beside log.jsonl
    assert (tmp_path / "out" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_plot_has_an_eval_panel(tmp_path):
    from rerank.progress import plot_training_log

    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"step": 1, "loss": 1.0, "loss/0:hinge": 1.0}\n'
        '{"step": 2, "loss": 0.5, "loss/0:hinge": 0.5}\n'
        '{"step": 2, "eval": {"pnr": 1.5}, "best": true}\n'
    )
    assert plot_training_log(log, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000
    (tmp_path / "empty.jsonl").write_text("")
    assert not plot_training_log(tmp_path / "empty.jsonl", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_scoring_logs_progress_lines_in_a_log_file(tmp_path, tiny_model_dir, caplog):
    from rerank.score import score_file

    caplog.set_level(logging.INFO, logger="rerank.progress")
    score_file(
        tiny_model_dir, pairs(tmp_path), tmp_path / "s.tsv", max_length=32, precision="fp32"
    )  # under pytest stderr is not a terminal
    lines = [r.getMessage() for r in caplog.records if r.name == "rerank.progress"]
    assert lines and lines[-1].startswith("scoring: pair 16/16 (100%)")


def test_report_to_tensorboard_writes_event_files(tmp_path, tiny_model_dir):
    import pytest

    pytest.importorskip("tensorboard")
    result = rerank.train(
        {
            "model": {"path": str(tiny_model_dir), "max_length": 32},
            "data": {"train": str(pairs(tmp_path)), "eval": str(tmp_path / "train.parquet")},
            "train": {"output_dir": str(tmp_path / "out"), "steps": 2, "bf16": False},
        },
        [
            "train.progress=false",
            "train.num_threads=1",
            "train.log_every=1",
            'train.report_to=["tensorboard"]',
            "data.list_size=4",
        ],
    )
    events = list((result.output_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr", "eval/pnr"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]


def test_report_to_unknown_tracker_is_one_line(tmp_path, tiny_model_dir):
    import pytest

    from rerank.errors import RerankError

    with pytest.raises(RerankError, match="unknown tracker 'wandb'; available: tensorboard"):
        rerank.train(
            {
                "model": {"path": str(tiny_model_dir), "max_length": 32},
                "data": {"train": str(pairs(tmp_path))},
                "train": {"output_dir": str(tmp_path / "out"), "steps": 1, "bf16": False},
            },
            ['train.report_to=["wandb"]', "train.progress=false"],
        )
