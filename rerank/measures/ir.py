"""Bridge to ir-measures: friendly measure names and per-query values from grouped arrays.

Friendly names (case-insensitive; ``K`` is a positive integer cutoff):

=============  ==================  ==========================================
name           ir-measures         meaning
=============  ==================  ==========================================
``ndcg``       ``nDCG``            nDCG over the whole ranking
``ndcg@K``     ``nDCG@K``          nDCG of the top K
``map``        ``AP``              mean average precision (``map@K``: ``AP@K``)
``mrr``        ``RR``              reciprocal rank (``mrr@K``: ``RR@K``)
``err@K``      ``ERR@K``           expected reciprocal rank (gdeval)
``p@K``        ``P@K``             precision at K
``recall@K``   ``R@K``             recall at K (also ``r@K``)
=============  ==================  ==========================================

Any other ir-measures expression is accepted as it is (``nDCG@10``, ``AP(rel=2)``,
``RR(rel=2)@10``), see https://ir-measur.es/en/latest/measures.html, and so are trec_eval
names (``ndcg_cut_10``, ``recip_rank``, ``P_10``); :mod:`rerank.measures.names` resolves
them all.

Conventions to keep in mind when reading the numbers (they are those of ir-measures and
its providers, not ours):

- **Graded labels.** Binary measures (AP, RR, P, R) count a document as relevant when its
  label is at least 1 (ir-measures' default ``rel=1``); write ``AP(rel=2)`` for a stricter
  threshold. nDCG (pytrec_eval) uses the label itself as the gain (trec_eval's linear
  gain); ERR (gdeval) uses ``2**label - 1`` and needs labels in 0..4.
- **Equal scores.** pytrec_eval, like trec_eval, breaks score ties by doc id in
  *descending* string order, so ties are resolved arbitrarily but deterministically. PNR
  instead counts tied pairs separately (see :mod:`rerank.measures.pnr`).
- **Queries without relevant documents** score 0 and are included in the means.

Query ids are handed to ir-measures as group numbers (``"0"``, ``"1"``, ...): gdeval
only accepts numeric topics, and the short keys make the dictionaries cheaper. Doc ids are
passed unchanged (pytrec_eval's tie-break depends on them); gdeval reads them from a
whitespace-separated file, so ERR needs doc ids without spaces.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from rerank.errors import input_error
from rerank.measures.names import PROJECT_NAMES as FRIENDLY_NAMES

__all__ = ["FRIENDLY_NAMES", "calc", "parse_measure"]


def parse_measure(name: str):
    """Turn a friendly name or an ir-measures expression into an ir-measures measure.

    Parameters
    ----------
    name
        ``ndcg@10``, ``map``, ``mrr``, ``err@20``, ``p@10``, ``recall@100``/``r@100``, or
        any ir-measures expression such as ``nDCG@10`` or ``AP(rel=2)``.

    Returns
    -------
    ir_measures.Measure
        A measure that an installed ir-measures provider can compute.

    Raises
    ------
    RerankError
        If the name is unknown or no installed provider computes it.

    Examples
    --------
    >>> parse_measure("ndcg@10"), parse_measure("r@100"), parse_measure("AP(rel=2)")
    (nDCG@10, R@100, AP(rel=2))
    """
    return _parse_measure(name)


@functools.lru_cache(maxsize=256)
def _parse_measure(name: str):
    # Cached: the training loop evaluates the same names every few steps, and checking the
    # providers costs more than the parse.
    import ir_measures

    from rerank.measures.names import resolve

    return ir_measures.parse_measure(resolve(name).expression)


def calc(
    names: Sequence[str],
    offsets: np.ndarray,
    doc_ids: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    query_ids: Sequence[str] | None = None,
    judged: tuple[np.ndarray, Sequence[str], np.ndarray] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compute ir-measures on query-grouped rows.

    Parameters
    ----------
    names
        Measure names (see the module docstring); each is parsed with :func:`parse_measure`.
    offsets
        int64 query offsets: query ``q``'s rows are ``offsets[q]:offsets[q + 1]``.
    doc_ids, labels, scores
        One value per row, grouped by query. A doc id may appear once per query.
    query_ids
        The id of each group, used only in error messages.
    judged
        ``(offsets, doc_ids, labels)`` of the judgments, grouped in the same query order,
        when they are not the ranked rows themselves (TREC qrels and a run: ``labels`` of
        the ranked rows are then ignored). A query the run left empty gets 0.

    Returns
    -------
    aggregate : dict[str, float]
        The value of each requested name, aggregated as ir-measures does (the mean over
        queries for all the measures above).
    per_query : dict[str, numpy.ndarray]
        float64 per-query values aligned with the groups (NaN where a provider returned
        nothing for a query).

    Examples
    --------
    >>> import numpy as np
    >>> agg, per_query = calc(
    ...     ["mrr", "p@2"], np.array([0, 2, 4]), ["a", "b", "c", "d"],
    ...     np.array([0, 1, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2]),
    ... )
    >>> agg
    {'mrr': 0.75, 'p@2': 0.5}
    >>> per_query["mrr"].tolist()
    [0.5, 1.0]
    """
    import ir_measures

    measures = {name: parse_measure(name) for name in names}
    n_queries = len(offsets) - 1
    if not measures:
        return {}, {}
    grades = labels if judged is None else judged[2]
    if any(m.NAME == "ERR" for m in measures.values()) and len(grades) and grades.max() > 4:
        raise input_error(None, f"ERR (gdeval) needs labels in 0..4, found {grades.max()}")
    if judged is None:
        qrels, run = _dict_of_dict(offsets, doc_ids, labels, scores, query_ids)
    else:
        j_offsets, j_docs, j_labels = judged
        qrels = _dict_of_dict(j_offsets, j_docs, j_labels, j_labels, query_ids)[0]
        run = _dict_of_dict(offsets, doc_ids, scores, scores, query_ids)[1]
        run = {q: docs for q, docs in run.items() if docs}
    canonical = _canonical(measures.values())
    unique = list(canonical)
    result = ir_measures.calc(unique, qrels, run)
    by_id = _per_query(result.per_query, unique, n_queries)
    if judged is None:
        aggregate = {name: float(result.aggregated[m]) for name, m in measures.items()}
    else:  # trec_eval -c: queries judged but not retrieved count as zero
        for m in unique:
            by_id[id(m)][np.diff(offsets) == 0] = 0.0
        aggregate = {
            name: float(np.nanmean(by_id[id(canonical[m])])) if n_queries else float("nan")
            for name, m in measures.items()
        }
    per_query = {name: by_id[id(canonical[m])] for name, m in measures.items()}
    return aggregate, per_query


def _canonical(measures: Any) -> dict[Any, Any]:
    """Equal measures (``nDCG@10``, ``ndcg@10``) -> the first of them."""
    canonical: dict = {}
    for m in measures:
        canonical.setdefault(m, m)
    return canonical


def _per_query(metrics: Any, unique: list[Any], n_queries: int) -> dict[int, np.ndarray]:
    """Per-query values of each measure (NaN where none came), keyed by ``id(measure)``."""
    # Measures hash through their repr (slow); providers hand back the objects they were
    # given, so look them up by identity first.
    by_id = {id(m): np.full(n_queries, np.nan) for m in unique}
    for metric in metrics:
        values = by_id.get(id(metric.measure))
        if values is None:
            values = by_id[id(next(m for m in unique if m == metric.measure))]
        values[int(metric.query_id)] = metric.value
    return by_id


def _dict_of_dict(
    offsets: np.ndarray,
    doc_ids: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    query_ids: Sequence[str] | None,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """pytrec_eval's native input: {query: {doc: value}}, keyed by group number."""
    docs = doc_ids if isinstance(doc_ids, list) else list(doc_ids)
    label_list = labels.tolist()
    score_list = scores.tolist()
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    bounds = offsets.tolist()
    for q in range(len(bounds) - 1):
        a, b = bounds[q], bounds[q + 1]
        group_docs = docs[a:b]
        judged = dict(zip(group_docs, label_list[a:b], strict=True))
        if len(judged) != b - a:
            seen: set[str] = set()
            duplicate = next(d for d in group_docs if d in seen or seen.add(d))
            query = f"query '{query_ids[q]}'" if query_ids is not None else f"query group {q}"
            raise input_error(None, f"doc_id '{duplicate}' appears more than once in {query}")
        qrels[str(q)] = judged
        run[str(q)] = dict(zip(group_docs, score_list[a:b], strict=True))
    return qrels, run
