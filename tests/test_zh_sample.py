"""data/zh_sample: the shipped files have the documented counts, split and layout."""

from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import pytest

from rerank.data import read_pairs

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "zh_sample"


def _prepare():
    spec = importlib.util.spec_from_file_location("zh_prepare", SAMPLE / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_shipped_counts_and_split() -> None:
    train, held = read_pairs(SAMPLE / "train.tsv"), read_pairs(SAMPLE / "heldout.tsv")
    assert (train.height, train["query_id"].n_unique()) == (666, 91)
    assert (held.height, held["query_id"].n_unique()) == (107, 21)
    assert not set(train["query_id"]) & set(held["query_id"])
    for frame, held_out in ((train, False), (held, True)):
        for qid in frame["query_id"].unique():
            assert (zlib.crc32(qid.encode()) % 5 == 0) == held_out
    lines = (SAMPLE / "heldout.txt").read_text(encoding="utf-8").splitlines()
    assert (len(lines), sum(map(len, lines))) == (128, 8830)
    # every held-out passage is a line of heldout.txt, and so is every question
    assert set(held["summary"]) | set(held["query"]) == set(lines)


def test_clean_joins_cjk_line_breaks() -> None:
    clean = _prepare().clean
    assert (
        clean("本文档提供了关于 Debian\n项目的常\n  见问题")
        == "本文档提供了关于 Debian 项目的常见问题"
    )
    assert clean("  a\n\tb  ") == "a b"


@pytest.mark.skipif(
    not Path("/usr/share/doc/debian/FAQ/zh-cn/index.zh-cn.html").is_file(),
    reason="debian-faq-zh-cn is not installed",
)
def test_prepare_reproduces_shipped_files(tmp_path: Path) -> None:
    assert _prepare().main(["--out", str(tmp_path)]) == 0
    for name in ("train.tsv", "heldout.tsv", "train.txt", "heldout.txt"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes()
