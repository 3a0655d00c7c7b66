from __future__ import annotations

import os
import stat

import pytest

from rerank.atomic import atomic_path


def test_file_appears_only_on_success_with_umask_permissions(tmp_path):
    out = tmp_path / "sub" / "out.tsv"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list((tmp_path / "sub").iterdir()) == []
    with atomic_path(out) as tmp:
        tmp.write_text("done")
    assert out.read_text() == "done"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_directory_is_replaced_whole_and_kept_on_failure(tmp_path):
    out = tmp_path / "model"
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError), atomic_path(out, is_dir=True) as tmp:
        (tmp / "b").write_text("2")
        raise ValueError("fail")
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
