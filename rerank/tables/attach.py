"""Scores joined onto judgments by ``(query_id, doc_id)``: :func:`attach_scores`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import polars as pl

from rerank.tables import checks
from rerank.tables.columns import ID_COLUMNS, SCORES
from rerank.tables.files import Source

__all__ = ["Attached", "attach_scores"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Attached:
    """Labeled rows with their scores, and how the two inputs matched.

    Attributes
    ----------
    frame
        The labeled rows that have a score, in labeled order, with a ``score`` column.
    judged
        Rows in the labeled input.
    scored
        Rows in the score input.
    unscored
        Judged rows without a score (left out of ``frame``).
    unmatched
        Scored rows without a judged (query_id, doc_id) (dropped).
    """

    frame: pl.DataFrame
    judged: int
    scored: int
    unscored: int
    unmatched: int

    def counts(self) -> dict[str, int]:
        """The row counts as a dict: ``judged_rows``, ``scored_rows``, ``evaluated_rows``, ..."""
        return {
            "judged_rows": self.judged,
            "scored_rows": self.scored,
            "evaluated_rows": self.frame.height,
            "unscored_rows": self.unscored,
            "unmatched_rows": self.unmatched,
        }


def attach_scores(
    labeled: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    unmatched: Literal["error", "drop"] = "error",
    labeled_path: PathLike | None = None,
    scores_path: PathLike | None = None,
    check_duplicates: bool = True,
) -> Attached:
    """Join ``scores`` onto ``labeled`` by (query_id, doc_id).

    Judged rows without a score are left out and counted (``Attached.unscored``).
    Scored rows without a judged pair are an error (``unmatched="error"``) or are
    dropped and counted (``unmatched="drop"``).

    Parameters
    ----------
    labeled
        Judgments with ``query_id``, ``doc_id`` (and usually ``label``), e.g. from
        :func:`rerank.data.read_labels`.
    scores
        ``query_id, doc_id, score``, e.g. from :func:`rerank.data.read_scores`.
    unmatched
        What to do with scored rows that have no judgment.
    labeled_path, scores_path
        The files the frames were read from (unchanged), to name rows in errors.
    check_duplicates
        Check that neither side repeats a (query_id, doc_id); ``False`` skips the check
        for frames straight from this module's readers, which check it already.

    Examples
    --------
    >>> labeled = pl.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"],
    ...                         "label": [2, 0, 1]})
    >>> scores = pl.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["b", "a"],
    ...                        "score": [0.5, 3.0]})
    >>> out = attach_scores(labeled, scores)
    >>> out.frame.rows(), out.unscored
    ([('q1', 'a', 2, 3.0), ('q1', 'b', 0, 0.5)], 1)
    """
    if unmatched not in ("error", "drop"):
        raise ValueError(f"unmatched must be 'error' or 'drop', got {unmatched!r}")
    lsrc = Source.of(labeled_path, "labeled")
    ssrc = Source.of(scores_path, "scores")
    checks.require_columns(labeled, ID_COLUMNS, labeled_path, "labeled pairs")
    checks.require_columns(scores, SCORES, scores_path, "scores")
    position = checks.match_rows(
        labeled, scores, ID_COLUMNS, lsrc, ssrc, check_duplicates=check_duplicates
    )
    if position is None:  # same pairs in the same order: the common case, no join
        score = scores.get_column("score").cast(pl.Float64)
        return Attached(labeled.with_columns(score), labeled.height, scores.height, 0, 0)
    matched = position >= 0
    n_matched = int(matched.sum())
    n_unmatched = scores.height - n_matched
    if n_unmatched and unmatched == "error":
        first = checks.first_unmatched(position, scores.height)
        qid, did = scores[first, "query_id"], scores[first, "doc_id"]
        raise ssrc.error(
            first,
            f"{n_unmatched} scored row(s) have no judged (query_id, doc_id) in "
            f"{lsrc.label}; the first is ({qid!r}, {did!r}); "
            "set unmatched to 'drop' to ignore them",
        )
    values = scores.get_column("score").cast(pl.Float64).to_numpy()
    if n_matched == labeled.height:  # every judged row scored: no filter (copies strings)
        frame = labeled.with_columns(pl.Series("score", values[position]))
    else:
        kept = labeled.filter(pl.Series(matched))
        frame = kept.with_columns(pl.Series("score", values[position[matched]]))
    return Attached(frame, labeled.height, scores.height, labeled.height - n_matched, n_unmatched)
