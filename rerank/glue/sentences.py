"""Rekindle-NLU data: unlabeled sentence pairs from any document collection.

The paper builds the unlabeled data for its GLUE experiments from Wikipedia by pairing
sentences of the same document. This module does the same for any collection
(``doc_id, title, summary``): each document is split into sentences, and

1. every two *adjacent* sentences form a pair (``s_i, s_i+1``), and
2. ``random_pairs`` more pairs per document join two non-adjacent sentences
   ``s_i, s_j`` (``i < j - 1``) drawn with ``numpy.random.default_rng(seed)``,

always in document order. ``max_pairs`` keeps a seeded subsample (in output order). The
same input and seed give the same file.

Sentence splitting is a heuristic for the collections at hand: a boundary is
``.``, ``!`` or ``?`` followed by white space, where the mark stands alone (tokenised
text such as Cranfield's ``... of the wing . the results ...``) or the next word starts
with a capital, digit or quote and the word before the mark is not a short abbreviation
(``Mr.``, ``U.S.``). Fragments under ``min_words`` words join their neighbour; sentences
over ``max_words`` words, and text without punctuation (NFCorpus's pre-processed
abstracts), are cut into near-equal windows of at most ``max_words`` words. A non-empty
title is the document's first sentence.

The output has the rekindle columns ``query_id, doc_id, query, title, summary``:
``query`` is the first sentence, ``summary`` the second, ``title`` is empty;
``query_id``/``doc_id`` are ``<doc_id>:<sentence index>``. A single-sentence task
(CoLA, SST-2) reads only ``query``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl

from rerank.errors import RerankError
from rerank.tables.columns import PAIRS

__all__ = ["sentence_pairs", "split_sentences"]

_CANDIDATE = re.compile(r"[.!?]+\s+")
_OPENS_SENTENCE = re.compile(r"[A-Z0-9\"'(\[]")


def split_sentences(text: str, *, min_words: int = 4, max_words: int = 40) -> list[str]:
    """Split ``text`` into sentences of ``min_words``..``max_words`` words (see module doc).

    Examples
    --------
    >>> split_sentences("the wing stalls early . the tail was moved back . it flew .")
    ['the wing stalls early .', 'the tail was moved back . it flew .']
    >>> split_sentences("Mr. Smith met us. The U.S. team won 3 games.", min_words=1)
    ['Mr. Smith met us.', 'The U.S. team won 3 games.']
    """
    if min_words < 1 or max_words < min_words:
        raise RerankError(
            f"split_sentences: need 1 <= min_words <= max_words, got {min_words}, {max_words}"
        )
    text = " ".join(text.split())
    pieces: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        end = match.end()
        if end >= len(text) or not _is_boundary(text, match.start(), end):
            continue
        pieces.append(text[start:end].strip())
        start = end
    if start < len(text):
        pieces.append(text[start:].strip())
    words = [p.split() for p in pieces if p]
    merged: list[list[str]] = []
    for w in words:
        if merged and (len(w) < min_words or len(merged[-1]) < min_words):
            merged[-1] = merged[-1] + w
        else:
            merged.append(w)
    out: list[str] = []
    for w in merged:
        n_windows = math.ceil(len(w) / max_words)
        size = math.ceil(len(w) / n_windows)
        out.extend(" ".join(w[k : k + size]) for k in range(0, len(w), size))
    return out


def _is_boundary(text: str, mark: int, next_start: int) -> bool:
    if mark == 0 or text[mark - 1] == " ":
        return True  # a free-standing mark: tokenised text
    if not _OPENS_SENTENCE.match(text[next_start]):
        return False
    word = text[:mark].rsplit(" ", 1)[-1]
    # "Mr.", "Dr.", "U.S.", "e.g." are not sentence ends
    return not (len(word) <= 3 and word[:1].isupper()) and "." not in word


def sentence_pairs(
    docs: pl.DataFrame,
    *,
    random_pairs: int = 1,
    max_pairs: int | None = None,
    seed: int = 0,
    min_words: int = 4,
    max_words: int = 40,
) -> pl.DataFrame:
    """Pair sentences of the same document (adjacent + ``random_pairs`` random per document).

    Parameters
    ----------
    docs
        ``doc_id, title, summary`` (as :func:`rerank.data.read_documents` returns).
    random_pairs
        Extra non-adjacent pairs per document (fewer when the document has too few).
    max_pairs
        Keep a seeded subsample of this many pairs (in output order).
    seed
        Seed of the random pairs and of the subsample.
    min_words, max_words
        Sentence length bounds (see :func:`split_sentences`).

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary``; documents in input order.

    Examples
    --------
    >>> docs = pl.DataFrame({"doc_id": ["d"], "title": ["lift of a thin wing ."],
    ...     "summary": ["we measured the lift . the lift was small . theory agrees with it ."]})
    >>> sentence_pairs(docs, random_pairs=0, min_words=3).select("query_id", "doc_id").rows()
    [('d:0', 'd:1'), ('d:1', 'd:2'), ('d:2', 'd:3')]
    """
    for column in ("doc_id", "title", "summary"):
        if column not in docs.columns:
            raise RerankError(f"sentence_pairs: documents need column '{column}'")
    if random_pairs < 0:
        raise RerankError(f"sentence_pairs: random_pairs must be >= 0, got {random_pairs}")
    rng = np.random.default_rng(seed)
    rows: dict[str, list[str]] = {c: [] for c in ("query_id", "doc_id", "query", "summary")}

    def add(doc: str, sentences: list[str], i: int, j: int) -> None:
        rows["query_id"].append(f"{doc}:{i}")
        rows["doc_id"].append(f"{doc}:{j}")
        rows["query"].append(sentences[i])
        rows["summary"].append(sentences[j])

    for doc, title, summary in docs.select("doc_id", "title", "summary").iter_rows():
        text = summary or ""
        sentences = split_sentences(text, min_words=min_words, max_words=max_words)
        if title and title.strip():
            sentences = [" ".join(title.split()), *sentences]
        n = len(sentences)
        for i in range(n - 1):
            add(str(doc), sentences, i, i + 1)
        far = [(i, j) for i in range(n) for j in range(i + 2, n)]
        if far and random_pairs:
            picks = rng.choice(len(far), size=min(random_pairs, len(far)), replace=False)
            for k in sorted(picks):
                add(str(doc), sentences, *far[k])
    frame = pl.DataFrame(rows, schema=dict.fromkeys(rows, pl.String))
    frame = frame.with_columns(title=pl.lit("", dtype=pl.String)).select(PAIRS)
    if max_pairs is not None and frame.height > max_pairs:
        keep = np.sort(rng.choice(frame.height, size=max_pairs, replace=False))
        frame = frame[keep.tolist()]
    return frame
