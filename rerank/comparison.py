"""Compare runs against a baseline on the same judgments: the work of ``rerank compare``.

Each run is evaluated per query (TREC mode with ``qrels``, table mode with ``data``; see
:mod:`rerank.evaluation`), the queries evaluated in every run are paired, and each run
after the first is compared with the first (the baseline) on each measure by
:mod:`rerank.measures.significance`: the mean difference, its 95% bootstrap interval, a
paired t-test, a paired randomization test, and the randomization p-value corrected with
Holm's method across the runs compared with the baseline. PNR is compared on the
per-query concordant/discordant counts; ``pnr_macro`` on the per-query ratios of the
queries where every run has one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rerank import data as _data
from rerank.errors import input_error
from rerank.measures.names import leveled_names
from rerank.measures.results import _json_value

__all__ = ["DEFAULT_COMPARE_MEASURES", "Comparison", "compare"]

DEFAULT_COMPARE_MEASURES: tuple[str, ...] = ("pnr", "ndcg@10", "map", "mrr")
_STATS = ("mean", "delta", "ci95", "p_ttest", "p_randomization", "p_holm")


@dataclass(frozen=True)
class Comparison(Mapping):
    """Runs compared with a baseline: a mapping run -> measure -> statistics.

    Attributes
    ----------
    baseline
        The first run's name.
    runs
        Run name -> measure -> ``{"mean"}`` for the baseline, and ``{"mean", "delta",
        "ci95": [lo, hi], "p_ttest", "p_randomization", "p_holm"}`` for the others.
    queries
        Number of paired queries (evaluated in every run).
    """

    baseline: str
    runs: dict[str, dict[str, dict[str, Any]]]
    queries: int

    def __getitem__(self, run: str) -> dict[str, dict[str, Any]]:
        return self.runs[run]

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        """``{"baseline": name, "runs": {...}}``, the JSON shape of ``rerank compare``."""
        return {"baseline": self.baseline, "runs": self.runs}

    def to_json(self, *, indent: int | None = None) -> str:
        """The :meth:`to_dict` object as JSON (NaN: null, infinity: "inf")."""
        return json.dumps(_jsonable(self.to_dict()), indent=indent)

    def format_table(self, *, digits: int = 4) -> str:
        """One row per run and measure: mean, delta, interval and p-values."""
        header = ("run", "measure", "mean", "delta", "ci95", "p_ttest", "p_rand", "p_holm")
        rows = []
        for run, measures in self.runs.items():
            for name, s in measures.items():
                if "delta" not in s:
                    rows.append((run, name, _num(s["mean"], digits), "", "", "", "", ""))
                    continue
                lo, hi = s["ci95"]
                rows.append(
                    (
                        run,
                        name,
                        _num(s["mean"], digits),
                        _num(s["delta"], digits, sign=True),
                        f"[{_num(lo, digits, sign=True)}, {_num(hi, digits, sign=True)}]",
                        _num(s["p_ttest"], digits),
                        _num(s["p_randomization"], digits),
                        _num(s["p_holm"], digits),
                    )
                )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in [header, *rows]
        ]
        lines.append(f"({self.queries} paired queries; baseline {self.baseline})")
        return "\n".join(lines)


def compare(
    runs: Sequence[_data.PathLike | Any] | Mapping[str, _data.PathLike | Any],
    *,
    qrels: _data.PathLike | Any = None,
    data: _data.PathLike | Any = None,
    metrics: Sequence[str] | str | None = None,
    measures: Sequence[str] | str | None = None,
    complete: bool = False,
    pnr_unjudged: Literal["skip", "zero"] = "skip",
    unmatched: Literal["error", "drop"] = "error",
    label_range: _data.LabelRange = _data.DEFAULT_LABEL_RANGE,
    relevance_level: int = 1,
    seed: int = 0,
    n_resamples: int = 10_000,
) -> Comparison:
    """Compare runs with the first of them on the same judgments.

    Parameters
    ----------
    runs
        Two or more runs: paths (TREC runs or score tables, named by the path as given) or
        polars/pandas frames with ``query_id, doc_id, score`` (named ``run1``, ``run2``,
        ... or by the keys of a mapping). The first is the baseline.
    qrels
        TREC judgments (path or frame): the runs are evaluated as trec_eval does.
    data
        Or a labelled table (path or frame): table mode, the runs are joined onto it.
    metrics, measures
        Measure names (one keyword or the other); default ``pnr, ndcg@10, map, mrr``.
    complete
        TREC mode: judged queries missing from a run count as zero (trec_eval ``-c``).
    pnr_unjudged, unmatched, label_range, relevance_level
        As in :func:`rerank.evaluation.evaluate`.
    seed, n_resamples
        Of the randomization test and the bootstrap (see
        :mod:`rerank.measures.significance`).

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import polars as pl
    >>> qrels = pl.DataFrame({"query_id": ["1", "2"], "doc_id": ["a", "b"], "label": [1, 1]})
    >>> base = pl.DataFrame({"query_id": ["1", "1", "2", "2"], "doc_id": ["x", "a", "b", "y"],
    ...                      "score": [2.0, 1.0, 2.0, 1.0]})
    >>> better = base.with_columns(score=pl.Series([1.0, 2.0, 2.0, 1.0]))
    >>> c = compare({"bm25": base, "model": better}, qrels=qrels, metrics=["mrr"])
    >>> c["bm25"]["mrr"]["mean"], c["model"]["mrr"]["delta"]
    (0.75, 0.25)
    """
    from rerank import evaluation

    if (qrels is None) == (data is None):
        raise input_error(None, "give the judgments as qrels (TREC) or data (table): one of them")
    named = _named_runs(runs)
    names = evaluation._names(metrics, measures)
    if metrics is None and measures is None:
        names = list(DEFAULT_COMPARE_MEASURES)
    options = {
        "complete": complete,
        "pnr_unjudged": pnr_unjudged,
        "unmatched": unmatched,
        "label_range": label_range,
    }
    tables = _per_query_tables(named, qrels, data, names, relevance_level, **options)
    common = set.intersection(*(set(t["query_id"].to_list()) for t in tables.values()))
    if not common:
        raise input_error(None, "the runs have no evaluated query in common")
    per_run = {
        name: t.filter(t["query_id"].is_in(list(common))).sort("query_id")
        for name, t in tables.items()
    }
    baseline = next(iter(named))
    result: dict[str, dict[str, dict[str, Any]]] = {run: {} for run in named}
    for measure in names:
        for run, row in _compare_measure(measure, per_run, seed, n_resamples).items():
            result[run][measure] = row
    return Comparison(baseline, result, len(common))


def _per_query_tables(
    named: dict[str, Any],
    qrels: Any,
    data: Any,
    names: list[str],
    relevance_level: int,
    *,
    complete: bool,
    pnr_unjudged: str,
    unmatched: str,
    label_range: _data.LabelRange,
) -> dict[str, Any]:
    """Each run's per-query table on the judgments (TREC mode with qrels, else table mode)."""
    from rerank import _formats, evaluation

    computed, keys = leveled_names(names, relevance_level)
    judged = _formats.read_judgments(qrels if qrels is not None else data, label_range)
    tables = {}
    for name, run in named.items():
        scored = _formats.read_scores(run)
        if qrels is not None:
            report = evaluation._trec(
                judged,
                scored,
                computed,
                True,
                complete,
                pnr_unjudged,
                label_range,
                read=True,
                keys=keys,
            )
        else:
            path = data if _formats.is_path(data) else None
            scores_path = run if _formats.is_path(run) else None
            report = evaluation._table(
                judged, scored, path, scores_path, computed, unmatched, True, keys=keys
            )
        tables[name] = report.per_query
    return tables


def _compare_measure(
    measure: str, per_run: dict[str, Any], seed: int, n_resamples: int
) -> dict[str, dict[str, Any]]:
    """``measure`` of every run against the first: the baseline's mean, the others' rows
    (mean, delta, 95% interval, t-test, randomization test and its Holm correction)."""
    from rerank.measures.significance import (
        holm,
        paired_comparison,
        paired_ratio_comparison,
    )

    baseline, *others = list(per_run)
    compared = {}
    for other in others:
        a, b = per_run[baseline], per_run[other]
        if measure == "pnr":
            counts = [_counts(t) for t in (a, b)]
            compared[other] = paired_ratio_comparison(*counts, seed=seed, n_resamples=n_resamples)
        else:
            column = "pnr" if measure == "pnr_macro" else measure
            values = [dict(zip(t["query_id"], t[column], strict=True)) for t in (a, b)]
            if measure == "pnr_macro":  # queries where every run has a ratio
                values = _finite_everywhere(values, per_run, column)
            compared[other] = paired_comparison(*values, seed=seed, n_resamples=n_resamples)
    rows = {baseline: {"mean": compared[others[-1]].mean_a}}
    adjusted = holm([compared[o].p_randomization for o in others])
    for other, p_holm in zip(others, adjusted, strict=True):
        r = compared[other]
        rows[other] = {
            "mean": r.mean_b,
            "delta": r.delta,
            "ci95": [r.ci95[0], r.ci95[1]],
            "p_ttest": r.p_ttest,
            "p_randomization": r.p_randomization,
            "p_holm": p_holm,
        }
    return rows


def _named_runs(runs) -> dict[str, Any]:
    if isinstance(runs, Mapping):
        named = {str(k): v for k, v in runs.items()}
    else:
        runs = list(runs)
        named = {}
        for i, run in enumerate(runs, start=1):
            name = str(run) if isinstance(run, (str, os.PathLike)) else f"run{i}"
            if name in named:
                raise input_error(name, "the same run is given twice")
            named[name] = run
    if len(named) < 2:
        raise input_error(None, f"compare needs at least two runs, got {len(named)}")
    return named


def _counts(table) -> dict[str, tuple[int, int]]:
    return {
        q: (int(c), int(d))
        for q, c, d in zip(table["query_id"], table["concordant"], table["discordant"], strict=True)
    }


def _finite_everywhere(values, per_run, column):
    keep = set.intersection(
        *(
            {q for q, v in zip(t["query_id"], t[column], strict=True) if math.isfinite(v)}
            for t in per_run.values()
        )
    )
    if not keep:
        raise input_error(None, "pnr_macro: no query has a finite PNR in every run")
    return [{q: v for q, v in d.items() if q in keep} for d in values]


def _num(value: float, digits: int, *, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _json_value(float(value))
    return value
