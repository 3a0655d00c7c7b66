"""What an evaluation reports: :class:`Evaluation` (the aggregate values and, if asked, one
row per query) and :func:`assemble`, the one place table mode
(:func:`rerank.measures.evaluate`) and TREC mode (:func:`rerank.measures.trec.evaluate_trec`)
turn per-query values and a PNR result into it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rerank.measures.pnr import PNRResult

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PNR_COUNTS", "PNR_MEASURES", "Evaluation", "assemble"]

PNR_MEASURES: tuple[str, ...] = ("pnr", "pnr_macro")
# Reported with any PNR measure, after the requested names.
PNR_COUNTS: tuple[str, ...] = (
    "concordant",
    "discordant",
    "ties",
    "queries",
    "queries_without_discordant",
)


@dataclass(frozen=True)
class Evaluation:
    """The measured values of one scored table.

    Attributes
    ----------
    aggregate
        Requested name -> value, in the order asked, followed by the PNR counts
        (``concordant``, ``discordant``, ``ties``, ``queries``,
        ``queries_without_discordant``; ints) when a PNR measure was requested.
    per_query
        With ``per_query=True``: one row per query (in order of first appearance) with
        ``query_id``, one column per ir-measures name, ``pnr`` (the per-query ratio, shared
        by ``pnr`` and ``pnr_macro``) and the per-query ``concordant``, ``discordant`` and
        ``ties``. Otherwise ``None``.
    """

    aggregate: dict[str, float | int]
    per_query: pl.DataFrame | None = None

    def to_json(self, *, indent: int | None = None) -> str:
        """The aggregate values as a JSON object (NaN as ``null``, infinity as ``"inf"``).

        Examples
        --------
        >>> Evaluation({"pnr": math.inf, "map": 0.5, "concordant": 3}).to_json()
        '{"pnr": "inf", "map": 0.5, "concordant": 3}'
        """
        return json.dumps({k: _json_value(v) for k, v in self.aggregate.items()}, indent=indent)

    def format_table(self, *, digits: int = 4) -> str:
        """A two-column text table, values aligned on the decimal point.

        Examples
        --------
        >>> print(Evaluation({"pnr": 3.04128, "ndcg@10": 0.5, "concordant": 1204}).format_table())
        measure         value
        pnr            3.0413
        ndcg@10        0.5000
        concordant  1204
        """
        rows = [(name, *_format_value(v, digits)) for name, v in self.aggregate.items()]
        name_width = max([len("measure")] + [len(name) for name, _, _ in rows])
        int_width = max([0] + [len(whole) for _, whole, _ in rows])
        frac_width = max([0] + [len(frac) for _, _, frac in rows])
        value_width = max(len("value"), int_width + frac_width)
        lines = [f"{'measure':<{name_width}}  {'value':>{value_width}}"]
        for name, whole, frac in rows:
            # Non-finite floats (whole part "") go to the right edge.
            value = f"{whole:>{int_width}}{frac:<{frac_width}}" if whole else frac
            lines.append(f"{name:<{name_width}}  {value:>{value_width}}".rstrip())
        return "\n".join(lines)


def assemble(
    names: Sequence[str],
    result: PNRResult | None,
    values: dict[str, np.ndarray],
    query_ids: pl.Series,
    *,
    per_query: bool,
) -> Evaluation:
    """The :class:`Evaluation` of ``names`` (in order) from the PNR ``result`` and the
    per-query ``values`` of the other measures; ``query_ids`` name the groups."""
    import polars as pl

    aggregate: dict[str, float | int] = {}
    columns: dict[str, object] = {}
    for name in names:
        if name == "pnr":
            aggregate[name] = result.pnr
        elif name == "pnr_macro":
            aggregate[name] = result.pnr_macro
        else:
            aggregate[name] = _mean(values[name])
            columns[name] = values[name]
    if result is not None:
        for count in PNR_COUNTS:
            aggregate[count] = getattr(result, count)
        columns.update(
            pnr=result.query_pnr,
            concordant=result.query_concordant,
            discordant=result.query_discordant,
            ties=result.query_ties,
        )
    table = pl.DataFrame({"query_id": query_ids.cast(pl.String), **columns}) if per_query else None
    return Evaluation(aggregate, table)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _json_value(value: float | int) -> float | int | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _format_value(value: float | int, digits: int) -> tuple[str, str]:
    """(integer part, "." + decimals) so that a column can align on the decimal point."""
    if isinstance(value, (int, np.integer)):
        return str(int(value)), ""
    text = f"{value:.{digits}f}"
    if not math.isfinite(value):
        return "", text
    whole, dot, frac = text.partition(".")
    return whole, dot + frac
