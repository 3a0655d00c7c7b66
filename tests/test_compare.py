"""``rerank compare`` and rerank.measures.significance: the t-test equals scipy's, the
randomization test is reproducible from its seed and agrees with exact enumeration, Holm,
PNR on counts, and the JSON shape."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rerank.cli import main
from rerank.comparison import compare
from rerank.errors import RerankError
from rerank.measures.significance import (
    holm,
    paired_comparison,
    paired_ratio_comparison,
    paired_t_test,
)

QRELS = "1 0 a 1\n1 0 b 0\n2 0 c 2\n2 0 d 1\n3 0 e 1\n4 0 f 1\n4 0 g 1\n"
# baseline: relevant documents low; better: relevant documents first; mixed: in between
BASE = (
    "1 Q0 b 1 2 m\n1 Q0 a 2 1 m\n2 Q0 x 1 3 m\n2 Q0 d 2 2 m\n2 Q0 c 3 1 m\n"
    "3 Q0 y 1 2 m\n3 Q0 e 2 1 m\n4 Q0 z 1 3 m\n4 Q0 f 2 2 m\n4 Q0 g 3 1 m\n"
)
BETTER = (
    "1 Q0 a 1 2 m\n1 Q0 b 2 1 m\n2 Q0 c 1 3 m\n2 Q0 d 2 2 m\n2 Q0 x 3 1 m\n"
    "3 Q0 e 1 2 m\n3 Q0 y 2 1 m\n4 Q0 f 1 3 m\n4 Q0 g 2 2 m\n4 Q0 z 3 1 m\n"
)
MIXED = (
    "1 Q0 a 1 2 m\n1 Q0 b 2 1 m\n2 Q0 x 1 3 m\n2 Q0 d 2 2 m\n2 Q0 c 3 1 m\n"
    "3 Q0 e 1 2 m\n3 Q0 y 2 1 m\n4 Q0 z 1 3 m\n4 Q0 f 2 2 m\n4 Q0 g 3 1 m\n"
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_t_test_equals_scipy(n):
    rng = np.random.default_rng(n)
    a = rng.random(n)
    b = a + rng.normal(0.05, 0.2, n)
    assert paired_t_test(a, b) == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-9)


def test_t_test_edge_cases():
    assert np.isnan(paired_t_test([0.5], [0.7]))  # one pair: no variance estimate
    assert np.isnan(paired_t_test([0.1, 0.2], [0.1, 0.2]))  # no difference at all (scipy: nan)
    assert paired_t_test([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]) == 0.0  # constant difference


def test_randomization_is_reproducible_and_agrees_with_enumeration():
    a = {"q1": 0.1, "q2": 0.5, "q3": 0.3, "q4": 0.2, "q5": 0.6}
    b = {"q1": 0.4, "q2": 0.6, "q3": 0.2, "q4": 0.5, "q5": 0.9}
    first = paired_comparison(a, b, seed=7, n_resamples=4000)
    assert paired_comparison(a, b, seed=7, n_resamples=4000) == first
    other = paired_comparison(a, b, seed=8, n_resamples=4000)
    assert other.p_randomization != first.p_randomization
    # exact: all 2^5 sign patterns of the differences
    d = np.array([b[q] - a[q] for q in a])
    observed = abs(d.mean())
    patterns = np.array(list(itertools.product([-1, 1], repeat=len(d))))
    exact = np.mean(np.abs((patterns * d).mean(axis=1)) >= observed - 1e-12)
    assert first.p_randomization == pytest.approx(exact, abs=0.02)
    assert first.delta == pytest.approx(d.mean())
    assert first.mean_a == pytest.approx(np.mean(list(a.values())))
    assert first.p_ttest == pytest.approx(
        stats.ttest_rel(list(b.values()), list(a.values())).pvalue
    )
    lo, hi = first.ci95
    assert lo < d.mean() < hi
    assert d.min() <= lo and hi <= d.max()


def test_only_paired_queries_count():
    r = paired_comparison({"q1": 0.2, "q2": 0.4, "q3": 1.0}, {"q1": 0.3, "q2": 0.6}, n_resamples=10)
    assert r.n_queries == 2
    assert r.mean_a == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no query id"):
        paired_comparison({"q1": 0.2}, {"q2": 0.3})


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])
    adjusted = holm([float("nan"), 0.2])
    assert np.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.2)


def test_pnr_on_counts():
    a = {"q1": (3, 1), "q2": (2, 2), "q3": (1, 0)}
    b = {"q1": (4, 0), "q2": (3, 1), "q3": (1, 0)}
    r = paired_ratio_comparison(a, b, seed=0, n_resamples=2000)
    assert (r.mean_a, r.mean_b) == pytest.approx((6 / 3, 8 / 1))
    assert r.delta == pytest.approx(6.0)
    assert np.isnan(r.p_ttest)
    assert 0 < r.p_randomization <= 1
    assert repr(paired_ratio_comparison(a, b, seed=0, n_resamples=2000)) == repr(r)


def test_cli_json_shape_and_values(tmp_path, capsys):
    qrels = write(tmp_path, "test.qrels", QRELS)
    runs = [
        write(tmp_path, n, t)
        for n, t in (("base.run", BASE), ("better.txt", BETTER), ("mixed.run", MIXED))
    ]
    args = [
        "compare",
        "--qrels",
        qrels,
        *runs,
        "--metrics",
        "RR,pnr",
        "--json",
        "--resamples",
        "500",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"] == runs[0]
    assert list(out) == ["baseline", "runs"]
    assert list(out["runs"]) == runs
    assert out["runs"][runs[0]] == {
        "mrr": {"mean": pytest.approx((1 / 2 + 1 / 2 + 1 / 2 + 1 / 2) / 4)},
        "pnr": {"mean": pytest.approx(0.0)},
    }
    better = out["runs"][runs[1]]["mrr"]
    assert set(better) == {"mean", "delta", "ci95", "p_ttest", "p_randomization", "p_holm"}
    assert better["mean"] == pytest.approx(1.0)
    assert better["delta"] == pytest.approx(0.5)
    assert better["p_ttest"] == 0.0  # every difference is 0.5: t is infinite (scipy: 0)
    # all 4 queries gain 0.5: only the all-positive and all-negative sign patterns tie
    assert better["p_randomization"] == pytest.approx(2 / 16, abs=0.05)
    mixed = out["runs"][runs[2]]["mrr"]
    assert mixed["delta"] == pytest.approx(0.25)
    # per-query RR: baseline 1/2 everywhere; mixed ranks the relevant first in queries 1, 3
    expected = stats.ttest_rel([1.0, 0.5, 1.0, 0.5], [0.5, 0.5, 0.5, 0.5]).pvalue
    assert mixed["p_ttest"] == pytest.approx(expected, rel=1e-9)
    p = [out["runs"][r]["mrr"]["p_randomization"] for r in runs[1:]]
    assert [out["runs"][r]["mrr"]["p_holm"] for r in runs[1:]] == pytest.approx(holm(p))
    # same seed, same output
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == out


def test_cli_table_output(tmp_path, capsys):
    qrels = write(tmp_path, "test.qrels", QRELS)
    base, better = write(tmp_path, "a.run", BASE), write(tmp_path, "b.run", BETTER)
    assert (
        main(["compare", "--qrels", qrels, base, better, "--metrics", "map", "--resamples", "100"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run",
        "measure",
        "mean",
        "delta",
        "ci95",
        "p_ttest",
        "p_rand",
        "p_holm",
    ]
    assert lines[1].split()[:3] == [base, "map", "0.5417"]
    assert lines[2].split()[:4] == [better, "map", "1.0000", "+0.4583"]
    assert lines[-1] == f"(4 paired queries; baseline {base})"


def test_api_with_frames_and_table_mode():
    labeled = pl.DataFrame(
        {"query_id": ["1", "1", "2", "2"], "doc_id": ["a", "b", "c", "d"], "label": [1, 0, 0, 1]}
    )
    base = labeled.select("query_id", "doc_id", score=pl.Series([1.0, 2.0, 2.0, 1.0]))
    good = labeled.select("query_id", "doc_id", score=pl.Series([2.0, 1.0, 1.0, 2.0]))
    result = compare(
        {"base": base, "good": good}, data=labeled, metrics=["P@1", "pnr"], n_resamples=200
    )
    assert result.baseline == "base"
    assert result["base"]["p@1"] == {"mean": 0.0}
    assert result["good"]["p@1"]["delta"] == pytest.approx(1.0)
    assert result["good"]["pnr"]["mean"] == float("inf")
    with pytest.raises(RerankError, match="at least two runs"):
        compare([base], data=labeled)
    with pytest.raises(RerankError, match="one of them"):
        compare([base, good])


def test_cli_errors_are_one_line(tmp_path, capsys):
    qrels = write(tmp_path, "test.qrels", QRELS)
    base = write(tmp_path, "a.run", BASE)
    assert main(["compare", "--qrels", qrels, base]) == 2
    assert capsys.readouterr().err == (
        "rerank compare: error: compare needs at least two runs: the baseline, then the others\n"
    )
    assert main(["compare", "--qrels", qrels, base, str(tmp_path / "missing.run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.run: no such file" in err
