"""The stage runner both cycles share: one done.json schema, stage configs, resume."""

from __future__ import annotations

import json

import pytest
from test_glue_stages import glue_config, write_glue

from rerank.config import Config
from rerank.errors import RerankError
from rerank.pipeline import (
    DONE,
    SCHEMA,
    CycleSection,
    Pipeline,
    RecipeSection,
    read_done,
    stage_config,
)


def test_a_stage_runs_once_and_its_record_has_the_one_schema(tmp_path):
    calls = []

    def stage():
        calls.append(1)
        return {"value": 3}

    first = Pipeline()
    assert first.run("s", tmp_path / "s", stage, tags={"kind": "demo", "seed": 1}) == {"value": 3}
    record = json.loads((tmp_path / "s" / DONE).read_text())
    assert record["schema"] == SCHEMA == 1
    assert set(record) == {"schema", "stage", "tags", "seconds", "result"}
    assert record["stage"] == "s" and record["tags"] == {"kind": "demo", "seed": 1}
    assert record["result"] == {"value": 3} and record["seconds"] >= 0
    assert first.ran == ["s"]
    again = Pipeline()
    assert again.run("s", tmp_path / "s", stage) == {"value": 3}
    assert calls == [1] and again.ran == [] and again.timings == {"s": 0.0}
    assert again.records["s"] == record


def test_a_record_lacking_the_schema_fields_is_one_line(tmp_path):
    marker = tmp_path / DONE
    marker.write_text(json.dumps({"stage": "teacher stsb", "result": {"seconds": 1.0}}))
    with pytest.raises(RerankError, match=r"stage record without seconds .* delete it"):
        read_done(marker)
    marker.write_text("{")
    with pytest.raises(RerankError, match="not a stage record"):
        read_done(marker)


def test_stage_config_is_the_recipe_plus_what_the_cycle_owns(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[model]\npath = "m"\n[train]\nsteps = 7\nseed = 1\nprogress = true\n')
    cycle = CycleSection(num_threads=2, checkpoint_every=5)
    section = RecipeSection(config=str(recipe), set=["train.steps=9"])
    cfg = stage_config(section, Config, cycle, output_dir=tmp_path / "out", seed=4)
    assert (cfg.train.steps, cfg.train.seed, cfg.train.num_threads) == (9, 4, 2)
    assert cfg.train.output_dir == str(tmp_path / "out") and not cfg.train.progress
    assert cfg.train.save_every == 5 and cfg.model.path.endswith("m")
    section.set.append("train.save_every=3")
    cfg = stage_config(section, Config, cycle, output_dir="o", seed=4, model="s", num_layers=3)
    assert cfg.train.save_every == 3  # the recipe's own cadence wins
    assert (cfg.model.path, cfg.model.num_layers) == ("s", 3)


def test_a_killed_training_stage_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    """Killed after its step-2 checkpoint, the stage continues there instead of restarting."""
    from rerank.glue.stages import finetune

    data = write_glue(tmp_path / "glue", n=8)
    where = tmp_path / "stage"

    def config():
        cfg = glue_config(tiny_model_dir, data, where / "train", "stsb", steps=4)
        cfg.train.save_every = 1
        return cfg

    def killed(cfg):
        finetune(cfg, max_steps_this_run=2)
        raise KeyboardInterrupt  # the process dies after the step-2 checkpoint

    def trained(cfg):
        result = finetune(cfg)
        return {"steps": result.steps, "resumed": cfg.train.resume}

    with pytest.raises(KeyboardInterrupt):
        Pipeline().train("t", where, config, killed)
    assert not (where / DONE).exists()
    (where / "train" / "left-by-the-killed-run").touch()
    result = Pipeline().train("t", where, config, trained)
    assert result == {"steps": 4, "resumed": True}
    assert (where / "train" / "left-by-the-killed-run").is_file()  # not cleared: resumed
    steps = [
        json.loads(x)["step"] for x in (where / "train" / "log.jsonl").read_text().splitlines()
    ]
    assert steps[0] == 2 and steps[-1] == 4  # the killed run's log goes on
    # the finished stage's checkpoint is gone (it only served to resume)
    assert not (where / "train" / "checkpoint").exists()
