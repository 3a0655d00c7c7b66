"""Evaluate a score file against judgments: the work of ``rerank evaluate``.

Reads the judgments (a query-grouped table or TREC qrels) and the scores (a table
or a TREC run), joins them by (query_id, doc_id) with :func:`rerank.data.attach_scores`
and computes the measures with :func:`rerank.measures.evaluate`. The report carries
the row counts next to the measures, so a reader sees how many judged rows had no
score (left out) and how many scored rows had no judgment (dropped, or an error).

This is the re-ranking setting: the judged rows are the candidates, and the measures
are computed over the judged rows that have a score. It differs from trec_eval on a
sparse retrieval run, where a judged document missing from the run still counts in
the ideal ranking (nDCG, recall) and a retrieved unjudged document counts as
non-relevant; here the first is left out and the second dropped (or an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from rerank import data
from rerank.errors import input_error

__all__ = ["EvaluationReport", "evaluate_files"]


@dataclass(frozen=True)
class EvaluationReport:
    """Measures, PNR counts and row counts of one evaluation.

    Attributes
    ----------
    aggregate
        Measure name -> value (``pnr``, ``ndcg@10``, ...) plus the PNR counts, as
        returned by :func:`rerank.measures.evaluate`.
    counts
        ``judged_rows``, ``scored_rows``, ``evaluated_rows``, ``unscored_rows`` (judged
        rows without a score, left out) and ``unmatched_rows`` (scored rows without a
        judgment, dropped); see :class:`rerank.data.Attached`.
    per_query
        One row per query with the per-query values, when asked for.
    """

    aggregate: dict[str, float | int]
    counts: dict[str, int]
    per_query: pl.DataFrame | None = None

    def as_dict(self) -> dict[str, float | int]:
        """Measures, PNR counts, then row counts, in one flat dict."""
        return {**self.aggregate, **self.counts}

    def to_json(self) -> str:
        """One JSON object keyed by measure and count names (NaN: null, infinity: "inf")."""
        from rerank.measures import Evaluation

        return Evaluation(self.as_dict()).to_json()

    def format_table(self) -> str:
        """A two-column text table (measure, value): measures, PNR counts, row counts."""
        from rerank.measures import Evaluation

        return Evaluation(self.as_dict()).format_table()


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
    _check_measure_names(names)  # before reading what may be large files
    labeled = data.read_labels(judgments, label_range=label_range)
    scored = data.read_scores(scores)
    attached = data.attach_scores(
        labeled,
        scored,
        unmatched=unmatched,
        labeled_path=judgments,
        scores_path=scores,
        check_duplicates=False,  # both readers reject repeated pairs
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


def _check_measure_names(names: Sequence[str]) -> None:
    from rerank.measures import PNR_MEASURES

    if not names:
        raise input_error(None, "no measures requested")
    other = [name for name in names if name not in PNR_MEASURES]
    if other:
        from rerank.measures import ir

        for name in other:
            ir.parse_measure(name)
