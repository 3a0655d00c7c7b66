"""``rerank vocab train|extend`` on the shipped Chinese sample, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "zh_sample"


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    # progress lines may come first; the error is the one last line
    *_, last = err.splitlines()
    assert last.startswith("rerank vocab: error: ")
    assert err.count("rerank vocab: error:") == 1
    return last.removeprefix("rerank vocab: error: ")


def test_train_extend_scratch_on_sample(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pieces = tmp_path / "pieces"
    rc = main(
        [
            "vocab", "train", "--corpus", str(SAMPLE / "train.tsv"), "--size", "1500",
            "--model", str(tiny_model_dir), "--eval", str(SAMPLE / "heldout.txt"),
            "--out", str(pieces),
        ]
    )  # fmt: skip
    assert rc == 0
    out, err = capsys.readouterr()
    assert "| eval | target model |" in out and "| eval | new vocabulary |" in out
    assert f"wrote 1,500 pieces (unigram) to {pieces}" in err
    assert json.loads((pieces / "pieces.json").read_text())["size"] == 1500

    model = tmp_path / "model"
    rc = main(
        [
            "vocab", "extend", "--model", str(tiny_model_dir), "--pieces", str(pieces),
            "--eval", str(SAMPLE / "heldout.txt"), "--out", str(model),
        ]
    )  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "--eval unknown characters" in err and f"wrote {model}" in err
    assert (model / "config.json").is_file() and (model / "tokenizer.json").is_file()

    scratch = tmp_path / "scratch"
    rc = main(
        [
            "vocab", "extend", "--from-scratch", "--layers", "1", "--hidden", "32",
            "--pieces", str(pieces), "--out", str(scratch),
        ]
    )  # fmt: skip
    assert rc == 0
    assert "vocabulary 1,500" in capsys.readouterr().err
    assert json.loads((scratch / "config.json").read_text())["vocab_size"] == 1500


def test_cli_errors(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("北京大学\n图书馆\n")
    model = str(tiny_model_dir)
    out = str(tmp_path / "out")
    train = ("vocab", "train", "--model", model, "--out", out)
    assert _error(capsys, *train, "--corpus", str(tmp_path / "x.txt"), "--size", "10") == (
        f"{tmp_path / 'x.txt'}: corpus file does not exist"
    )
    msg = _error(capsys, *train, "--corpus", str(corpus), "--size", "500")
    assert msg.startswith("--size 500: SentencePiece refused: Vocabulary size too high (500)")
    assert _error(capsys, *train, "--corpus", str(corpus), "--size", "3") == (
        "--size: expected more than 5 pieces, got 3"
    )
    assert _error(
        capsys, "vocab", "train", "--corpus", str(corpus), "--size", "9", "--out", out,
        "--model", str(tmp_path / "nomodel"),
    ) == f"{tmp_path / 'nomodel'}: model directory does not exist"  # fmt: skip
    assert not Path(out).exists()

    extend = ("vocab", "extend", "--out", out)
    assert (
        _error(capsys, *extend, "--pieces", str(tmp_path))
        == "--model is required (or --from-scratch)"
    )
    assert _error(capsys, *extend, "--model", model, "--pieces", str(tmp_path)) == (
        f"{tmp_path}: not a pieces directory (expected pieces.json and spm.vocab from "
        "'rerank vocab train')"
    )
    assert _error(
        capsys, *extend, "--from-scratch", "--model", model, "--pieces", str(tmp_path)
    ) == ("--from-scratch builds a new model: drop --model or --from-scratch")
    assert _error(
        capsys, *extend, "--from-scratch", "--hidden", "0", "--pieces", str(tmp_path)
    ) == ("--hidden: expected a positive integer, got 0")
    assert _error(
        capsys, *extend, "--model", model, "--pieces", str(tmp_path), "--layers", "2"
    ) == ("--layers: only with --from-scratch")
    assert not Path(out).exists()
