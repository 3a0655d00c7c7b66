"""GLUE fine-tuning and expert-guided pre-training through the one loop, on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rerank.config import HeadConfig, LossTerm
from rerank.errors import RerankError
from rerank.glue.stages import (
    GlueConfig,
    GlueSection,
    apply_task_defaults,
    finetune,
    pretrain,
    score_teachers,
)
from rerank.glue.tasks import get_task
from rerank.model import RerankModel
from rerank.rekindle.pretrain import RekindleConfig, TeacherConfig
from rerank.rekindle.store import read_store

WORDS = (
    "the air flow over a wing at high speed the boundary layer of a body in the stream "
    "an aircraft with a swept wing the angle of attack the lift and the drag"
).split()


def _sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n))


def write_glue(root: Path, n: int = 24) -> Path:
    """Tiny STS-B (canonical), RTE (HF layout) and CoLA (lower-cased, headerless) folders."""
    (root / "STS-B").mkdir(parents=True)
    head = (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    )
    for split, offset in (("train", 0), ("dev", 100)):
        rows = [
            f"{i}\tg\tf\ty\t{i}\tnone\tnone\t{_sentence(i + offset)}\t{_sentence(i + offset + i % 3)}"
            f"\t{(i % 6) * 5 / 5:.3f}\n"
            for i in range(n)
        ]
        (root / "STS-B" / f"{split}.tsv").write_text(head + "".join(rows))
    (root / "RTE").mkdir()
    for split, offset in (("train", 0), ("dev", 50)):
        rows = [
            f"{_sentence(i + offset, 8)}\t{_sentence(i + offset, 3)}\t{i % 2}\t{i}\n"
            for i in range(n)
        ]
        (root / "RTE" / f"{split}.tsv").write_text(
            "sentence1\tsentence2\tlabel\tidx\n" + "".join(rows)
        )
    (root / "CoLA_lowercased").mkdir()
    rows = [f"{_sentence(i, 4 + i % 3)}\t{i % 2}\n" for i in range(n)]
    (root / "CoLA_lowercased" / "train.tsv").write_text("".join(rows))
    (root / "CoLA_lowercased" / "in_domain_dev.tsv").write_text("x\ty\n" + "".join(rows[:8]))
    (root / "CoLA_lowercased" / "out_of_domain_dev.tsv").write_text("x\ty\n" + "".join(rows[8:12]))
    return root


def write_pairs(path: Path, n: int = 16) -> Path:
    frame = pl.DataFrame(
        {
            "query_id": [f"d{i}:0" for i in range(n)],
            "doc_id": [f"d{i}:1" for i in range(n)],
            "query": [_sentence(i + 300) for i in range(n)],
            "title": [""] * n,
            "summary": [_sentence(i + 301) for i in range(n)],
        }
    )
    frame.write_parquet(path)
    return path


def glue_config(model: Path, data: Path, out: Path, task: str, **train) -> GlueConfig:
    cfg = GlueConfig(glue=GlueSection(task=task, data_dir=str(data)))
    cfg.model.path = str(model)
    cfg.model.max_length = 32
    cfg.model.max_query_length = 24
    cfg.data.groups_per_batch = 8
    cfg.data.eval_batch_size = 16
    cfg.train.output_dir = str(out)
    cfg.train.lr_max = 1e-3
    cfg.train.steps = train.pop("steps", 3)
    cfg.train.eval_every = train.pop("eval_every", 0)
    cfg.train.progress = False
    cfg.train.bf16 = False
    cfg.train.seed = train.pop("seed", 1)
    assert not train
    return cfg


def test_task_defaults_fill_heads_objective_and_metric():
    stsb, rte = get_task("stsb"), get_task("rte")
    cfg = apply_task_defaults(GlueConfig(), [stsb])
    assert cfg.model.heads == {"stsb": HeadConfig("regression", 1, 0.0, 5.0)}
    assert cfg.model.primary == "stsb" and cfg.data.list_size == 1
    assert cfg.objective == [LossTerm("pointwise_mse", "stsb", "label")]
    assert cfg.train.metric_for_best == "spearman"
    kd = RekindleConfig(objective=[LossTerm("task", params={"temperature": 2.0}), LossTerm("mlm")])
    kd = apply_task_defaults(kd, [stsb, rte], target="teacher")
    assert [(t.loss, t.head, t.target, t.params) for t in kd.objective] == [
        ("pointwise_mse", "stsb", "teacher:stsb", {}),
        ("kl_div", "rte", "teacher:rte", {"temperature": 2.0}),
        ("mlm", "score", "label", {}),
    ]
    one = apply_task_defaults(GlueConfig(objective=[LossTerm("task", head="rte")]), [stsb, rte])
    assert [t.head for t in one.objective] == ["rte"]


def test_finetune_stsb_selects_on_spearman(tiny_model_dir, tmp_path):
    data = write_glue(tmp_path / "glue")
    cfg = glue_config(tiny_model_dir, data, tmp_path / "run", "stsb", steps=2, eval_every=1)
    result = finetune(cfg)
    assert result.finished and result.steps == 2 and result.best_dir is not None
    evals = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [r["eval"] for r in evals if "eval" in r]
    assert len(evals) == 2 and set(evals[0]) == {"spearman", "pearson", "examples"}
    assert result.best_metric == max(e["spearman"] for e in evals)
    # the teacher is an ordinary HF classifier directory with one regression output
    saved = json.loads((result.final_dir / "config.json").read_text())
    assert saved["rerank"]["primary"] == "stsb" and len(saved["id2label"]) == 1


def test_finetune_cola_single_sentence_changes_weights(tiny_model_dir, tmp_path):
    data = write_glue(tmp_path / "glue")
    cfg = glue_config(tiny_model_dir, data, tmp_path / "run", "cola", steps=2)
    result = finetune(cfg)
    before = RerankModel.from_pretrained(tiny_model_dir).encoder.base_model.embeddings
    after = RerankModel.from_pretrained(result.final_dir)
    assert after.specs["cola"].num_outputs == 2
    assert not torch.equal(
        before.word_embeddings.weight, after.encoder.base_model.embeddings.word_embeddings.weight
    )
    assert result.best_metric is not None  # MCC of the final evaluation (on dev)


def test_finetune_needs_task_and_data(tiny_model_dir, tmp_path):
    cfg = glue_config(tiny_model_dir, tmp_path, tmp_path / "run", "")
    with pytest.raises(RerankError, match=r"key 'glue\.task' is required"):
        finetune(cfg)


def _teacher(tiny_model_dir, data, root, task):
    return finetune(glue_config(tiny_model_dir, data, root / f"t-{task}", task, steps=2)).final_dir


def _rekindle_config(model: Path, pairs: Path, teachers: dict[str, Path], out: Path):
    cfg = RekindleConfig(objective=[LossTerm("task"), LossTerm("mlm", weight=0.5)])
    cfg.model.path = str(model)
    cfg.model.max_length = 32
    cfg.data.groups_per_batch = 8
    cfg.train.steps = 2
    cfg.train.progress = False
    cfg.train.bf16 = False
    cfg.rekindle.data = str(pairs)
    cfg.rekindle.teachers = {t: TeacherConfig(path=str(p)) for t, p in teachers.items()}
    cfg.train.output_dir = str(out)
    return cfg


def test_uegp_rte_scores_logits_and_distils_with_kl_and_mlm(tiny_model_dir, tmp_path):
    data = write_glue(tmp_path / "glue", n=8)
    teacher = finetune(glue_config(tiny_model_dir, data, tmp_path / "t", "rte", steps=1)).final_dir
    pairs = write_pairs(tmp_path / "pairs.parquet", n=8)
    cfg = _rekindle_config(tiny_model_dir, pairs, {"rte": teacher}, tmp_path / "uegp")
    result = pretrain(cfg).train  # scores the pairs into <output_dir>/teacher_scores.parquet
    frame, _ = read_store(tmp_path / "uegp" / "teacher_scores.parquet")
    assert frame.schema["teacher:rte"] == pl.List(pl.Float64) and frame.height == 8
    record = json.loads((result.output_dir / "log.jsonl").read_text().splitlines()[-1])
    assert record["loss/0:kl_div"] >= 0 and record["loss/1:mlm"] > 0
    assert set(RerankModel.from_pretrained(result.final_dir).specs) == {"rte"}


@pytest.mark.slow
def test_uegp_and_moegp_distil_glue_teachers(tiny_model_dir, tmp_path):
    data = write_glue(tmp_path / "glue")
    teachers = {t: _teacher(tiny_model_dir, data, tmp_path, t) for t in ("stsb", "rte", "cola")}
    pairs = write_pairs(tmp_path / "pairs.parquet")
    cfg = _rekindle_config(tiny_model_dir, pairs, teachers, tmp_path / "moegp")
    store = score_teachers(cfg)
    frame, provenance = read_store(store)
    assert set(provenance["teachers"]) == {"stsb", "rte", "cola"}
    assert frame.schema["teacher:stsb"] == pl.Float64
    assert frame.schema["teacher:rte"] == pl.List(pl.Float64)
    assert frame["teacher:rte"].list.len().to_list() == [2] * 16
    assert frame["teacher:stsb"].is_between(0, 5).all()
    # the stored logits are the teacher's own predictions (the CoLA teacher reads query alone)
    from rerank.glue.predict import predict

    cola = RerankModel.from_pretrained(teachers["cola"])
    single = frame.select(sentence1="query")
    expected = predict(cola, single, get_task("cola"), max_length=32, precision="auto")
    stored = np.array(frame["teacher:cola"].to_list())
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    as_pairs = predict(cola, frame, get_task("mrpc"), head="cola", max_length=32, precision="auto")
    assert np.abs(as_pairs - stored).max() > 1e-4  # reading the pair would differ

    multi = pretrain(cfg, frame=frame).train
    student = RerankModel.from_pretrained(multi.final_dir)
    assert set(student.specs) == {"stsb", "rte", "cola"}
    assert (multi.final_dir / "rerank_mlm_head.safetensors").is_file()
    record = json.loads((multi.output_dir / "log.jsonl").read_text().splitlines()[-1])
    assert {"loss/0:pointwise_mse", "loss/1:kl_div", "loss/2:kl_div", "loss/3:mlm"} <= set(record)

    uegp = RekindleConfig(**{**vars(cfg)})
    uegp.rekindle = type(cfg.rekindle)(
        data=str(pairs), teachers={"cola": cfg.rekindle.teachers["cola"]}
    )
    uegp.train = type(cfg.train)(**{**vars(cfg.train), "output_dir": str(tmp_path / "uegp")})
    result = pretrain(
        uegp, frame=frame.select("query_id", "doc_id", "query", "title", "summary", "teacher:cola")
    ).train
    assert result.finished and set(RerankModel.from_pretrained(result.final_dir).specs) == {"cola"}
