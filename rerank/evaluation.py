"""Evaluate scores against judgments: the work of ``rerank evaluate`` and :func:`evaluate`.

Two modes, because judgments come in two shapes:

- **TREC qrels and a run** (``qrels=``/``run=``, ``rerank evaluate --qrels Q --run R``):
  the qrels judge a pool and the run retrieves documents, most of them unjudged. The
  measures follow trec_eval (see :mod:`rerank.measures.trec`): an unjudged retrieved
  document is non-relevant, the ideal ranking and recall use every judged document of the
  query, retrieved or not, and the values equal ir-measures' (pytrec_eval's).
- **A labelled table** (``--data LABELED --scores SCORED``, or one frame with ``label``
  and ``score``): the re-ranking setting of industrial lists, where every candidate
  carries a label. The measures are computed over the judged rows that have a score, and
  nothing else: a judged row without a score is *left out* of the query (also of its
  ideal ranking), and a scored row without a judgment is an error, or with
  ``unmatched="drop"`` is *dropped*. On a sparse TREC run against a judged pool that drops
  exactly what trec_eval counts, and inflates every measure: use the first mode there.

Either way the report carries counts next to the measures, so a reader sees what was left
out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from rerank import _formats, data
from rerank.errors import RerankError, input_error
from rerank.measures.names import canonical_names, leveled_names

__all__ = ["EvaluationReport", "evaluate", "evaluate_files", "evaluate_trec_files"]

_TABLE_HINT = (
    "for TREC-style judgments (a judged pool; unjudged retrieved documents count as "
    "non-relevant) use --qrels/--run instead of --data/--scores"
)


@dataclass(frozen=True)
class EvaluationReport(Mapping):
    """Measures, PNR counts and row counts of one evaluation.

    A read-only mapping from measure name to value (``report["ndcg@10"]``), over
    ``aggregate``.

    Attributes
    ----------
    aggregate
        Measure name -> value (``pnr``, ``ndcg@10``, ...) plus the PNR counts, as
        returned by :func:`rerank.measures.evaluate`.
    counts
        Table mode: ``judged_rows``, ``scored_rows``, ``evaluated_rows``, ``unscored_rows``
        (judged rows without a score, left out) and ``unmatched_rows`` (scored rows without
        a judgment, dropped); see :class:`rerank.data.Attached`. TREC mode: see
        :func:`rerank.measures.trec.evaluate_trec`.
    per_query
        One row per query with the per-query values, when asked for.
    """

    aggregate: dict[str, float | int]
    counts: dict[str, int] = field(default_factory=dict)
    per_query: pl.DataFrame | None = None

    def __getitem__(self, name: str) -> float | int:
        return self.aggregate[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.aggregate)

    def __len__(self) -> int:
        return len(self.aggregate)

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


def evaluate(
    frame: data.PathLike | Any = None,
    *,
    scores: data.PathLike | Any = None,
    qrels: data.PathLike | Any = None,
    run: data.PathLike | Any = None,
    metrics: Sequence[str] | str | None = None,
    measures: Sequence[str] | str | None = None,
    per_query: bool = False,
    complete: bool = False,
    pnr_unjudged: Literal["skip", "zero"] = "skip",
    unmatched: Literal["error", "drop"] = "error",
    label_range: data.LabelRange = data.DEFAULT_LABEL_RANGE,
    relevance_level: int = 1,
) -> EvaluationReport:
    """Evaluate scores against judgments; files (paths) or polars/pandas frames.

    Parameters
    ----------
    frame
        Table mode: a table with ``query_id, doc_id, label, score``; or, with ``scores``,
        the judgments (``query_id, doc_id, label``) that ``scores`` are joined onto.
    scores
        Table mode: ``query_id, doc_id, score`` for ``frame``'s judgments.
    qrels, run
        TREC mode (trec_eval's semantics): the judgments and the retrieved documents.
        Files in any supported format (a ``.txt`` or extension-less file is recognised by
        its content; ``"-"`` is stdin) or frames with ``query_id, doc_id, label`` /
        ``query_id, doc_id, score``.
    metrics, measures
        Measure names in any spelling of :mod:`rerank.measures.names` (``nDCG@10``,
        ``ndcg_cut_10``, ``map``, ``RR@10``, ``P_10``, ``recall_100``, ``pnr`` ...), as a
        list or a comma-separated string; ``None`` for the default set. Two names for one
        keyword: give at most one.
    per_query
        Also return one row per query (``report.per_query``).
    complete
        TREC mode: judged queries missing from the run count as zero (trec_eval ``-c``).
    pnr_unjudged
        TREC mode: PNR over judged retrieved documents (``"skip"``) or with unjudged ones as
        grade 0 (``"zero"``).
    unmatched
        Table mode with ``scores``: scored rows without a judgment are an error or dropped.
    label_range
        Inclusive range of the grades; ``None`` accepts any integer.
    relevance_level
        Binary measures (AP, RR, P, R) count labels ``>= relevance_level`` as relevant
        (trec_eval ``-l``), unless a name sets ``rel`` itself; report keys stay the same.

    Returns
    -------
    EvaluationReport
        A mapping measure -> value, keyed by this project's lower-case names; counts and
        the per-query table as attributes.

    Examples
    --------
    >>> import polars as pl
    >>> qrels = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["a", "z"], "label": [1, 1]})
    >>> run = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["a", "x"], "score": [2.0, 1.0]})
    >>> dict(evaluate(qrels=qrels, run=run, metrics=["AP", "P_2"]))
    {'map': 0.5, 'p@2': 0.5}
    """
    names, keys = leveled_names(_names(metrics, measures), relevance_level)
    if (qrels is None) != (run is None):
        raise input_error(None, "give both qrels and run (TREC mode)")
    if qrels is not None:
        if frame is not None or scores is not None:
            raise input_error(None, "give either qrels and run, or a frame (and scores): not both")
        return _trec(qrels, run, names, per_query, complete, pnr_unjudged, label_range, keys=keys)
    if frame is None:
        raise input_error(None, "nothing to evaluate: give a frame, or qrels and run")
    labeled, scored, labeled_path, scores_path = _table_inputs(frame, scores, label_range)
    unmatched = unmatched if scores is not None else "error"
    return _table(
        labeled, scored, labeled_path, scores_path, names, unmatched, per_query, keys=keys
    )


def _table_inputs(frame: Any, scores: Any, label_range: data.LabelRange) -> tuple[Any, ...]:
    """Table mode's judgments and scores, and the paths they came from (``None``: frames)."""
    if scores is None:  # one table with both label and score
        if _formats.is_path(frame):
            with _formats.readable(frame, "table") as path:
                labeled = data.read_labels(path, label_range=label_range)
                scored = data.read_scores(path)
            return labeled, scored, frame, frame
        table = _formats.frame_of(frame, "frame", ("query_id", "doc_id", "label", "score"))
        labeled = _formats.labels_of(table.drop("score"), label_range)
        return labeled, _formats.scores_of(table.drop("label")), None, None
    if _formats.is_path(frame) and _formats.is_path(scores):
        return (*_read_files(frame, scores, label_range, ("judgments", "scores")), frame, scores)
    return _formats.labels_of(frame, label_range), _formats.scores_of(scores), None, None


def _read_files(
    judgments: data.PathLike, scores: data.PathLike, label_range: data.LabelRange, roles: Any
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The judgments and the scores of two files (formats by content; ``-``: stdin)."""
    labeled = _formats.read_judgments(judgments, label_range, roles[0])
    return labeled, _formats.read_scores(scores, roles[1])


def _file_names(measures: Sequence[str] | None, level: int) -> tuple[list[str], dict[str, str]]:
    """The names of a files entry point, checked before reading what may be large files."""
    from rerank.measures import DEFAULT_MEASURES, check_names

    names = list(measures) if measures is not None else list(DEFAULT_MEASURES)
    check_names(names)
    return leveled_names(names, level)


def evaluate_files(
    judgments: data.PathLike,
    scores: data.PathLike,
    *,
    measures: Sequence[str] | None = None,
    unmatched: Literal["error", "drop"] = "error",
    label_range: data.LabelRange = data.DEFAULT_LABEL_RANGE,
    per_query: bool = False,
    relevance_level: int = 1,
) -> EvaluationReport:
    """Table mode: evaluate the scores in one file against the judged rows of another.

    The measures are computed over the judged rows that have a score: a judged row
    without a score is left out (``unscored_rows``), a scored row without a judgment is
    an error, or dropped with ``unmatched="drop"`` (``unmatched_rows``). For TREC qrels
    and a run use :func:`evaluate_trec_files`.

    Parameters
    ----------
    judgments
        A query-grouped table with ``query_id, doc_id, label`` (``.tsv``, ``.jsonl``,
        ``.parquet``) or TREC qrels (``.qrels``).
    scores
        A table with ``query_id, doc_id, score`` or a TREC run (``.run``, ``.trec``).
    measures
        Measure names (``pnr``, ``ndcg@10``, ... or ir-measures expressions); ``None``
        for :data:`rerank.measures.DEFAULT_MEASURES`. Keys of the report are the names
        as given.
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
    names, keys = _file_names(measures, relevance_level)
    labeled, scored = _read_files(judgments, scores, label_range, ("judgments", "scores"))
    return _table(labeled, scored, judgments, scores, names, unmatched, per_query, keys=keys)


def evaluate_trec_files(
    qrels: data.PathLike,
    run: data.PathLike,
    *,
    measures: Sequence[str] | None = None,
    complete: bool = False,
    pnr_unjudged: Literal["skip", "zero"] = "skip",
    label_range: data.LabelRange = data.DEFAULT_LABEL_RANGE,
    per_query: bool = False,
    relevance_level: int = 1,
) -> EvaluationReport:
    """TREC mode: evaluate a run against qrels with trec_eval's semantics.

    See :func:`rerank.measures.trec.evaluate_trec` for the semantics and the counts.
    ``qrels`` may also be a labelled table, ``run`` a score table; ``"-"`` reads stdin.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "qrels.txt").write_text("q1 0 a 1\\nq1 0 z 1\\n")
    >>> _ = (d / "run.txt").write_text("q1 Q0 a 1 3.0 m\\nq1 Q0 x 2 2.0 m\\n")
    >>> report = evaluate_trec_files(d / "qrels.txt", d / "run.txt", measures=["map", "p@2"])
    >>> report.aggregate
    {'map': 0.5, 'p@2': 0.5}
    """
    names, keys = _file_names(measures, relevance_level)
    if str(qrels) == str(run) == "-":
        raise input_error(None, "only one of the qrels and the run can be read from stdin")
    labeled, scored = _read_files(qrels, run, label_range, ("qrels", "run"))
    return _trec(
        labeled, scored, names, per_query, complete, pnr_unjudged, label_range, read=True, keys=keys
    )


# --------------------------------------------------------------------------------------


def _names(metrics, measures) -> list[str]:
    from rerank.measures import DEFAULT_MEASURES

    if metrics is not None and measures is not None:
        raise input_error(None, "give metrics or measures, not both (they are the same)")
    given = metrics if metrics is not None else measures
    if given is None:
        return list(DEFAULT_MEASURES)
    if isinstance(given, str):
        from rerank.measures.names import split_names

        given = split_names(given)
    from rerank.measures import check_names

    names = canonical_names(list(given))
    check_names(names)
    return names


def _table(labeled, scored, labeled_path, scores_path, names, unmatched, per_query, *, keys=None):
    from rerank import measures as measures_module

    try:
        attached = data.attach_scores(
            labeled,
            scored,
            unmatched=unmatched,
            labeled_path=labeled_path,
            scores_path=scores_path,
            check_duplicates=labeled_path is None,  # the file readers reject repeated pairs
        )
    except RerankError as err:
        text = str(err)
        if "no judged (query_id, doc_id)" in text:
            # The join's own hint (drop the rows) inflates the measures on TREC judgments.
            head = text.split("; set unmatched to 'drop'")[0]
            raise RerankError(f"{head}; {_TABLE_HINT}") from None
        raise
    if attached.frame.height == 0:
        raise input_error(
            scores_path,
            f"no scored row matches a judged (query_id, doc_id) in {labeled_path}; " + _TABLE_HINT,
        )
    evaluation = measures_module.evaluate(
        attached.frame, names, per_query=per_query, check_duplicates=False
    )
    report = EvaluationReport(
        aggregate=dict(evaluation.aggregate),
        counts=attached.counts(),
        per_query=evaluation.per_query if per_query else None,
    )
    return _renamed(report, keys)


def _trec(
    qrels, run, names, per_query, complete, pnr_unjudged, label_range, *, read=False, keys=None
):
    """TREC mode on paths or frames (``read``: both were read by this module already)."""
    from rerank.measures.trec import evaluate_trec

    if not read:
        qrels, run = _formats.read_judgments(qrels, label_range, "qrels"), _formats.read_scores(run)
    evaluation, counts = evaluate_trec(
        qrels,
        run,
        names,
        complete=complete,
        pnr_unjudged=pnr_unjudged,
        per_query=per_query,
    )
    return _renamed(
        EvaluationReport(dict(evaluation.aggregate), counts, evaluation.per_query), keys
    )


def _renamed(report: EvaluationReport, keys: dict[str, str] | None) -> EvaluationReport:
    """The report with measures computed under another expression keyed as asked."""
    if not keys:
        return report
    aggregate = {keys.get(k, k): v for k, v in report.aggregate.items()}
    table = report.per_query
    if table is not None:
        table = table.rename({e: n for e, n in keys.items() if e in table.columns})
    return EvaluationReport(aggregate, report.counts, table)
