"""Evaluate a score file against judgments: the work of ``rerank evaluate``.

Reads the judgments (a query-grouped table or TREC qrels) and the scores (a table
or a TREC run), joins them by (query_id, doc_id) with :func:`rerank.data.attach_scores`
and computes the measures with :func:`rerank.measures.evaluate`. The report carries
the row counts next to the measures, so a reader sees how many judged rows had no
score (left out) and how many scored rows had no judgment (dropped, or an error).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from rerank import data
from rerank.errors import input_error

__all__ = ["EvaluationReport", "evaluate_files"]

# what each row count means, in the order the table prints them
COUNT_HELP = {
    "judged_rows": "rows in the judgments",
    "scored_rows": "rows in the scores",
    "evaluated_rows": "judged rows with a score",
    "unscored_rows": "judged rows without a score (left out)",
    "unmatched_rows": "scored rows without a judgment (dropped)",
}


@dataclass(frozen=True)
class EvaluationReport:
    """Measures, PNR counts and row counts of one evaluation.

    Attributes
    ----------
    aggregate
        Measure name -> value (``pnr``, ``ndcg@10``, ...) plus the PNR counts, as
        returned by :func:`rerank.measures.evaluate`.
    counts
        ``judged_rows``, ``scored_rows``, ``evaluated_rows``, ``unscored_rows`` and
        ``unmatched_rows`` (see :class:`rerank.data.Attached`).
    per_query
        One row per query and measure values as columns, when asked for.
    """

    aggregate: dict[str, float | int]
    counts: dict[str, int]
    per_query: pl.DataFrame | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """Measures, then counts, in one flat dict (non-finite values become ``None``)."""
        merged = {**self.aggregate, **self.counts}
        return {k: (None if _non_finite(v) else v) for k, v in merged.items()}

    def to_json(self) -> str:
        """One JSON object whose keys are the measure and count names."""
        return json.dumps(self.as_dict())

    def format_table(self) -> str:
        """A two-column plain-text table: measures, then counts with their meaning."""
        rows = [(name, _format(value), "") for name, value in self.aggregate.items()]
        rows += [(name, str(value), COUNT_HELP[name]) for name, value in self.counts.items()]
        width = max(len(name) for name, _, _ in rows)
        value_width = max(len(value) for _, value, _ in rows)
        lines = [f"{'measure':<{width}}  {'value':>{value_width}}"]
        for name, value, note in rows:
            line = f"{name:<{width}}  {value:>{value_width}}"
            lines.append(f"{line}  {note}" if note else line)
        return "\n".join(lines)


def evaluate_files(
    judgments: data.PathLike,
    scores: data.PathLike,
    *,
    measures: Sequence[str] | None = None,
    unmatched: Literal["error", "drop"] = "error",
    label_range: data.LabelRange = data.DEFAULT_LABEL_RANGE,
    per_query: bool = False,
) -> EvaluationReport:
    """Evaluate the scores in one file against the judgments in another.

    Parameters
    ----------
    judgments
        A query-grouped table with ``query_id, doc_id, label`` (``.tsv``, ``.jsonl``,
        ``.parquet``) or TREC qrels (``.qrels``).
    scores
        A table with ``query_id, doc_id, score`` or a TREC run (``.run``, ``.trec``).
    measures
        Measure names (``pnr``, ``ndcg@10``, ... or ir-measures expressions); ``None``
        for :data:`rerank.measures.DEFAULT_MEASURES`.
    unmatched
        Scored rows with no judged pair: ``"error"`` (the default) or ``"drop"``.
    label_range
        Inclusive range of the grades; ``None`` accepts any integer.
    per_query
        Also compute the per-query table.

    Returns
    -------
    EvaluationReport

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "test.qrels").write_text("q1 0 a 2\\nq1 0 b 0\\nq1 0 c 1\\n")
    >>> _ = (d / "model.run").write_text("q1 Q0 a 1 3.0 m\\nq1 Q0 b 2 2.0 m\\nq1 Q0 c 3 1.0 m\\n")
    >>> report = evaluate_files(d / "test.qrels", d / "model.run", measures=["pnr"])
    >>> report.aggregate["concordant"], report.aggregate["discordant"]
    (2, 1)
    >>> report.counts["unscored_rows"]
    0
    """
    from rerank import measures as measures_module

    names = list(measures) if measures is not None else list(measures_module.DEFAULT_MEASURES)
    labeled = data.read_labels(judgments, label_range=label_range)
    scored = data.read_scores(scores)
    attached = data.attach_scores(
        labeled, scored, unmatched=unmatched, labeled_path=judgments, scores_path=scores
    )
    if attached.frame.height == 0:
        raise input_error(
            scores, f"no scored row matches a judged (query_id, doc_id) in {judgments}"
        )
    evaluation = measures_module.evaluate(attached.frame, names, per_query=per_query)
    return EvaluationReport(
        aggregate=dict(evaluation.aggregate),
        counts=attached.counts(),
        per_query=evaluation.per_query if per_query else None,
    )


def _non_finite(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _format(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4f}"
