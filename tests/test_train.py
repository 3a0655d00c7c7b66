"""The one training loop on a tiny BERT: schedule, smoke, objectives, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_same_training
from safetensors.torch import load_file

from rerank.config import Config, apply_overrides
from rerank.errors import RerankError
from rerank.train import lr_at, train

WORDS = "flow heat wing pressure boundary layer plate shock wave theory speed lift".split()
ROOT = Path(__file__).parent.parent


def make_frame(n_queries=8, docs=6, *, seed=0, labels=True, teacher=False):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choice(WORDS, 3))
        for d in range(docs):
            row = {
                "query_id": f"q{q}",
                "doc_id": f"d{q}-{d}",
                "query": query,
                "title": " ".join(rng.choice(WORDS, 2)),
                "summary": " ".join(rng.choice(WORDS, int(rng.integers(2, 10)))),
            }
            if labels:
                row["label"] = int(rng.integers(0, 5))
            if teacher:
                row["teacher:t1"] = float(rng.normal())
            rows.append(row)
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    make_frame().write_parquet(path)
    return path


def tiny_config(model_dir, train_path, out, *extra):
    cfg = Config()
    apply_overrides(
        cfg,
        [
            f"model.path={model_dir}",
            f"data.train={train_path}",
            f"train.output_dir={out}",
            "model.max_length=32",
            "data.list_size=4",
            "data.groups_per_batch=2",
            "train.steps=4",
            "train.lr_max=1e-3",
            "train.bf16=false",  # tiny models: bf16 conversion costs more than it saves
            "train.num_threads=1",
            "train.progress=false",
            "train.log_every=1",
            *extra,
        ],
    )
    return cfg


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_schedule_warmup_then_polynomial_decay():
    kw = {"total_steps": 10, "lr_max": 1e-3, "warmup_steps": 4}
    assert [lr_at(s, **kw) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr_at(4, **kw) == pytest.approx(1e-3)
    assert lr_at(7, **kw) == pytest.approx(5e-4)  # halfway through the decay, linear
    assert lr_at(7, **kw, power=2.0) == pytest.approx(2.5e-4)
    assert lr_at(7, **kw, lr_min=1e-4) == pytest.approx(1e-4 + 9e-4 * 0.5)
    assert lr_at(10, **kw) == pytest.approx(0.0)
    assert lr_at(0, total_steps=3, lr_max=1.0) == 1.0  # no warm-up: starts at the peak


def test_two_steps_change_the_scores_and_write_outputs(tiny_model_dir, train_file, tmp_path):
    from rerank.model import RerankModel

    cfg = tiny_config(tiny_model_dir, train_file, tmp_path / "run", "train.steps=2")
    result = train(cfg)
    assert result.finished and result.steps == 2 and result.final_dir == tmp_path / "run" / "final"
    # the control: the same run (same seed, so the same fresh head) with a ~zero learning rate
    still = train(
        tiny_config(
            tiny_model_dir, train_file, tmp_path / "still", "train.steps=2", "train.lr_max=1e-12"
        )
    )
    frame = make_frame(2, 3, seed=9)
    scores = []
    for path in (still.final_dir, result.final_dir):
        model = RerankModel.from_pretrained(path).eval()
        enc = model.pair_encoder(max_length=32)
        x = enc.collate(
            enc.encode(
                frame["query"].to_list(), list(zip(frame["title"], frame["summary"], strict=True))
            )
        )
        with torch.no_grad():
            scores.append(model(**x)["score"])
    assert not torch.allclose(scores[0], scores[1], rtol=1e-3, atol=1e-4)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert {"lr", "loss", "loss/0:hinge", "pairs_per_s"} <= set(lines[0])
    assert lines[0]["lr"] == pytest.approx(1e-3) and lines[1]["lr"] == pytest.approx(5e-4)
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert f'path = "{tiny_model_dir}"' in saved and "steps = 2" in saved


def test_bf16_cpu_training_saves_a_plain_hf_model(tiny_model_dir, train_file, tmp_path):
    from transformers import AutoModelForSequenceClassification

    cfg = tiny_config(
        tiny_model_dir, train_file, tmp_path / "run", "train.steps=1", "train.bf16=true"
    )
    result = train(cfg)
    config = json.loads((result.final_dir / "config.json").read_text())
    assert not any("attn" in key for key in config)  # the fp32-attention switch is not saved
    # the trained input lengths travel with the model (scoring defaults to them)
    lengths = {k: config["rerank"][k] for k in ("max_length", "max_query_length")}
    assert lengths == {
        "max_length": cfg.model.max_length,
        "max_query_length": cfg.model.max_query_length,
    }
    assert (
        json.loads((result.final_dir / "tokenizer_config.json").read_text())["model_max_length"]
        == cfg.model.max_length
    )
    model = AutoModelForSequenceClassification.from_pretrained(str(result.final_dir))
    assert model.config._attn_implementation == "sdpa"


def test_fp32_attention_under_cpu_bf16_autocast_matches_sdpa(tiny_model_dir):
    from rerank.model import RerankModel
    from rerank.training.model import use_cpu_attention

    torch.manual_seed(0)
    model = RerankModel.from_pretrained(tiny_model_dir).eval()
    x = {
        "input_ids": torch.randint(5, 300, (3, 12)),
        "attention_mask": torch.ones(3, 12, dtype=torch.long),
    }
    x["attention_mask"][0, 8:] = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = model(**x)["score"]
        assert use_cpu_attention(model)
        after = model(**x)["score"]
    assert model.encoder.config._attn_implementation == "rerank_cpu"
    assert torch.allclose(before, after, atol=0.05)


def test_attention_dropout_override(tiny_model_dir):
    from rerank.model import RerankModel
    from rerank.training.model import set_attention_dropout

    model = RerankModel.from_pretrained(tiny_model_dir)
    assert set_attention_dropout(model.encoder, 0.0) == 2  # one per layer
    probs = {
        m.dropout.p for m in model.encoder.modules() if type(m).__name__ == "BertSelfAttention"
    }
    assert probs == {0.0}
    assert model.encoder.config.attention_probs_dropout_prob == 0.1  # saved config unchanged


def test_head_lr_scale_speeds_up_only_the_head(tiny_model_dir, train_file, tmp_path):
    from rerank.model import RerankModel
    from rerank.training import checkpoint as ckpt

    ckpt.seed_everything(42)  # what train() does before building the model
    start = {
        k: v.clone() for k, v in RerankModel.from_pretrained(tiny_model_dir).state_dict().items()
    }
    moved = {}
    for scale in (1, 10):
        cfg = tiny_config(
            tiny_model_dir,
            train_file,
            tmp_path / f"s{scale}",
            "train.steps=1",
            f"train.head_lr_scale={scale}",
        )
        final = weights(train(cfg).final_dir)
        moved[scale] = {
            name: (final[name] - start[f"encoder.{name}"]).abs().max().item()
            for name in (
                "classifier.weight",
                "bert.pooler.dense.weight",
                "bert.encoder.layer.0.attention.self.query.weight",
            )
        }
    # Adam's first step moves each weight by about lr (1e-3 here) times its group's scale
    assert moved[1]["classifier.weight"] == pytest.approx(1e-3, rel=0.1)
    assert moved[10]["classifier.weight"] == pytest.approx(1e-2, rel=0.1)
    assert moved[10]["bert.pooler.dense.weight"] == pytest.approx(1e-2, rel=0.1)
    body = "bert.encoder.layer.0.attention.self.query.weight"
    assert moved[10][body] == pytest.approx(moved[1][body], rel=0.1)


@pytest.mark.parametrize("exact", [False, pytest.param(True, marks=pytest.mark.determinism)])
def test_resume_after_interruption_gives_identical_weights(
    tiny_model_dir, train_file, tmp_path, exact
):
    # dropout on (the tiny BERT's default 0.1), so exactness needs the restored RNG story
    common = ("train.steps=6", "train.save_every=2", "train.warmup_steps=2")
    full = train(tiny_config(tiny_model_dir, train_file, tmp_path / "full", *common))
    cut = train(
        tiny_config(tiny_model_dir, train_file, tmp_path / "cut", *common), max_steps_this_run=3
    )
    assert not cut.finished and cut.final_dir is None
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2  # step 3 was lost with the "crash"
    at_step_2 = weights(tmp_path / "cut" / "checkpoint" / "model")
    resumed = train(
        tiny_config(tiny_model_dir, train_file, tmp_path / "cut", *common, "train.resume=true")
    )
    assert resumed.finished and resumed.steps == 6
    a, b = weights(full.final_dir), weights(resumed.final_dir)
    assert_same_training(a, b, exact=exact)
    assert not all(torch.equal(a[k], at_step_2[k]) for k in a)  # training did move them
    log = [json.loads(x)["step"] for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]  # the lost step's line was dropped on resume


def test_evaluation_selects_the_best_checkpoint(tiny_model_dir, train_file, tmp_path):
    cfg = tiny_config(
        tiny_model_dir, train_file, tmp_path / "run", "train.eval_every=2", "train.log_every=2"
    )
    result = train(cfg, eval_frame=make_frame(4, 5, seed=3))
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [x for x in lines if "eval" in x]
    assert [x["step"] for x in evals] == [2, 4]
    assert set(evals[0]["eval"]) == {"pnr", "ndcg@10"}
    best = max(evals, key=lambda x: x["eval"]["pnr"])  # first one on ties
    assert result.best_step == best["step"] and result.best_metric == best["eval"]["pnr"]
    assert result.metrics == evals[-1]["eval"]
    assert (result.best_dir / "config.json").is_file()


def test_thread_count_survives_an_evaluator_that_changes_it(tiny_model_dir, train_file, tmp_path):
    # rerank.measures' numba kernels share torch's OpenMP runtime and reset its thread count
    seen = []

    def spy(inputs, *, step):
        seen.append(torch.get_num_threads())
        return inputs

    def evaluator(model):
        torch.set_num_threads(2)
        return {"pnr": 1.0}

    cfg = tiny_config(tiny_model_dir, train_file, tmp_path / "run", "train.eval_every=1")
    train(cfg, transform=spy, evaluator=evaluator)
    assert seen[:4] == [1, 1, 1, 1]


def test_unknown_metric_for_best_fails_before_training(tiny_model_dir, train_file, tmp_path):
    cfg = tiny_config(tiny_model_dir, train_file, tmp_path / "run", "train.metric_for_best=ndgc@10")
    with pytest.raises(RerankError, match="ndgc@10"):
        train(cfg, eval_frame=make_frame(2, 3))
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_existing_checkpoint_without_resume_is_refused(tiny_model_dir, train_file, tmp_path):
    cfg = tiny_config(
        tiny_model_dir, train_file, tmp_path / "run", "train.steps=1", "train.save_every=1"
    )
    train(cfg)
    with pytest.raises(RerankError, match="holds a checkpoint of an earlier run; resume it"):
        train(tiny_config(tiny_model_dir, train_file, tmp_path / "run", "train.steps=1"))


def test_supervised_loss_on_unlabeled_data_is_a_user_error(tiny_model_dir, tmp_path):
    path = tmp_path / "pairs.parquet"
    make_frame(labels=False).write_parquet(path)
    cfg = tiny_config(tiny_model_dir, path, tmp_path / "run")
    with pytest.raises(
        RerankError,
        match=r"pairs.parquet: the training data has no 'label' column, but objective term 0 \('hinge'\)",
    ):
        train(cfg)


def test_single_level_queries_are_skipped_and_counted(tiny_model_dir, tmp_path):
    frame = make_frame(6, 4)
    frame = frame.with_columns(
        pl.when(pl.col("query_id").is_in(["q1", "q4"]))
        .then(2)
        .otherwise(pl.col("label"))
        .alias("label")
    )
    path = tmp_path / "train.parquet"
    frame.write_parquet(path)
    result = train(tiny_config(tiny_model_dir, path, tmp_path / "run", "train.steps=1"))
    assert result.skipped_groups == 2
    pointwise = tiny_config(
        tiny_model_dir, path, tmp_path / "run2", "train.steps=1", "objective.0.loss=pointwise_mse"
    )
    assert train(pointwise).skipped_groups == 0


def test_rekindle_objective_from_an_unlabeled_frame_with_teacher_scores(tiny_model_dir, tmp_path):
    cfg = tiny_config(
        tiny_model_dir, tmp_path / "unused.parquet", tmp_path / "run", "train.steps=2"
    )
    apply_overrides(cfg, ["model.max_length=48"])
    cfg.objective = []
    from rerank.config import LossTerm

    cfg.objective = [
        LossTerm(loss="pointwise_mse", target="teacher:t1"),
        LossTerm(loss="pairwise_mse", target="teacher:t1"),
        LossTerm(loss="mlm", weight=0.5),
    ]
    frame = make_frame(labels=False, teacher=True)
    result = train(cfg, train_frame=frame)
    assert result.finished
    last = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]
    for key in ("loss/0:pointwise_mse", "loss/1:pairwise_mse", "loss/2:mlm"):
        assert last[key] > 0
    # MLM over a ~400-word vocabulary starts near ln(405) = 6.0
    assert 4.0 < last["loss/2:mlm"] < 8.0
    total = last["loss/0:pointwise_mse"] + last["loss/1:pairwise_mse"] + 0.5 * last["loss/2:mlm"]
    assert last["loss"] == pytest.approx(total, rel=1e-5)
    assert (result.final_dir / "rerank_mlm_head.safetensors").is_file()


def test_classification_head_with_cross_entropy(tiny_model_dir, tmp_path):
    # GLUE-style: every example is its own "query"; a 2-class primary head
    frame = make_frame(16, 1).with_columns(pl.col("label") % 2)
    cfg = tiny_config(
        tiny_model_dir,
        tmp_path / "unused.parquet",
        tmp_path / "run",
        "train.steps=2",
        "data.groups_per_batch=8",
    )
    apply_overrides(
        cfg,
        [
            'model.heads.score={ kind = "classification", num_outputs = 2 }',
            "objective.0.loss=cross_entropy",
        ],
    )
    result = train(cfg, train_frame=frame)
    line = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert line["loss/0:cross_entropy"] == pytest.approx(np.log(2), abs=0.3)
    assert result.finished


def test_gradient_accumulation_consumes_that_many_batches(tiny_model_dir, train_file, tmp_path):
    cfg = tiny_config(
        tiny_model_dir,
        train_file,
        tmp_path / "run",
        "train.steps=3",
        "train.grad_accum=2",
        "train.save_every=3",
    )
    train(cfg)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    # 8 queries / 2 per batch = 4 batches an epoch; 3 steps x 2 batches = 6 -> epoch 1, position 2
    assert (state["epoch"], state["position"]) == (1, 2)


def _kill_when_checkpoint_appears(cmd, out_dir, env):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    state = out_dir / "checkpoint" / "state.json"
    while time.time() < deadline and proc.poll() is None:
        if state.is_file():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    return proc


@pytest.mark.slow
def test_resume_after_sigkill_matches_unbroken_run(tiny_model_dir, train_file, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from rerank.config import Config, apply_overrides\n"
        "from rerank.train import train\n"
        "cfg = apply_overrides(Config(), sys.argv[1:])\n"
        "train(cfg)\n"
    )
    args = [
        f"model.path={tiny_model_dir}",
        f"data.train={train_file}",
        "model.max_length=32",
        "data.list_size=4",
        "train.steps=40",
        "train.save_every=5",
        "train.bf16=false",
        "train.num_threads=1",
        "train.progress=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = _kill_when_checkpoint_appears(
        [sys.executable, str(script), *args, f"train.output_dir={tmp_path / 'a'}"],
        tmp_path / "a",
        env,
    )
    assert killed.returncode == -signal.SIGKILL
    subprocess.run(
        [
            sys.executable,
            str(script),
            *args,
            f"train.output_dir={tmp_path / 'a'}",
            "train.resume=true",
        ],
        env=env,
        check=True,
    )
    subprocess.run(
        [sys.executable, str(script), *args, f"train.output_dir={tmp_path / 'b'}"],
        env=env,
        check=True,
    )
    a, b = weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")
    assert_same_training(a, b)


def test_ddp_two_processes_on_cpu(tiny_model_dir, train_file, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import json, os, pathlib, sys\n"
        "from rerank.config import Config, apply_overrides\n"
        "from rerank.train import train\n"
        "cfg = apply_overrides(Config(), sys.argv[2:])\n"
        "r = train(cfg)\n"
        "# a file a rank: the two processes' stdout lines can interleave\n"
        "result = pathlib.Path(sys.argv[1]) / f\"rank{os.environ['RANK']}.json\"\n"
        "result.write_text(json.dumps({'steps': r.steps, 'final': str(r.final_dir)}))\n"
    )
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tmp_path), f"model.path={tiny_model_dir}", f"data.train={train_file}",
        f"train.output_dir={out}", "model.max_length=32", "data.list_size=4",
        "data.groups_per_batch=2", "train.steps=3", "train.bf16=false", "train.num_threads=1",
        "train.progress=false", "train.log_every=1", "train.save_every=3",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(results) == 2 and all(r["steps"] == 3 for r in results)
    assert {r["final"] for r in results} == {"None", str(out / "final")}  # rank 0 writes
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]  # one log, from rank 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    # 8 queries, 2 per batch: 4 batches an epoch, 2 per rank; 3 steps -> epoch 1, position 1
    assert (state["epoch"], state["position"]) == (1, 1)
