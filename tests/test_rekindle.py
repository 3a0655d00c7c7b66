"""Expert-guided pre-training (UEGP), multi-teacher (MoEGP), ablations, snapshots, CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from conftest import assert_same_training, build_tiny_bert
from safetensors.torch import load_file

from rerank.cli import main
from rerank.config import LossTerm, apply_overrides, from_toml
from rerank.errors import RerankError
from rerank.model import RerankModel
from rerank.rekindle.pretrain import RekindleConfig, ablate, pretrain

WORDS = "flow heat wing pressure boundary layer plate shock wave theory speed lift".split()


def pairs_frame(n_queries=6, docs=5, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choice(WORDS, 3))
        for d in range(docs):
            rows.append(
                {
                    "query_id": f"q{q}",
                    "doc_id": f"d{q}-{d}",
                    "query": query,
                    "title": " ".join(rng.choice(WORDS, 2)),
                    "summary": " ".join(rng.choice(WORDS, int(rng.integers(2, 8)))),
                }
            )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Unlabeled pairs, two teachers (saved ranking models) and a student encoder."""
    root = tmp_path_factory.mktemp("rekindle")
    pairs_frame().write_parquet(root / "pairs.parquet")
    for seed in (1, 2):
        torch.manual_seed(seed)
        init = build_tiny_bert(root / f"init{seed}", seed=seed)
        RerankModel.from_pretrained(init).save_pretrained(root / f"teacher{seed}")
    build_tiny_bert(root / "student", seed=7)
    return root


COMMON = [
    "model.max_length=32",
    "data.list_size=5",
    "data.groups_per_batch=2",
    "train.lr_max=1e-3",
    "train.bf16=false",
    "train.num_threads=1",
    "train.progress=false",
    "train.log_every=1",
]


def config(root, out, *extra, teachers=("t1",)):
    cfg = RekindleConfig()
    paths = {"t1": root / "teacher1", "t2": root / "teacher2"}
    table = ", ".join(f'{t} = {{ path = "{paths[t]}" }}' for t in teachers)
    apply_overrides(
        cfg,
        [
            f"model.path={root / 'student'}",
            f"rekindle.data={root / 'pairs.parquet'}",
            f"rekindle.teachers={{ {table} }}",
            f"train.output_dir={out}",
            "train.steps=4",
            *COMMON,
            *extra,
        ],
    )
    cfg.objective = [
        LossTerm("pointwise_mse", "score", "teacher:t1"),
        LossTerm("pairwise_mse", "score", "teacher:t1"),
        LossTerm("mlm", "score", "label", 0.5),
    ]
    return cfg


def log_records(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_uegp_trains_on_teacher_scores_with_fresh_mlm_head(setup, tmp_path, caplog):
    caplog.set_level("INFO")
    result = pretrain(config(setup, tmp_path / "run"))
    assert result.train.finished and result.train.steps == 4
    assert "has no MLM head; created a fresh one" in caplog.text
    final = tmp_path / "run" / "final"
    assert (final / "rerank_mlm_head.safetensors").is_file()
    store = pl.read_parquet(result.store)
    assert store.columns[-1] == "teacher:t1" and store.height == 30
    records = log_records(tmp_path / "run")
    assert {"loss/0:pointwise_mse", "loss/1:pairwise_mse", "loss/2:mlm"} <= set(records[0])
    # pre-training moved the encoder, starting from the student, not from the teacher
    student = load_file(str(setup / "student" / "model.safetensors"))
    teacher = load_file(str(setup / "teacher1" / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    trained = load_file(str(final / "model.safetensors"))[f"bert.{key}"]
    assert (trained - student[key]).abs().max() > 1e-4  # Adam moves weights by ~lr = 1e-3
    assert (trained - student[key]).norm() < (trained - teacher[f"bert.{key}"]).norm()


def test_moegp_two_teachers_two_heads(setup, tmp_path):
    cfg = config(
        setup,
        tmp_path / "moe",
        "model.heads={ t1 = {}, t2 = {} }",
        "train.steps=25",
        teachers=("t1", "t2"),
    )
    cfg.objective = [
        LossTerm("pointwise_mse", "t1", "teacher:t1"),
        LossTerm("pairwise_mse", "t1", "teacher:t1"),
        LossTerm("pointwise_mse", "t2", "teacher:t2"),
        LossTerm("pairwise_mse", "t2", "teacher:t2"),
        LossTerm("mlm", "t1", "label", 0.1),
    ]
    result = pretrain(cfg)
    store = pl.read_parquet(result.store)
    assert {"teacher:t1", "teacher:t2"} <= set(store.columns)
    student = RerankModel.from_pretrained(result.train.final_dir)
    assert set(student.specs) == {"t1", "t2"}
    from rerank.score import score_frame

    scores = score_frame(student, store, heads=("t1", "t2"), max_length=32)
    t1, t2 = store["teacher:t1"].to_numpy(), store["teacher:t2"].to_numpy()
    # each head learned its own teacher: its error to that teacher is below the other's
    own = [np.mean((scores[:, 0] - t1) ** 2), np.mean((scores[:, 1] - t2) ** 2)]
    cross = [np.mean((scores[:, 0] - t2) ** 2), np.mean((scores[:, 1] - t1) ** 2)]
    assert own[0] < cross[0] and own[1] < cross[1]
    records = [r for r in log_records(tmp_path / "moe") if "loss" in r]
    for i in (0, 2):  # pointwise MSE to each teacher went down
        key = next(k for k in records[0] if k.startswith(f"loss/{i}:"))
        assert records[-1][key] < records[0][key]

    # a head is then fine-tuned for its task on labels: only that head (and the shared
    # encoder) moves; the other head keeps its distilled weights
    from rerank.config import Config
    from rerank.train import train

    labeled = store.select("query_id", "doc_id", "query", "title", "summary").with_columns(
        label=pl.Series(np.arange(store.height) % 3, dtype=pl.Int64)
    )
    ft = Config()
    apply_overrides(
        ft,
        [
            f"model.path={result.train.final_dir}",
            "model.heads={ t1 = {}, t2 = {} }",
            f"data.train={result.store}",
            f"train.output_dir={tmp_path / 'ft-t2'}",
            "train.steps=2",
            "objective.0.head=t2",
            *COMMON,
        ],
    )
    tuned = train(ft, train_frame=labeled)
    before = load_file(str(result.train.final_dir / "rerank_heads.safetensors"))
    after = load_file(str(tuned.final_dir / "rerank_heads.safetensors"))
    assert not torch.equal(before["t2.linear.weight"], after["t2.linear.weight"])
    b_primary = load_file(str(result.train.final_dir / "model.safetensors"))["classifier.weight"]
    a_primary = load_file(str(tuned.final_dir / "model.safetensors"))["classifier.weight"]
    assert torch.equal(b_primary, a_primary)  # t1 is the primary (HF classifier) head


def test_ablations_are_objectives(setup, tmp_path):
    cfg = config(setup, tmp_path / "x")
    assert [t.loss for t in ablate(cfg, "kd+mlm").objective] == [
        "pointwise_mse",
        "pairwise_mse",
        "mlm",
    ]
    assert [t.loss for t in ablate(cfg, "kd").objective] == ["pointwise_mse", "pairwise_mse"]
    assert [t.loss for t in ablate(cfg, "mlm").objective] == ["mlm"]
    assert [t.loss for t in cfg.objective] == ["pointwise_mse", "pairwise_mse", "mlm"]
    with pytest.raises(RerankError, match="lacks the terms"):
        ablate(ablate(cfg, "kd"), "kd+mlm")
    with pytest.raises(RerankError, match="expected one of"):
        ablate(cfg, "kd-only")


@pytest.mark.parametrize("exact", [False, pytest.param(True, marks=pytest.mark.determinism)])
def test_snapshots_and_resume_match_an_unbroken_run(setup, tmp_path, exact):
    whole = pretrain(config(setup, tmp_path / "a", "rekindle.snapshot_every=2"))
    assert sorted(whole.snapshots) == [2, 4]
    # interrupted after 2 steps, then resumed
    part = pretrain(
        config(setup, tmp_path / "b", "rekindle.snapshot_every=2"), max_steps_this_run=2
    )
    assert not part.train.finished and sorted(part.snapshots) == [2]
    done = pretrain(config(setup, tmp_path / "b", "rekindle.snapshot_every=2", "train.resume=true"))
    assert done.train.finished and sorted(done.snapshots) == [2, 4]
    for step in (2, 4):
        a = load_file(str(whole.snapshots[step] / "model.safetensors"))
        b = load_file(str(done.snapshots[step] / "model.safetensors"))
        assert_same_training(a, b, exact=exact)
    a = load_file(str(whole.train.final_dir / "model.safetensors"))
    b = load_file(str(done.train.final_dir / "model.safetensors"))
    assert_same_training(a, b, exact=exact)


def test_stacked_student_is_deeper(setup, tmp_path):
    result = pretrain(config(setup, tmp_path / "deep", "model.num_layers=4", "train.steps=1"))
    saved = json.loads((result.train.final_dir / "config.json").read_text())
    assert saved["num_hidden_layers"] == 4


def test_rekindle_cli(setup, tmp_path, capsys):
    cfg = config(setup, tmp_path / "cli")
    path = tmp_path / "rekindle.toml"
    from rerank.config import to_toml

    path.write_text(to_toml(cfg))
    assert from_toml(path, RekindleConfig).rekindle.teachers["t1"].path == str(setup / "teacher1")
    assert main(["rekindle", "--config", str(path), "--set", "train.steps=2"]) == 0
    assert "finished at step 2/2" in capsys.readouterr().err
    assert (tmp_path / "cli" / "final" / "config.json").is_file()
    # expert-guided pre-training takes no labels
    code = main(["rekindle", "--config", str(path), "--set", "objective.0.target=label"])
    err = capsys.readouterr().err
    assert code == 2
    assert "objective.0.target: expected one of teacher:t1" in err and len(err.splitlines()) == 1


def test_mlm_only_variant_trains_without_teacher_targets(setup, tmp_path):
    cfg = ablate(config(setup, tmp_path / "mlm", "train.steps=2"), "mlm")
    result = pretrain(cfg)
    assert result.train.finished
    records = [r for r in log_records(tmp_path / "mlm") if "loss" in r]
    assert set(k for k in records[-1] if k.startswith("loss/")) == {"loss/0:mlm"}
    assert (result.train.final_dir / "rerank_mlm_head.safetensors").is_file()


def test_standardized_targets_keep_order_and_leave_the_store_raw(setup, tmp_path, caplog):
    from rerank.rekindle.pretrain import _standardized

    caplog.set_level("INFO")
    cfg = config(setup, tmp_path / "z", "rekindle.standardize=true", "train.steps=1")
    result = pretrain(cfg)
    assert result.train.finished and "standardizing teacher:t1" in caplog.text
    raw = pl.read_parquet(result.store)["teacher:t1"].to_numpy()
    z = _standardized(result.store, cfg)["teacher:t1"].to_numpy()
    assert abs(z.mean()) < 1e-9 and abs(z.std(ddof=1) - 1) < 1e-9
    assert (np.argsort(z) == np.argsort(raw)).all()
    assert np.allclose(z, (raw - raw.mean()) / raw.std(ddof=1))


@pytest.mark.parametrize("standardize", [True, False])
def test_a_non_finite_teacher_score_in_the_store_is_one_line_on_either_route(
    setup, tmp_path, standardize
):
    """Both routes into training (z-scored in memory, or the store file itself) read the
    teacher column through the validated reader: file, row and column, before any step."""
    from rerank.rekindle.pretrain import score_teachers
    from rerank.rekindle.store import PROVENANCE_KEY, read_provenance

    flag = f"rekindle.standardize={'true' if standardize else 'false'}"
    cfg = config(setup, tmp_path / "nan", flag, "train.steps=1")
    store = score_teachers(cfg).path
    frame = pl.read_parquet(store)
    scores = frame["teacher:t1"].to_list()
    scores[3] = float("nan")  # a store scored elsewhere; its provenance still matches
    provenance = json.dumps(read_provenance(store), sort_keys=True)
    frame.with_columns(pl.Series("teacher:t1", scores)).write_parquet(
        store, metadata={PROVENANCE_KEY: provenance}
    )
    with pytest.raises(RerankError) as err:
        pretrain(cfg)
    message = str(err.value)
    assert message.endswith(
        "teacher_scores.parquet: row 4: column 'teacher:t1': expected a finite number, got nan"
    )
    assert "\n" not in message and not (tmp_path / "nan" / "final").exists()
