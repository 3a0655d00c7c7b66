"""BM25 first-stage retrieval: candidate lists and rekindle pairs.

A :class:`Bm25Index` is built over the documents of a collection (``title + " " +
summary``) and answers two questions: which documents does BM25 rank highest for a
query (:meth:`Bm25Index.retrieve`), and what BM25 score does a given (query, doc)
pair get (:meth:`Bm25Index.score_pairs`, :meth:`Bm25Index.score_frame`). Both go
through the same scoring code, so a candidate's score in a run file is the score
it was retrieved with.

Text analysis follows bm25s' defaults: lower-casing, tokens of two or more word
characters (``(?u)\\b\\w\\w+\\b``), bm25s' English stop-word list, then the
Snowball English (Porter2) stemmer from PyStemmer. Term weights are bm25s'
``method="lucene"`` BM25 (Kamphuis et al., ECIR 2020):

    score(q, d) = sum over query terms t of idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))

with bm25s' defaults ``k1=1.5``, ``b=0.75``. A query term that occurs twice counts
twice (as in bm25s and Lucene). Weights are float32 (bm25s); a query's scores are
summed in float64 in query-term order, so they are reproducible bit for bit.

Ranking is deterministic: higher score first, ties broken by ``doc_id`` in string
order. Documents that share no term with the query (score 0) are never retrieved,
so a query can get fewer than ``k`` candidates.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from rerank.errors import RerankError

__all__ = ["DEFAULT_B", "DEFAULT_K1", "Analyzer", "Bm25Index"]

DEFAULT_K1 = 1.5
"""BM25 term-frequency saturation (bm25s default)."""
DEFAULT_B = 0.75
"""BM25 length normalisation (bm25s default)."""

# The progress bar appears by itself from this many queries on.
_PROGRESS_FROM = 1000


class Analyzer:
    """Text to index terms: lower-case, split, drop English stop words, stem.

    Matches ``bm25s.tokenize(..., stopwords="en", stemmer=Stemmer("english"))``
    term for term, but keeps terms as strings so the vocabulary order (and hence
    every result) does not depend on Python's string hashing.

    Examples
    --------
    >>> Analyzer()("The wings of an aircraft, flying")
    ['wing', 'aircraft', 'fli']
    """

    _pattern = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self) -> None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self._stopwords = frozenset(STOPWORDS_EN)
        self._stemmer = Stemmer.Stemmer("english")
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self._pattern.findall(text.lower()) if w not in self._stopwords]
        cache = self._cache
        unseen = [w for w in set(words) if w not in cache]
        if unseen:
            cache.update(zip(unseen, self._stemmer.stemWords(unseen), strict=True))
        return [cache[w] for w in words]


class Bm25Index:
    """A BM25 index over a document collection.

    Build it with :meth:`build`; the constructor is internal.

    Parameters
    ----------
    doc_ids
        Document ids, in index order.
    vocabulary
        Term -> row of the weight matrix.
    indptr, indices, weights
        The term x document BM25 weight matrix in CSR form: term ``t`` occurs in
        documents ``indices[indptr[t]:indptr[t+1]]`` with those ``weights``.
    k1, b
        The BM25 parameters the weights were computed with.
    analyzer
        The text analysis used for documents; queries must use the same.
    """

    def __init__(
        self,
        doc_ids: Sequence[str],
        vocabulary: Mapping[str, int],
        indptr: np.ndarray,
        indices: np.ndarray,
        weights: np.ndarray,
        *,
        k1: float,
        b: float,
        analyzer: Analyzer,
    ) -> None:
        self.doc_ids = pl.Series("doc_id", list(doc_ids), dtype=pl.String)
        self.k1 = k1
        self.b = b
        self._vocabulary = dict(vocabulary)
        self._indptr = indptr
        self._indices = indices
        self._weights = weights
        self._analyzer = analyzer
        self._position = {d: i for i, d in enumerate(self.doc_ids.to_list())}
        # tie-break key: position of each doc_id in string order
        self._tie_rank = np.empty(len(self.doc_ids), dtype=np.int64)
        self._tie_rank[
            np.argsort(np.array(self.doc_ids.to_list(), dtype=object), kind="stable")
        ] = np.arange(len(self.doc_ids))

    @classmethod
    def build(
        cls,
        docs: pl.DataFrame,
        *,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> Bm25Index:
        """Index the documents of ``docs`` (columns ``doc_id``, ``title``, ``summary``).

        Each document is indexed as ``title + " " + summary``; null fields count as
        empty. An empty document is kept (it scores 0 for every query).

        Parameters
        ----------
        docs
            One row per document; ``doc_id`` must be unique.
        k1, b
            BM25 parameters (defaults: bm25s', ``k1=1.5``, ``b=0.75``).

        Examples
        --------
        >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["wing", "jet"],
        ...                      "summary": ["lift of a wing", "jet noise"]})
        >>> queries = pl.DataFrame({"query_id": ["q1"], "query": ["wing lift"]})
        >>> run = Bm25Index.build(docs).retrieve(queries, k=5)
        >>> run.with_columns(pl.col("score").round(4)).rows()
        [('q1', 'a', 0.6733, 1)]
        """
        import bm25s

        from rerank.tables.checks import first_repeat

        missing = [c for c in ("doc_id", "title", "summary") if c not in docs.columns]
        if missing:
            raise RerankError(f"documents: missing column(s) {missing}; have {docs.columns}")
        if docs.height == 0:
            raise RerankError("documents: the collection is empty")
        doc_ids = docs.get_column("doc_id").cast(pl.String)
        if doc_ids.null_count():
            raise RerankError("documents: 'doc_id' has null values")
        at = first_repeat(doc_ids.to_frame(), ["doc_id"])
        if at is not None:
            raise RerankError(f"documents: doc_id {doc_ids[at]!r} occurs more than once")
        texts = docs.select(
            pl.concat_str(
                pl.col("title").cast(pl.String).fill_null(""),
                pl.col("summary").cast(pl.String).fill_null(""),
                separator=" ",
            )
        ).to_series()

        analyzer = Analyzer()
        vocabulary: dict[str, int] = {}
        token_ids = [
            [vocabulary.setdefault(t, len(vocabulary)) for t in analyzer(text)] for text in texts
        ]
        if not vocabulary:
            raise RerankError("documents: no indexable term in any title or summary")
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        index = model.build_index_from_ids(
            unique_token_ids=list(range(len(vocabulary))),
            corpus_token_ids=token_ids,
            show_progress=False,
        )
        return cls(
            doc_ids.to_list(),
            vocabulary,
            np.asarray(index["indptr"], dtype=np.int64),
            np.asarray(index["indices"], dtype=np.int64),
            np.asarray(index["data"], dtype=np.float32),
            k1=k1,
            b=b,
            analyzer=analyzer,
        )

    def __len__(self) -> int:
        return len(self.doc_ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query``, in index order (float64)."""
        rows = [self._vocabulary[t] for t in self._analyzer(query) if t in self._vocabulary]
        if not rows:
            return np.zeros(len(self), dtype=np.float64)
        starts, ends = self._indptr[rows], self._indptr[np.asarray(rows) + 1]
        idx = np.concatenate([self._indices[s:e] for s, e in zip(starts, ends, strict=True)])
        w = np.concatenate([self._weights[s:e] for s, e in zip(starts, ends, strict=True)])
        return np.bincount(idx, weights=w.astype(np.float64), minlength=len(self))

    def top_k(
        self, query: str, k: int, *, skip: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the ``k`` best documents for ``query``.

        Sorted by score (descending), ties by ``doc_id``; documents with score 0
        and the positions in ``skip`` are left out, so fewer than ``k`` may come back.
        """
        s = self.scores(query)
        if skip is not None and len(skip):
            s[skip] = 0.0
        candidates = np.flatnonzero(s > 0)
        if len(candidates) > k:
            cut = len(candidates) - k
            kth = np.partition(s[candidates], cut)[cut]
            candidates = candidates[s[candidates] >= kth]
        order = np.lexsort((self._tie_rank[candidates], -s[candidates]))[:k]
        chosen = candidates[order]
        return chosen, s[chosen]

    def retrieve(
        self,
        queries: pl.DataFrame,
        k: int,
        *,
        exclude: pl.DataFrame | None = None,
        show_progress: bool | None = None,
    ) -> pl.DataFrame:
        """The top-``k`` documents of every query.

        Parameters
        ----------
        queries
            Columns ``query_id``, ``query``; one row per query.
        k
            Candidates per query (at most; see :meth:`top_k`).
        exclude
            Optional ``query_id``, ``doc_id`` pairs never to return (e.g. judged
            pairs); the query then gets the next-best documents instead. Doc ids
            not in the index are ignored.
        show_progress
            tqdm bar on stderr (rate and ETA); ``None``: from 1,000 queries on.

        Returns
        -------
        polars.DataFrame
            ``query_id, doc_id, score, rank`` (rank 1-based), queries in input
            order, each sorted by rank.
        """
        if k < 1:
            raise RerankError(f"k must be a positive integer, got {k}")
        missing = [c for c in ("query_id", "query") if c not in queries.columns]
        if missing:
            raise RerankError(f"queries: missing column(s) {missing}; have {queries.columns}")
        query_ids = queries.get_column("query_id").cast(pl.String).to_list()
        texts = queries.get_column("query").cast(pl.String).fill_null("").to_list()
        skips = self._positions_by_query(exclude) if exclude is not None else {}
        if show_progress is None:
            show_progress = len(query_ids) >= _PROGRESS_FROM
        positions, scores, counts = [], [], []
        for query_id, text in _progress(
            zip(query_ids, texts, strict=True), len(query_ids), show_progress
        ):
            chosen, s = self.top_k(text, k, skip=skips.get(query_id))
            positions.append(chosen)
            scores.append(s)
            counts.append(len(chosen))
        counts_arr = np.asarray(counts, dtype=np.int64)
        flat = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        return pl.DataFrame(
            {
                "query_id": pl.Series(query_ids, dtype=pl.String).gather(
                    np.repeat(np.arange(len(query_ids)), counts_arr)
                ),
                "doc_id": self.doc_ids.gather(flat),
                "score": pl.Series(
                    np.concatenate(scores) if scores else np.zeros(0), dtype=pl.Float64
                ),
                "rank": pl.Series(
                    np.concatenate([np.arange(1, c + 1) for c in counts_arr])
                    if len(counts_arr)
                    else np.zeros(0, dtype=np.int64),
                    dtype=pl.Int64,
                ),
            }
        )

    def score_pairs(self, query: str, doc_ids: Iterable[str]) -> np.ndarray:
        """BM25 scores of ``doc_ids`` for ``query`` (float64, same order).

        Examples
        --------
        >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["wing", "jet"],
        ...                      "summary": ["lift of a wing", "jet noise"]})
        >>> Bm25Index.build(docs).score_pairs("wing lift", ["b", "a"]).round(4).tolist()
        [0.0, 0.6733]
        """
        return self.scores(query)[self._lookup(doc_ids)]

    def score_frame(self, frame: pl.DataFrame) -> pl.Series:
        """BM25 score of every row of ``frame`` (columns ``query_id, query, doc_id``).

        Each distinct query is scored once. Returns a Float64 series named
        ``score`` aligned with the rows of ``frame``.
        """
        missing = [c for c in ("query_id", "query", "doc_id") if c not in frame.columns]
        if missing:
            raise RerankError(f"missing column(s) {missing}; have {frame.columns}")
        positions = self._lookup(frame.get_column("doc_id").cast(pl.String).to_list())
        out = np.zeros(frame.height, dtype=np.float64)
        rows = frame.select(
            pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String).fill_null("")
        ).with_row_index("_row")
        for (_, text), group in rows.group_by("query_id", "query", maintain_order=True):
            at = group.get_column("_row").to_numpy()
            out[at] = self.scores(str(text))[positions[at]]
        return pl.Series("score", out, dtype=pl.Float64)

    def _lookup(self, doc_ids: Iterable[str]) -> np.ndarray:
        try:
            return np.fromiter((self._position[d] for d in doc_ids), dtype=np.int64)
        except KeyError as err:
            raise RerankError(f"doc_id {err.args[0]!r} is not in the indexed documents") from None

    def _positions_by_query(self, pairs: pl.DataFrame) -> dict[str, np.ndarray]:
        missing = [c for c in ("query_id", "doc_id") if c not in pairs.columns]
        if missing:
            raise RerankError(f"exclusions: missing column(s) {missing}; have {pairs.columns}")
        out: dict[str, list[int]] = {}
        for query_id, doc_id in pairs.select(
            pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String)
        ).iter_rows():
            at = self._position.get(doc_id)
            if at is not None:
                out.setdefault(query_id, []).append(at)
        return {q: np.asarray(v, dtype=np.int64) for q, v in out.items()}

    def run(self, frame: pl.DataFrame, *, order: pl.Expr | str = "query_id") -> pl.DataFrame:
        """BM25's run over the rows of ``frame``: ``query_id, doc_id, score, rank``.

        Queries sorted by ``order`` (e.g. ``pl.col("query_id").cast(pl.Int64)``), each
        ranked by score, ties by ``doc_id``: a shipped ``bm25_<split>.run``.
        """
        run = frame.select("query_id", "doc_id").with_columns(self.score_frame(frame))
        return run.sort(order, "score", "doc_id", descending=[False, True, False]).with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("query_id")
        )


def __getattr__(name: str):
    # judged_pool and title_pairs build pairs: they live in rerank.pairs (which imports
    # this module), and are found here too
    if name in ("judged_pool", "title_pairs"):
        from rerank import pairs

        return getattr(pairs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _progress(items: Iterable, total: int, show: bool) -> Iterable:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="BM25", unit="query", file=sys.stderr, mininterval=0.5)
