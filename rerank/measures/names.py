"""Measure names: this project's, ir-measures' and trec_eval's spellings of one measure.

:func:`resolve` reads a name in any of three spellings and says (1) the key to report it
under, (2) the ir-measures expression that computes it, and (3) whether the numba kernels of
:mod:`rerank.measures.common` compute it instead (:class:`FastSpec`).

===============  ====================  ====================  ===========
this project     ir-measures           trec_eval             report key
===============  ====================  ====================  ===========
``ndcg@10``      ``nDCG@10``           ``ndcg_cut_10``       ``ndcg@10``
``ndcg``         ``nDCG``              ``ndcg``              ``ndcg``
``map``          ``AP``                ``map``               ``map``
``map@10``       ``AP@10``             ``map_cut_10``        ``map@10``
``mrr``          ``RR``                ``recip_rank``        ``mrr``
``mrr@10``       ``RR@10``                                   ``mrr@10``
``p@10``         ``P@10``              ``P_10``, ``P.10``    ``p@10``
``r@100``        ``R@100``             ``recall_100``        ``r@100``
``err@20``       ``ERR@20``                                  ``err@20``
===============  ====================  ====================  ===========

A name already written in this project's lower-case spelling is its own key (so
``recall@100`` stays ``recall@100``); the other spellings of the table are reported under
the key of the last column. Any other ir-measures expression (``AP(rel=2)``, ``Rprec``) or
trec_eval name (``bpref``, ``success_10``) is accepted and reported as written. Matching
is exact for ir-measures and trec_eval names (``P@10`` is precision, ``p@10`` too) and
case-insensitive for this project's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rerank.errors import RerankError, input_error

__all__ = [
    "FastSpec",
    "Resolved",
    "at_relevance_level",
    "canonical_names",
    "leveled_names",
    "resolve",
    "split_names",
]

# project name -> (ir-measures name, cutoff required?)
_PROJECT = {
    "ndcg": ("nDCG", False),
    "map": ("AP", False),
    "mrr": ("RR", False),
    "err": ("ERR", True),
    "p": ("P", True),
    "recall": ("R", True),
    "r": ("R", True),
}
# ir-measures name -> project key stem
_STEM = {"nDCG": "ndcg", "AP": "map", "RR": "mrr", "ERR": "err", "P": "p", "R": "r"}
PROJECT_NAMES = (
    "ndcg",
    "ndcg@K",
    "map",
    "map@K",
    "mrr",
    "mrr@K",
    "err@K",
    "p@K",
    "recall@K",
    "r@K",
)
_PROJECT_RE = re.compile(r"^([a-z]+)(?:@([1-9][0-9]*))?$")


@dataclass(frozen=True)
class FastSpec:
    """A measure the numba kernels compute.

    Attributes
    ----------
    kind
        ``"ndcg"``, ``"ap"``, ``"rr"``, ``"p"``, ``"r"`` or ``"err"``.
    cutoff
        Depth ``k``, or 0 for the whole ranking.
    rel
        Smallest label counted as relevant by the binary measures (AP, RR, P, R).
    """

    kind: str
    cutoff: int = 0
    rel: int = 1


@dataclass(frozen=True)
class Resolved:
    """What a measure name means: its report ``key``, ir-measures ``expression`` and ``fast``
    spec (``None`` when only ir-measures computes it)."""

    key: str
    expression: str
    fast: FastSpec | None


def resolve(name: str) -> Resolved:
    """Resolve a measure name in any supported spelling.

    Raises
    ------
    RerankError
        If the name is unknown or no installed ir-measures provider computes it.

    Examples
    --------
    >>> resolve("ndcg_cut_10").key, resolve("nDCG@10").key, resolve("RR@10").key
    ('ndcg@10', 'ndcg@10', 'mrr@10')
    >>> resolve("recall_100")
    Resolved(key='r@100', expression='R@100', fast=FastSpec(kind='r', cutoff=100, rel=1))
    >>> resolve("AP(rel=2)").fast
    FastSpec(kind='ap', cutoff=0, rel=2)
    """
    return _resolve(name.strip())


@functools.lru_cache(maxsize=256)
def _resolve(name: str) -> Resolved:
    import ir_measures

    match = _PROJECT_RE.match(name.lower())
    project = match is not None and match.group(1) in _PROJECT
    measure = None
    if project:
        base, needs_cutoff = _PROJECT[match.group(1)]
        cutoff = match.group(2)
        if needs_cutoff and cutoff is None:
            raise input_error(None, f"measure '{name}' needs a cutoff, e.g. '{match.group(1)}@10'")
        measure = _parse(base if cutoff is None else f"{base}@{cutoff}")
    if measure is None:
        measure = _parse(name)
    if measure is None:
        try:
            parsed = ir_measures.parse_trec_measure(name)
        except Exception:  # any parse failure means: not a trec_eval name
            parsed = []
        if len(parsed) == 1:
            measure = parsed[0]
    if measure is None:
        raise input_error(
            None,
            f"unknown measure '{name}': expected pnr, pnr_macro, {', '.join(PROJECT_NAMES)} "
            "(K a positive integer), an ir-measures name (nDCG@10, AP, RR@10, P@10, R@100, "
            "AP(rel=2)) or a trec_eval name (ndcg_cut_10, map, recip_rank, P_10, recall_100)",
        )
    providers = ir_measures.providers.registry.values()
    if not any(p.supports(measure) and p.is_available() for p in providers):
        raise input_error(None, f"measure '{name}': no installed ir-measures provider computes it")
    fast = _fast_spec(measure)
    if project and name == name.lower():
        key = name
    elif fast is not None and fast.rel == 1 and measure.NAME in _STEM:
        key = _STEM[measure.NAME] + (f"@{fast.cutoff}" if fast.cutoff else "")
    else:
        key = name
    return Resolved(key, str(measure), fast)


def canonical_names(names: Sequence[str]) -> list[str]:
    """Measure names as this project's report keys, duplicates removed (``nDCG@10``,
    ``ndcg_cut_10`` -> ``ndcg@10``).

    Examples
    --------
    >>> canonical_names(["nDCG@10", "ndcg_cut_10", "recip_rank", "pnr", "AP(rel=2)"])
    ['ndcg@10', 'mrr', 'pnr', 'AP(rel=2)']
    """
    from rerank.measures import PNR_MEASURES

    keys = [name.strip() if name.strip() in PNR_MEASURES else resolve(name).key for name in names]
    return list(dict.fromkeys(keys))


def leveled_names(names: list[str], level: int) -> tuple[list[str], dict[str, str]]:
    """Names at relevance level ``level``, and expression -> report key for those renamed."""
    if isinstance(level, bool) or not isinstance(level, int):
        raise input_error(None, f"relevance level: expected an integer, got {level!r}")
    if level == 1:
        return names, {}
    leveled = [at_relevance_level(name, level) for name in names]
    return leveled, {e: n for e, n in zip(leveled, names, strict=True) if e != n}


def at_relevance_level(name: str, level: int) -> str:
    """``name`` with binary relevance at labels ``>= level`` (trec_eval ``-l level``).

    Measures with a relevance threshold (AP, RR, P, R, Rprec, ...) that do not set one get
    ``rel=level``; nDCG, ERR, PNR and measures that set ``rel`` themselves are unchanged.

    Examples
    --------
    >>> at_relevance_level("map", 2), at_relevance_level("P_10", 2), at_relevance_level("ndcg@10", 2)
    ('AP(rel=2)', 'P(rel=2)@10', 'ndcg@10')
    """
    import ir_measures

    if level == 1 or name.strip() in ("pnr", "pnr_macro"):
        return name
    measure = ir_measures.parse_measure(resolve(name).expression)
    if "rel" in measure.SUPPORTED_PARAMS and "rel" not in measure.params:
        return str(measure(rel=level))
    return name


def split_names(text: str) -> list[str]:
    """Split a comma list, keeping commas inside parentheses (``AP(rel=2,judged_only)``)."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += ch
    names.append(current.strip())
    if not all(names):
        raise RerankError(f"--metrics: expected comma-separated measure names, got {text!r}")
    return names


def _parse(expression: str):
    import ir_measures

    try:
        return ir_measures.parse_measure(expression)
    except (NameError, ValueError, SyntaxError, AssertionError, TypeError, AttributeError):
        return None


def _fast_spec(measure) -> FastSpec | None:
    """The kernel spec of an ir-measures measure, if its parameters are ones we compute."""
    params = dict(measure.params)
    cutoff = params.pop("cutoff", None) or 0
    kind = {"nDCG": "ndcg", "AP": "ap", "RR": "rr", "P": "p", "R": "r", "ERR": "err"}.get(
        measure.NAME
    )
    if kind is None:
        return None
    if kind == "ndcg":
        # pytrec_eval's default nDCG: linear gains (the label), log2 discount
        if params.get("dcg", "log2") != "log2" or params.get("gains") is not None:
            return None
        params.pop("dcg", None)
        params.pop("gains", None)
    if params.pop("judged_only", False):
        return None
    rel = params.pop("rel", 1)
    if params or not isinstance(rel, int) or isinstance(rel, bool):
        return None
    if kind in ("p", "r", "err") and not cutoff:
        return None
    if kind == "err" and rel != 1:
        return None
    return FastSpec(kind, int(cutoff), rel)
