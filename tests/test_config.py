"""TOML -> dataclasses -> overrides -> resolved TOML, and the errors users see."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rerank.config import (
    Config,
    HeadConfig,
    LossTerm,
    apply_overrides,
    from_toml,
    to_toml,
    validate,
    write_config,
)
from rerank.errors import RerankError

TOML = """
[model]
max_length = 128

[data]
train = "splits/train.parquet"
eval = "/abs/eval.parquet"
list_size = 8

[[objective]]
loss = "hinge"
params = { margin = 0.5, scale_by_gap = true }

[[objective]]
loss = "pointwise_mse"
target = "teacher:t1"
weight = 0.5

[train]
lr_max = 2e-5
steps = 300
bf16 = false
"""


def _write(tmp_path: Path, text: str, name: str = "teacher.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_from_toml_types_defaults_and_relative_paths(tmp_path):
    cfg = from_toml(_write(tmp_path, TOML))
    assert cfg.model.max_length == 128 and cfg.model.path == "default"
    assert cfg.model.heads == {"score": HeadConfig()}
    # relative to the TOML file's directory; absolute stays as is
    assert cfg.data.train == str(tmp_path.resolve() / "splits" / "train.parquet")
    assert cfg.data.eval == "/abs/eval.parquet"
    assert cfg.data.label_range == (0, 4) and cfg.data.list_size == 8
    assert cfg.objective == [
        LossTerm(loss="hinge", params={"margin": 0.5, "scale_by_gap": True}),
        LossTerm(loss="pointwise_mse", target="teacher:t1", weight=0.5),
    ]
    assert cfg.train.lr_max == 2e-5 and cfg.train.steps == 300 and cfg.train.bf16 is False
    assert cfg.train.warmup_steps == 0 and cfg.train.bf16 is not True
    validate(cfg)


def test_every_field_has_help():
    from rerank.config import DataConfig, ModelConfig, TrainConfig

    for cls in (ModelConfig, DataConfig, LossTerm, TrainConfig, HeadConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_overrides_convert_types(tmp_path):
    cfg = from_toml(_write(tmp_path, TOML))
    apply_overrides(
        cfg,
        [
            "train.lr_max=3e-5",
            "train.bf16=auto",
            "train.seed=7",
            "data.label_range=[1, 3]",
            "objective.0.params.margin=2",
            "train.output_dir=runs/a b",
            'model.heads.t2={ kind = "regression", high = 5 }',
        ],
        base=tmp_path,
    )
    assert cfg.train.lr_max == 3e-5 and cfg.train.bf16 == "auto" and cfg.train.seed == 7
    assert cfg.data.label_range == (1, 3)
    assert cfg.objective[0].params["margin"] == 2
    assert cfg.train.output_dir == str(tmp_path / "runs" / "a b")
    assert cfg.model.heads["t2"] == HeadConfig(kind="regression", high=5.0)
    validate(cfg)
    assert cfg.objective[0].params["margin"] == 2.0


def test_resolved_toml_round_trips(tmp_path):
    cfg = from_toml(_write(tmp_path, TOML))
    apply_overrides(cfg, ['model.heads.t2={ kind = "score" }', "train.output_dir=runs/x"])
    out = write_config(cfg, tmp_path / "out" / "config.toml")
    again = from_toml(out)
    assert again == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[train]\nlrmax = 1e-5\n",
            "teacher.toml: unknown key 'train.lrmax' (did you mean 'train.lr_max'?); "
            "valid: train.output_dir, train.lr_max,",
        ),
        ("[trian]\nsteps = 1\n", "teacher.toml: unknown section 'trian' (did you mean 'train'?)"),
        (
            "[train]\nsteps = 'many'\n",
            "teacher.toml: key 'train.steps': expected an integer, got 'many'",
        ),
        ("[train]\nbf16 = 'maybe'\n", "key 'train.bf16': expected true or false or 'auto'"),
        ("[data]\nlabel_range = [0]\n", "key 'data.label_range': expected a list, got [0]"),
        (
            "[[objective]]\nlos = 'hinge'\n",
            "unknown key 'objective.0.los' (did you mean 'objective.0.loss'?)",
        ),
        ("[model\n", "teacher.toml: not valid TOML"),
    ],
)
def test_file_errors_name_file_key_and_valid_keys(tmp_path, text, message):
    with pytest.raises(RerankError) as err:
        from_toml(_write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrmax=1", "--set: unknown key 'train.lrmax' (did you mean 'train.lr_max'?)"),
        ("train.steps=1.5", "--set: key 'train.steps': expected an integer, got '1.5'"),
        ("trainsteps", "--set: expected section.key=value"),
        ("objective.3.weight=1", "--set: 'objective' has entries 0..1, got '3'"),
    ],
)
def test_override_errors(tmp_path, override, message):
    cfg = from_toml(_write(tmp_path, TOML))
    with pytest.raises(RerankError) as err:
        apply_overrides(cfg, [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.0.loss=hing", "objective.0.loss: unknown loss 'hing' (valid: hinge,"),
        ("objective.0.params.temperature=2", "loss 'hinge' has no parameter 'temperature'"),
        ("objective.1.head=teacher", "objective.1.head: no head named 'teacher'"),
        ("data.list_size=0", "key 'data.list_size': expected a positive value, got 0"),
        ("model.primary=cls", "key 'model.primary': 'cls' is not among the heads"),
        ("data.train=", "key 'data.train' is required"),
        ("model.attention_dropout=1.5", "key 'model.attention_dropout': expected -1 or a value"),
    ],
)
def test_validate_errors(tmp_path, override, message):
    cfg = from_toml(_write(tmp_path, TOML))
    apply_overrides(cfg, [override])
    with pytest.raises(RerankError, match=None) as err:
        validate(cfg, source="teacher.toml")
    assert message in str(err.value)


def test_missing_file_and_default_model_path(tmp_path):
    with pytest.raises(RerankError, match="config file does not exist"):
        from_toml(tmp_path / "nope.toml")
    path = Config().model.resolved_path()
    assert (path / "config.json").is_file()


def test_to_toml_is_parsed_by_tomllib():
    import tomllib

    data = tomllib.loads(to_toml(Config()))
    assert data["objective"][0]["loss"] == "hinge"
    assert data["model"]["heads"]["score"]["kind"] == "score"


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name",
    [
        "cranfield/teacher.toml",
        "cranfield/finetune.toml",
        "cranfield/rekindle.toml",
        "nfcorpus/finetune.toml",
        "nfcorpus/rekindle.toml",
    ],
)
def test_shipped_training_configs_load_and_validate(name):
    from rerank.rekindle.pretrain import RekindleConfig, _check

    if name.endswith("rekindle.toml"):  # data.train is the cycle's (or --set's) to fill in
        cfg = from_toml(ROOT / "data" / name, RekindleConfig)
        _check(cfg)
    else:
        cfg = validate(from_toml(ROOT / "data" / name), source=name)
    assert cfg.train.steps > 0 and cfg.objective


@pytest.mark.parametrize(
    "name", ["cranfield/cycle.toml", "cranfield/cycle_stacked.toml", "nfcorpus/cycle.toml"]
)
def test_shipped_cycle_configs_load(name):
    from rerank.rekindle.cycle_config import load_cycle

    cfg = load_cycle(ROOT / "data" / name)
    assert Path(cfg.finetune.config).is_file() and Path(cfg.pretrain.config).is_file()
