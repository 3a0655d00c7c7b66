"""Discoverable configuration: --help-config, docs/config.md, Hugging Face names."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from rerank.cli import main
from rerank.config import Config, apply_overrides, from_dict
from rerank.config_help import config_reference, markdown_reference
from rerank.errors import RerankError

ROOT = Path(__file__).parent.parent


def test_docs_config_md_is_current():
    current = (ROOT / "docs" / "config.md").read_text()
    assert current == markdown_reference(), (
        "docs/config.md is out of date: run `python -m rerank.config_help > docs/config.md`"
    )


def test_reference_lists_every_key_with_type_default_and_help():
    text = config_reference(Config)
    for section in dataclasses.fields(Config):
        assert f"\n{section.name}." in "\n" + text
    assert "train.lr_max: float = 3e-05\n    peak learning rate\n" in text
    assert 'objective.N.loss: str = "hinge"' in text
    assert "model.heads.NAME.kind: 'score' | 'classification' | 'regression'" in text


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("train", "train.warmup_steps: int = 0"),
        ("rekindle", "rekindle.teachers.NAME.path: str"),
        ("cycle", 'cycle.output_dir: str = "runs/cycle"'),
    ],
)
def test_help_config_prints_the_keys_without_a_config(command, expected, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help-config"])
    assert done.value.code == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("train.learning_rate", "did you mean 'train.lr_max'? 'learning_rate' is the Hugging Face"),
        ("train.max_steps", "did you mean 'train.steps'?"),
        ("train.save_steps", "did you mean 'train.save_every'?"),
        ("learning_rate", "did you mean 'train.lr_max'?"),
        ("warmup_steps", "did you mean 'train.warmup_steps'?"),
        ("train.per_device_train_batch_size", "did you mean 'data.groups_per_batch'?"),
    ],
)
def test_hugging_face_names_get_a_hint(key, hint):
    with pytest.raises(RerankError, match="unknown") as err:
        apply_overrides(Config(), [f"{key}=1"])
    assert hint in str(err.value)
    with pytest.raises(RerankError) as err:  # the same in a config file or dict
        section, _, name = key.rpartition(".")
        from_dict({section: {name: 1}} if section else {name: 1}, Config)
    assert hint in str(err.value)


def test_help_config_does_not_import_torch():
    code = "from rerank.cli import main; main(['train', '--help-config'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "train.lr_max" in out.stdout
    probe = "import sys; from rerank.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "False"
