"""The GLUE cycle end to end on a tiny model: stages, report, skip-on-rerun, CLI."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import approx_nested
from test_glue_stages import write_glue

from rerank.cli import main
from rerank.errors import RerankError
from rerank.glue.cycle import format_markdown, load_cycle, run_cycle

DOCS = [
    {"doc_id": str(i), "title": "", "abstract": text}
    for i, text in enumerate(
        [
            "the air flow over a wing . the lift of the wing at high speed . "
            "the drag of the body in the stream .",
            "an aircraft with a swept wing . the angle of attack of the wing . "
            "the boundary layer of a body .",
        ]
    )
]


def write_cycle(
    tmp_path: Path, model: Path, *, tasks: list[str], multi: bool, longer: bool = False
) -> Path:
    data = write_glue(tmp_path / "glue", n=12)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    common = (
        f'[model]\npath = "{model}"\nmax_length = 32\nmax_query_length = 24\n'
        "[data]\ngroups_per_batch = 8\n"
        "[train]\nsteps = 1\nbf16 = false\nprogress = false\n"
    )
    (tmp_path / "finetune.toml").write_text(common)
    (tmp_path / "rekindle.toml").write_text(
        common + '[[objective]]\nloss = "task"\n[[objective]]\nloss = "mlm"\nweight = 0.5\n'
    )
    path = tmp_path / "cycle.toml"
    path.write_text(
        f'[cycle]\nname = "tiny"\noutput_dir = "out"\ntasks = {json.dumps(tasks)}\n'
        f'data_dir = "{data}"\nseeds = [1]\nmulti_teacher = {str(multi).lower()}\n'
        f"equal_steps_baseline = {str(longer).lower()}\n"
        '[pairs]\ncorpus = "docs.jsonl"\n'
        '[finetune]\nconfig = "finetune.toml"\n'
        f'[pretrain]\nconfig = "rekindle.toml"\nstudent = "{model}"\n'
    )
    return path


def test_stsb_cycle_reports_teacher_and_rekindled_spearman(tiny_model_dir, tmp_path, capsys):
    path = write_cycle(tmp_path, tiny_model_dir, tasks=["stsb"], multi=False, longer=True)
    assert main(["glue", "cycle", "--config", str(path)]) == 0
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    rows = [(r["task"], r["model"], r["split"]) for r in report["table"]]
    assert rows == [
        ("stsb", "teacher", "dev"),
        ("stsb", "teacher (equal steps)", "dev"),
        ("stsb", "rekindled", "dev"),
    ]
    assert set(report["table"][0]) >= {"spearman", "pearson"}
    assert report["table"][0]["spearman"]["n"] == 1
    assert "| stsb | dev | teacher | spearman" in capsys.readouterr().out
    assert (out / "report.md").read_text() == format_markdown(report)
    stages = sorted(p.parent.name for p in out.rglob("done.json"))
    assert stages == [
        "longer-stsb",
        "pairs",
        "rekindle-stsb",
        "scores",
        "student-stsb",
        "teacher-stsb",
    ]
    longer = json.loads((out / "seed-1" / "longer-stsb" / "done.json").read_text())
    assert longer["result"]["steps"] == 2  # 1 fine-tune step + 1 pre-training step
    # one done.json schema: what a stage is lives in its tags, not in its folder's name
    assert longer["schema"] == 1 and longer["seconds"] >= 0
    assert longer["tags"] == {
        "kind": "longer",
        "seed": 1,
        "task": "stsb",
        "row": "teacher (equal steps)",
    }
    assert report["runs"]["stsb"]["teacher (equal steps)"]["1"]["seconds"] == longer["seconds"]
    # a re-run skips every stage and reproduces the report
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("done.json")}
    assert run_cycle(load_cycle(path))["table"] == report["table"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("done.json")} == stamps


def test_cycle_config_errors(tiny_model_dir, tmp_path):
    path = write_cycle(tmp_path, tiny_model_dir, tasks=["stsb"], multi=False)
    with pytest.raises(RerankError, match="unknown GLUE task 'wnli'"):
        load_cycle(path, ["cycle.tasks=['wnli']"])
    with pytest.raises(RerankError, match=r"set one of 'pairs\.data' and 'pairs\.corpus'"):
        load_cycle(path, ["pairs.data=x.parquet"])


def test_rekindle_options_glue_cannot_honour_are_refused(tiny_model_dir, tmp_path):
    path = write_cycle(tmp_path, tiny_model_dir, tasks=["stsb", "rte"], multi=False)
    with pytest.raises(RerankError, match=r"'rekindle\.standardize' applies to score teachers"):
        load_cycle(path, ['pretrain.set=["rekindle.standardize=true"]'])
    with pytest.raises(RerankError, match=r"unknown key 'rekindle\.snapshot_evry'"):
        load_cycle(path, ['pretrain.set=["rekindle.snapshot_evry=1"]'])
    with pytest.raises(RerankError, match=r"unknown key 'cycle\.teachers'"):
        load_cycle(path, ["cycle.teachers=['stsb']"])


def _kill_when(marker: Path, fn):
    """Run ``fn`` and interrupt it (as a kill would) as soon as ``marker`` exists."""

    def check(signum, frame):
        if marker.is_file():
            # once: disarm first, or a second tick (a loaded machine) escapes pytest.raises
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    try:
        with pytest.raises(KeyboardInterrupt):
            fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_killed_glue_stage_resumes_from_its_checkpoint(tiny_model_dir, tmp_path, caplog):
    """Killed mid-way through the teacher's fine-tune, the re-run continues that stage
    from its checkpoint (not from step 0) and reports what an unbroken cycle reports;
    rekindle.snapshot_every and rekindle.standardize are honoured."""
    caplog.set_level("INFO")
    sets = [
        "cycle.checkpoint_every=1",
        'finetune.set=["train.steps=6"]',
        'pretrain.set=["train.steps=2", "rekindle.snapshot_every=1", "rekindle.standardize=true"]',
    ]
    unbroken = run_cycle(
        load_cycle(write_cycle(tmp_path / "a", tiny_model_dir, tasks=["stsb"], multi=False), sets)
    )
    path = write_cycle(tmp_path / "b", tiny_model_dir, tasks=["stsb"], multi=False)
    teacher = tmp_path / "b" / "out" / "seed-1" / "teacher-stsb"
    _kill_when(teacher / "checkpoint" / "state.json", lambda: run_cycle(load_cycle(path, sets)))
    assert not (teacher / "done.json").exists()
    (teacher / "left-by-the-killed-run").touch()
    resumed = run_cycle(load_cycle(path, sets))
    assert (teacher / "left-by-the-killed-run").is_file()  # resumed, not cleared and restarted
    assert resumed["runs"]["stsb"]["teacher"]["1"]["steps"] == 6
    assert resumed["table"] == approx_nested(unbroken["table"])
    rekindle = tmp_path / "b" / "out" / "seed-1" / "rekindle-stsb"
    assert sorted(p.name for p in (rekindle / "snapshots").iterdir()) == ["step-1", "step-2"]
    assert "standardizing teacher:stsb" in caplog.text


@pytest.mark.slow
def test_multi_teacher_cycle_across_pair_and_single_sentence_tasks(tiny_model_dir, tmp_path):
    path = write_cycle(tmp_path, tiny_model_dir, tasks=["rte", "cola"], multi=True)
    report = run_cycle(load_cycle(path))
    rows = {(r["task"], r["model"]) for r in report["table"]}
    assert rows == {
        (t, m) for t in ("rte", "cola") for m in ("teacher", "rekindled", "multi-teacher")
    }
    multi = json.loads((tmp_path / "out" / "seed-1" / "multi-cola" / "done.json").read_text())
    assert set(multi["result"]["dev"]) == {"mcc", "accuracy", "examples"}


def test_glue_train_and_evaluate_commands(tiny_model_dir, tmp_path, capsys):
    data = write_glue(tmp_path / "glue", n=8)
    config = tmp_path / "rte.toml"
    config.write_text(
        f'[model]\npath = "{tiny_model_dir}"\nmax_length = 32\n'
        f'[glue]\ntask = "rte"\ndata_dir = "{data}"\n'
        '[train]\nsteps = 1\nbf16 = false\nprogress = false\noutput_dir = "run"\n'
    )
    assert main(["glue", "train", "--config", str(config), "--set", "data.groups_per_batch=4"]) == 0
    assert "rte: finished at step 1/1" in capsys.readouterr().err
    model = tmp_path / "run" / "final"
    argv = ["glue", "evaluate", "--task", "rte", "--model", str(model), "--data", str(data)]
    assert main([*argv, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"accuracy", "examples"} and report["examples"] == 8
    assert main([*argv, "--split", "test"]) == 2
    assert "rte has no labeled test split" in capsys.readouterr().err
    assert main([*argv[:-1], str(data / "RTE" / "dev.tsv"), "--head", "nope"]) == 2
    assert "model has no head 'nope'" in capsys.readouterr().err
