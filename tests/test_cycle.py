"""The knowledge-rekindle cycle end to end on a tiny BERT and a slice of the Cranfield sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import approx_nested, build_tiny_bert

from rerank.errors import RerankError
from rerank.rekindle.cycle import load_cycle, run_cycle

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "data" / "cranfield"

RECIPE = """
[model]
path = "{teacher}"
max_length = 32
max_query_length = 12
[data]
train = "train.parquet"
list_size = 4
groups_per_batch = 2
[[objective]]
loss = "hinge"
[train]
steps = {steps}
lr_max = 1e-3
bf16 = false
num_threads = 1
log_every = 1
"""

REKINDLE = """
[model]
path = "default"
max_length = 32
max_query_length = 12
[data]
list_size = 4
groups_per_batch = 2
[rekindle]
data = "pairs.parquet"
teachers = {{ t1 = {{ path = "unused" }} }}
snapshot_every = {every}
[[objective]]
loss = "pointwise_mse"
target = "teacher:t1"
[[objective]]
loss = "pairwise_mse"
target = "teacher:t1"
[[objective]]
loss = "mlm"
weight = 0.5
[train]
steps = {pre_steps}
lr_max = 1e-3
bf16 = false
num_threads = 1
log_every = 1
"""

CYCLE = """
[cycle]
name = "tiny"
output_dir = "out"
seed = 3
eval = "eval.parquet"
test = "test.parquet"
bm25_eval = "{sample}/bm25_eval.run"
bm25_test = "{sample}/bm25_test.run"
num_threads = 1
figure_variants = ["kd+mlm", "kd"]
checkpoint_every = 2
dense = "{dense}"
[finetune]
config = "recipe.toml"
[pairs]
data = "pairs.parquet"
max_queries = 6
[pretrain]
config = "rekindle.toml"
student = "{student}"
"""


def first_queries(path: Path, n: int) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    keep = frame["query_id"].unique(maintain_order=True).head(n)
    return frame.filter(pl.col("query_id").is_in(keep.implode()))


def make_cycle(root: Path, *, steps=4, pre_steps=4, every=2) -> Path:
    """Tiny models, a slice of the shipped sample, and the three configs."""
    root.mkdir(parents=True, exist_ok=True)
    teacher = build_tiny_bert(root / "teacher-init", seed=0)
    student = build_tiny_bert(root / "student-init", seed=1)
    dense = build_tiny_bert(root / "dense", seed=2)  # a plain encoder: mean pooling, cosine
    first_queries(SAMPLE / "train.parquet", 8).write_parquet(root / "train.parquet")
    # every query of the BM25 runs must have its judged rows: keep whole splits' slices
    for split in ("eval", "test"):
        first_queries(SAMPLE / f"{split}.parquet", 3).write_parquet(root / f"{split}.parquet")
    first_queries(SAMPLE / "rekindle.parquet", 10).write_parquet(root / "pairs.parquet")
    (root / "recipe.toml").write_text(RECIPE.format(teacher=teacher, steps=steps))
    (root / "rekindle.toml").write_text(REKINDLE.format(every=every, pre_steps=pre_steps))
    (root / "cycle.toml").write_text(CYCLE.format(sample=SAMPLE, student=student, dense=dense))
    return root / "cycle.toml"


def bm25_slices(root: Path) -> list[str]:
    """BM25 runs restricted to the sliced queries (evaluation drops nothing judged)."""
    out = []
    for split in ("eval", "test"):
        keep = set(pl.read_parquet(root / f"{split}.parquet")["query_id"].to_list())
        lines = (SAMPLE / f"bm25_{split}.run").read_text().splitlines()
        (root / f"bm25_{split}.run").write_text(
            "\n".join(x for x in lines if x.split()[0] in keep) + "\n"
        )
        out.append(f"cycle.bm25_{split}={root / f'bm25_{split}.run'}")
    return out


def test_tiny_cycle_writes_report_and_rerun_skips_every_stage(tmp_path, monkeypatch):
    import rerank.rekindle.store as store_module

    builds = []
    real_build = store_module.build_store

    def counting_build(*args, **kwargs):
        builds.append(args[2])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(store_module, "build_store", counting_build)
    config = make_cycle(tmp_path)
    cfg = load_cycle(
        config,
        [
            *bm25_slices(tmp_path),
            "cycle.eval_queries=2",
            "cycle.test_queries=2",
            "cycle.long_baseline=true",
        ],
    )
    report = run_cycle(cfg)
    assert len(builds) == 1  # the scoring stage builds the store; pre-training reads it
    out = tmp_path / "out"
    # eval rows come from the first two eval queries (BM25's other queries are dropped)
    subset = pl.read_parquet(out / "splits" / "eval-2q.parquet")
    assert (
        subset["query_id"].unique(maintain_order=True).to_list()
        == (
            pl.read_parquet(tmp_path / "eval.parquet")["query_id"]
            .unique(maintain_order=True)
            .head(2)
        ).to_list()
    )
    assert any("first 2 queries" in n for n in report["notes"])
    for name in ("report.json", "report.md", "results.png", "pretraining.png"):
        assert (out / name).is_file(), name
    assert set(report["results"]) == {
        "bm25",
        "dense",
        "teacher",
        "plain",
        "plain (long)",
        "rekindled",
    }
    # the compute-matched control trains as many steps as pre-training + fine-tune
    long_log = (tmp_path / "out" / "plain_long" / "train" / "log.jsonl").read_text().splitlines()
    assert max(json.loads(x)["step"] for x in long_log) == 4 + 4
    for model in report["results"].values():
        for split in ("eval", "test"):
            # PNR is concordant / discordant pairs: positive, unbounded above
            assert model[split]["pnr"] > 0.0 and 0.0 <= model[split]["ndcg@10"] <= 1.0
    # the student differs from the teacher, so the plain baseline is its own fine-tune
    assert report["models"]["plain"] != report["models"]["teacher"]
    assert "plain" in report["stages_run"] and "score" in report["stages_run"]
    # Figure 3: zero-shot eval PNR at the snapshot steps of both variants
    assert [s for s, _ in report["pretraining"]["kd+mlm"]] == [2, 4]
    assert [s for s, _ in report["pretraining"]["kd"]] == [2, 4]
    snaps = sorted(p.name for p in (out / "pretrain" / "kd_mlm" / "train" / "snapshots").iterdir())
    assert snaps == ["step-2", "step-4"]
    # the store holds the teacher's scores with provenance naming the teacher's weights
    store = pl.read_parquet(out / "pairs" / "teacher_scores.parquet")
    assert store.height == pl.read_parquet(out / "pairs" / "pairs.parquet").height
    assert store["query_id"].n_unique() == 6 and "teacher:t1" in store.columns
    saved = json.loads((out / "report.json").read_text())
    assert saved["results"] == report["results"]
    assert "| student, rekindled + fine-tune |" in (out / "report.md").read_text()
    # the zero-shot dense row is the dense model's own cosine scores of the split
    from rerank.dense import BiEncoder

    test_rows = pl.read_parquet(out / "splits" / "test-2q.parquet")
    dense_scores = pl.read_parquet(out / "eval" / "dense-test" / "scores.parquet")
    expected = BiEncoder.from_pretrained(tmp_path / "dense", precision="fp32").score_frame(
        test_rows
    )
    assert dense_scores["score"].to_numpy() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the final model against every other row, paired per query, with 95% intervals
    assert report["final"] == "rekindled"
    for split in ("eval", "test"):
        vs = report["comparisons"][split]
        assert set(vs) == {"bm25", "dense", "teacher", "plain", "plain (long)"}
        for measure in ("pnr", "ndcg@10"):
            d = vs["dense"][measure]
            gap = report["results"]["rekindled"][split][measure]
            gap -= report["results"]["dense"][split][measure]
            assert d["delta"] == pytest.approx(gap)
            assert d["ci95"][0] <= d["delta"] <= d["ci95"][1]
            assert d["wins"] == (d["ci95"][0] > 0)
    assert "against every other row" in (out / "report.md").read_text()

    # re-running skips every stage and reproduces the report
    again = run_cycle(
        load_cycle(
            config,
            [
                *bm25_slices(tmp_path),
                "cycle.eval_queries=2",
                "cycle.test_queries=2",
                "cycle.long_baseline=true",
            ],
        )
    )
    assert again["stages_run"] == []
    assert set(again["timings"].values()) == {0.0}
    assert again["results"] == report["results"]


def test_moegp_cycle_from_dense_and_teacher_two_rounds_with_fusion(tmp_path):
    """Two experts (MoEGP, a head each), a second round, the dense fusion row, end to end."""
    config = make_cycle(tmp_path, steps=2, pre_steps=2)
    report = run_cycle(
        load_cycle(
            config,
            [
                *bm25_slices(tmp_path),
                "cycle.eval_queries=2",
                "cycle.test_queries=2",
                "cycle.figure_variants=[]",
                'pretrain.teachers=["dense", "teacher"]',
                "cycle.fusion=true",
                "cycle.rounds=2",
            ],
        )
    )
    out = tmp_path / "out"
    store = pl.read_parquet(out / "pairs" / "teacher_scores.parquet")
    assert {"teacher:dense", "teacher:t1"} <= set(store.columns)
    student = json.loads(
        (out / "pretrain" / "kd_mlm" / "train" / "final" / "config.json").read_text()
    )
    assert set(student["rerank"]["heads"]) == {"dense", "t1"}
    assert student["rerank"]["primary"] == "dense"  # the first expert's head is fine-tuned
    # round 2: the round-1 rekindled student is the 'teacher' expert, scored anew
    round2 = pl.read_parquet(out / "round-2" / "teacher_scores.parquet")
    assert round2["teacher:dense"].to_list() == store["teacher:dense"].to_list()
    assert round2["teacher:t1"].to_list() != store["teacher:t1"].to_list()
    assert "rekindled (round 2)" in report["results"]
    assert report["models"]["rekindled (round 2)"] != report["models"]["rekindled"]
    fusion = report["fusion"]
    assert report["final"] == "rekindled (round 2) + dense" and 0.0 <= fusion["weight"] <= 1.0
    chosen = fusion["eval_ndcg@10_by_weight"][f"{fusion['weight']:.1f}"]
    assert chosen == max(fusion["eval_ndcg@10_by_weight"].values())
    fused = report["results"]["rekindled (round 2) + dense"]
    assert fused["eval"]["ndcg@10"] == pytest.approx(chosen)
    assert {"rekindled", "rekindled (round 2)", "dense"} <= set(report["comparisons"]["test"])


def test_cycle_config_errors(tmp_path):
    config = make_cycle(tmp_path)
    with pytest.raises(RerankError, match="unknown variant 'kd-mlm'"):
        load_cycle(config, ['cycle.variants=["kd-mlm"]'])
    with pytest.raises(RerankError, match=r"pretrain\.teachers.: expected distinct names"):
        load_cycle(config, ['pretrain.teachers=["teacher", "bm25"]'])
    with pytest.raises(RerankError, match=r"need key .cycle\.dense."):
        load_cycle(config, ["cycle.dense=", "cycle.fusion=true"])
    # a two-teacher rekindle TOML is refused when the cycle loads, before any stage runs
    two = (
        (tmp_path / "rekindle.toml")
        .read_text()
        .replace(
            'teachers = { t1 = { path = "unused" } }',
            'teachers = { t1 = { path = "unused" }, t2 = { path = "unused" } }',
        )
    )
    (tmp_path / "rekindle2.toml").write_text(two)
    with pytest.raises(RerankError, match="must name one template teacher, got 2"):
        load_cycle(config, [f"pretrain.config={tmp_path / 'rekindle2.toml'}"])
    with pytest.raises(RerankError, match=r"cycle\.rounds.: expected 1, or more with .teacher."):
        load_cycle(config, ["cycle.rounds=2", 'pretrain.teachers=["dense"]'])
    with pytest.raises(RerankError, match=r"set either .pairs\.data."):
        load_cycle(config, ["pairs.queries=q.tsv", "pairs.corpus=c.tsv"])
    with pytest.raises(RerankError, match=r"unknown key .cycle\.sed."):
        load_cycle(config, ["cycle.sed=1"])


@pytest.mark.slow
def test_killed_cycle_resumes_to_the_same_report(tmp_path):
    """Kill `rerank cycle` during pre-training, re-run it: same results as an unbroken run."""
    unbroken = make_cycle(tmp_path / "a", pre_steps=30, every=10)
    overrides = bm25_slices(tmp_path / "a")
    expected = run_cycle(load_cycle(unbroken, overrides))

    config = make_cycle(tmp_path / "b", pre_steps=30, every=10)
    overrides = bm25_slices(tmp_path / "b")
    args = [sys.executable, "-m", "rerank", "cycle", "--config", str(config)]
    for item in overrides:
        args += ["--set", item]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snapshot = tmp_path / "b" / "out" / "pretrain" / "kd_mlm" / "train" / "snapshots" / "step-10"
    deadline = time.time() + 120
    while not snapshot.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot.is_dir(), "the cycle never reached pre-training"
    assert not (tmp_path / "b" / "out" / "pretrain" / "kd_mlm" / "done.json").exists()
    resumed = run_cycle(load_cycle(config, overrides))
    assert "teacher" not in resumed["stages_run"] and "pairs" not in resumed["stages_run"]
    assert "pretrain[kd+mlm]" in resumed["stages_run"]
    # a separate process: scores may differ in the last bits (see conftest.SCORE_TOL)
    assert resumed["results"] == approx_nested(expected["results"])
    assert resumed["pretraining"] == approx_nested(expected["pretraining"])


def test_student_fine_tune_is_the_teacher_recipe_but_the_init(tmp_path):
    from rerank.config import to_toml
    from rerank.rekindle.stages import finetune_config

    cfg = load_cycle(make_cycle(tmp_path))
    teacher = to_toml(finetune_config(cfg, tmp_path / "t", "/models/teacher-init")).splitlines()
    student = to_toml(finetune_config(cfg, tmp_path / "s", "/runs/pretrain/final")).splitlines()
    differ = [(a, b) for a, b in zip(teacher, student, strict=True) if a != b]
    assert [a.split(" = ")[0] for a, _ in differ] == ["path", "output_dir"]
    assert ('path = "/runs/pretrain/final"') in student


@pytest.mark.slow
def test_cycle_with_fine_tuned_snapshot_curves(tmp_path):
    config = make_cycle(tmp_path)
    extra = ["cycle.figure_proxy=finetune", "cycle.figure_finetune_steps=1"]
    report = run_cycle(load_cycle(config, [*bm25_slices(tmp_path), *extra]))
    assert [s for s, _ in report["pretraining"]["kd"]] == [2, 4]
    assert all(v > 0 for _, v in report["pretraining"]["kd+mlm"])
    assert "figure[kd@4]" in report["stages_run"]
    assert report["pretraining_proxy"].startswith("eval-split PNR after a 1-step fine-tune")


def test_with_train_adds_the_training_candidates_unlabeled_under_their_own_ids(tmp_path):
    from rerank.rekindle.stages import pairs_stage

    config = make_cycle(tmp_path)
    train = pl.read_parquet(tmp_path / "train.parquet")
    plain = pl.read_parquet(pairs_stage(load_cycle(config), tmp_path / "p0")["path"])
    out = pairs_stage(load_cycle(config, ["pairs.with_train=true"]), tmp_path / "p1")
    mixed = pl.read_parquet(out["path"])
    assert mixed.head(plain.height).equals(plain)
    assert mixed.height == plain.height + train.height and "label" not in mixed.columns
    assert mixed.tail(train.height)["query_id"].to_list() == [
        f"train:{q}" for q in train["query_id"].to_list()
    ]
    assert mixed.tail(train.height)["doc_id"].to_list() == train["doc_id"].to_list()
    assert out["queries"] == plain["query_id"].n_unique() + train["query_id"].n_unique()
