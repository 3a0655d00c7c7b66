"""Unlabeled (query, document) pairs by BM25 retrieval: the work of ``rerank pairs``.

Knowledge rekindle needs many unlabeled pairs for the teacher to score. They come
from pairing a query log with a document collection through a first-stage
retriever, as in production re-ranking: every query gets its BM25 top-``k``
documents (:mod:`rerank.retrieval`). The result has the query-grouped columns
``query_id, doc_id, query, title, summary`` (no label).

Inputs are read by extension (``.tsv``, ``.jsonl``, ``.parquet``; ``.tsv.gz`` and
``.jsonl.gz`` too):

- queries: ``query_id`` and ``query`` (``qid`` and ``text`` are accepted as
  aliases); a TSV without a header line and two fields per line is read as
  ``query_id<TAB>query`` (the MS MARCO topics layout).
- documents: ``doc_id``, ``title`` and ``summary`` (``abstract`` or ``text`` as
  aliases of ``summary``; a missing ``title`` means empty titles, for collections
  whose title is merged into the text); a headerless two-field TSV is read as
  ``doc_id<TAB>summary`` (the NFCorpus and MS MARCO collection layout).
- judged pairs to exclude: a TREC qrels file (``.qrels``/``.qrel``, or a TSV with
  four fields and no header: ``query_id 0 doc_id label``) or any table with
  ``query_id`` and ``doc_id``.

``.csv`` (a header line, standard double-quote quoting) works for every table here.

The same readers turn data as other tools ship it into rerank's query-grouped tables:
:func:`labeled_pairs` (TREC qrels + queries + corpus -> labeled lists),
:func:`run_pairs` (a first-stage TREC run + queries + corpus -> the pairs to re-rank),
and :func:`read_training_jsonl` (sentence-transformers / FlagEmbedding training JSONL).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import polars as pl

from rerank._data_io import BOM, damaged_gzip
from rerank.errors import RerankError, input_error
from rerank.retrieval import DEFAULT_B, DEFAULT_K1, Bm25Index

__all__ = [
    "TEACHER_SCORES",
    "build_pairs",
    "labeled_pairs",
    "read_documents",
    "read_judged",
    "read_queries",
    "read_training_jsonl",
    "run_pairs",
    "write_pairs",
]

PAIR_COLUMNS = ("query_id", "doc_id", "query", "title", "summary")

#: The target column of the teacher scores in a training JSONL (``pos_scores``/``neg_scores``).
TEACHER_SCORES = "teacher:scores"

_QUERY_ALIASES = {"query_id": ("query_id", "qid"), "query": ("query", "text")}
_DOC_ALIASES = {"doc_id": ("doc_id", "docid"), "summary": ("summary", "abstract", "text")}


def read_queries(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read queries into ``query_id, query`` (strings; null text becomes ``""``).

    Raises :class:`RerankError` naming file, row and column for a missing column,
    a missing ``query_id`` or a ``query_id`` seen twice.
    """
    frame, offset = _read_table(path, headerless=("query_id", "query"), header_words=("query",))
    frame = _rename(frame, _QUERY_ALIASES, path)
    frame = frame.select(pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String))
    _check_ids(frame, "query_id", path, offset)
    return frame.with_columns(pl.col("query").fill_null(""))


def read_documents(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read documents into ``doc_id, title, summary`` (strings; nulls become ``""``).

    Same checks as :func:`read_queries`, for ``doc_id``.
    """
    frame, offset = _read_table(path, headerless=("doc_id", "summary"), header_words=("title",))
    frame = _rename(frame, _DOC_ALIASES, path)
    if "title" not in frame.columns:
        frame = frame.with_columns(title=pl.lit(""))
    frame = frame.select(
        pl.col("doc_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.col("summary").cast(pl.String).fill_null(""),
    )
    _check_ids(frame, "doc_id", path, offset)
    return frame


def read_judged(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read judged pairs (TREC qrels or a table) into ``query_id, doc_id``."""
    name = Path(path).name.lower()
    trec = ("query_id", "iteration", "doc_id", "label")
    if name.endswith((".qrels", ".qrel", ".qrels.gz", ".qrel.gz")):
        frame, _ = _read_table(path, headerless=trec, force_headerless=True)
    else:
        frame, _ = _read_table(path, headerless=trec, header_words=("doc_id",))
    missing = [c for c in ("query_id", "doc_id") if c not in frame.columns]
    if missing:
        raise input_error(path, f"expected columns query_id and doc_id; have {frame.columns}")
    return frame.select(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String))


def build_pairs(
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    k: int,
    exclude: pl.DataFrame | None = None,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
    show_progress: bool | None = None,
    scores: bool = False,
) -> pl.DataFrame:
    """Pair every query with its BM25 top-``k`` documents.

    Parameters
    ----------
    queries
        ``query_id, query``.
    docs
        ``doc_id, title, summary``; the index is built over ``title + " " + summary``.
    k
        Documents per query (fewer when fewer documents share a term with the query).
    exclude
        ``query_id, doc_id`` pairs never to emit (e.g. already judged); the query
        then gets the next-best documents.
    k1, b
        BM25 parameters.
    show_progress
        Progress bar on stderr; ``None``: from 1,000 queries on.
    scores
        Add the BM25 ``score`` column (to write the retrieval as a TREC run).

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary`` (and ``score``), queries in input
        order, each query's documents in BM25 rank order.

    Examples
    --------
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["wing", "jet"],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> queries = pl.DataFrame({"query_id": ["q1"], "query": ["noisy jets"]})
    >>> build_pairs(queries, docs, k=5).rows()
    [('q1', 'b', 'noisy jets', 'jet', 'jet noise')]
    """
    index = Bm25Index.build(docs, k1=k1, b=b)
    run = index.retrieve(queries, k, exclude=exclude, show_progress=show_progress)
    texts = queries.select(pl.col("query_id").cast(pl.String), pl.col("query").cast(pl.String))
    fields = docs.select(
        pl.col("doc_id").cast(pl.String),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.col("summary").cast(pl.String).fill_null(""),
    )
    return (
        run.join(texts, on="query_id", how="left", maintain_order="left")
        .join(fields, on="doc_id", how="left", maintain_order="left")
        .select(*PAIR_COLUMNS, *(["score"] if scores else []))
    )


def labeled_pairs(
    qrels: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    qrels_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Labeled query lists from judgments and texts (TREC qrels + queries + corpus).

    Parameters
    ----------
    qrels
        ``query_id, doc_id, label`` (e.g. :func:`rerank.data.read_qrels`).
    queries, docs
        From :func:`read_queries` and :func:`read_documents`.
    qrels_path
        The judgments' file, to name it in errors.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary, label`` in qrels order: the
        query-grouped table ``rerank train`` and ``rerank evaluate`` read. A judged
        query or document missing from the texts is an error.

    Examples
    --------
    >>> qrels = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["a", "b"], "label": [2, 0]})
    >>> queries = pl.DataFrame({"query_id": ["1"], "query": ["wing lift"]})
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["", ""],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> labeled_pairs(qrels, queries, docs).rows()[0]
    ('1', 'a', 'wing lift', '', 'lift of a wing', 2)
    """
    frame = _with_texts(qrels, queries, docs, qrels_path, "judgments")
    return frame.select(*PAIR_COLUMNS, pl.col("label").cast(pl.Int64))


def run_pairs(
    run: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    *,
    depth: int | None = None,
    run_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """The pairs to re-rank from a first-stage run: each query's top ``depth`` documents.

    Parameters
    ----------
    run
        ``query_id, doc_id, score`` (e.g. :func:`rerank.data.read_scores` of a TREC run).
    queries, docs
        From :func:`read_queries` and :func:`read_documents`.
    depth
        Documents kept per query, best first stage score first; ``None``: all.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary``, queries in run order, each
        query's documents in first-stage rank order (ties: file order).

    Examples
    --------
    >>> run = pl.DataFrame({"query_id": ["1", "1"], "doc_id": ["b", "a"],
    ...                     "score": [1.0, 2.0]})
    >>> queries = pl.DataFrame({"query_id": ["1"], "query": ["wing lift"]})
    >>> docs = pl.DataFrame({"doc_id": ["a", "b"], "title": ["", ""],
    ...                      "summary": ["lift of a wing", "jet noise"]})
    >>> run_pairs(run, queries, docs, depth=1).rows()
    [('1', 'a', 'wing lift', '', 'lift of a wing')]
    """
    if depth is not None and depth < 1:
        raise RerankError(f"depth: expected a positive integer, got {depth}")
    first = pl.col("_i").min().over("query_id")
    ranked = (
        run.select(
            pl.col("query_id").cast(pl.String),
            pl.col("doc_id").cast(pl.String),
            pl.col("score").cast(pl.Float64),
        )
        .with_row_index("_i")
        .sort([first, pl.col("score")], descending=[False, True], maintain_order=True)
    )
    if depth is not None:
        ranked = ranked.filter(pl.int_range(pl.len()).over("query_id") < depth)
    return _with_texts(ranked, queries, docs, run_path, "run").select(PAIR_COLUMNS)


def _with_texts(
    pairs: pl.DataFrame,
    queries: pl.DataFrame,
    docs: pl.DataFrame,
    path: str | os.PathLike[str] | None,
    what: str,
) -> pl.DataFrame:
    """``pairs`` (query_id, doc_id, ...) joined with query and document texts, in order."""
    frame = (
        pairs.with_columns(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String))
        .join(
            queries.select(pl.col("query_id").cast(pl.String), "query"),
            on="query_id",
            how="left",
            maintain_order="left",
        )
        .join(
            docs.select(pl.col("doc_id").cast(pl.String), "title", "summary"),
            on="doc_id",
            how="left",
            maintain_order="left",
        )
    )
    for column, id_column, texts in (
        ("query", "query_id", "queries"),
        ("title", "doc_id", "corpus"),
    ):
        missing = frame.get_column(column).is_null()
        if missing.any():
            n = frame.filter(missing).get_column(id_column).n_unique()
            example = frame[int(missing.arg_max() or 0), id_column]
            raise input_error(
                path,
                f"{n} {id_column}(s) of the {what} are not in the {texts}; the first is "
                f"{example!r}",
            )
    return frame


def read_training_jsonl(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read sentence-transformers / FlagEmbedding training JSONL as labeled query lists.

    Each line holds ``query`` (a string), ``pos`` or ``positive`` and ``neg`` or
    ``negative``/``negatives`` (a string or a list of strings), and optionally
    ``pos_scores``/``neg_scores`` (one number per document: teacher scores). Other keys
    (``prompt``, ``type``...) are ignored. ``.jsonl.gz`` works too.

    Returns
    -------
    polars.DataFrame
        ``query_id, doc_id, query, title, summary, label``: one row per document, label 1
        for a positive and 0 for a negative, the document text as ``summary`` (empty
        title). ``query_id`` is the line number (``"1"``, ``"2"``...), ``doc_id``
        ``"<line>-p<k>"``/``"<line>-n<k>"``. With scores, a Float64 column
        :data:`TEACHER_SCORES` (``"teacher:scores"``): a distillation target
        (``[[objective]] target = "teacher:scores"``).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
    >>> _ = path.write_text('{"query": "wing lift", "pos": ["lift of a wing"], '
    ...                     '"neg": ["jet noise"], "pos_scores": [0.9], "neg_scores": [0.1]}\\n')
    >>> read_training_jsonl(path).rows()
    [('1', '1-p1', 'wing lift', '', 'lift of a wing', 1, 0.9), ('1', '1-n1', 'wing lift', '', 'jet noise', 0, 0.1)]
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise input_error(path, "no such file")
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    rows: list[tuple] = []
    with_scores: bool | None = None
    try:
        with opener(p, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except ValueError as err:
                    msg = err.msg if isinstance(err, json.JSONDecodeError) else "expected UTF-8"
                    raise input_error(path, f"expected a JSON object: {msg}", row=number) from None
                found = _training_rows(item, path, number)
                has = found[0]
                if with_scores is None:
                    with_scores = has
                elif has != with_scores:
                    raise input_error(
                        path,
                        "pos_scores/neg_scores on some lines but not on others",
                        row=number,
                    )
                rows.extend(found[1])
    except (OSError, EOFError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise input_error(path, f"cannot read: {first}") from None
    if not rows:
        raise input_error(path, "empty file: expected one JSON object per line")
    columns = [*PAIR_COLUMNS, "label", TEACHER_SCORES]
    schema = dict(zip(columns, [pl.String] * 5 + [pl.Int64, pl.Float64], strict=True))
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame if with_scores else frame.drop(TEACHER_SCORES)


def _training_rows(item: object, path: str | os.PathLike[str], number: int) -> tuple[bool, list]:
    if not isinstance(item, dict):
        raise input_error(path, "expected a JSON object", row=number)
    query = item.get("query")
    if not isinstance(query, str) or not query.strip():
        raise input_error(path, f"expected a non-empty query text, got {query!r}", row=number)
    keys = {"pos": ("pos", "positive"), "neg": ("neg", "negative", "negatives")}
    texts: dict[str, list] = {}
    for side, names in keys.items():
        name = next((n for n in names if n in item), None)
        value = item.get(name) if name else []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise input_error(
                path, "expected a text or a list of texts", row=number, column=name or side
            )
        texts[side] = value
    if not texts["pos"] and not texts["neg"]:
        expected = "'pos' (or 'positive') and 'neg' (or 'neg'/'negatives')"
        raise input_error(path, f"no documents: expected {expected}", row=number)
    has_scores = "pos_scores" in item or "neg_scores" in item
    scores: dict[str, list] = {}
    for side in ("pos", "neg"):
        key = f"{side}_scores"
        value = item.get(key, [] if not texts[side] else None) if has_scores else None
        if has_scores:
            ok = isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
            if not ok or len(value) != len(texts[side]):
                raise input_error(
                    path,
                    f"expected {len(texts[side])} number(s), one per '{side}' text",
                    row=number,
                    column=key,
                )
        scores[side] = value if has_scores else [None] * len(texts[side])
    qid = str(number)
    rows = [
        (qid, f"{qid}-{side[0]}{k}", query, "", text, int(side == "pos"), score)
        for side in ("pos", "neg")
        for k, (text, score) in enumerate(zip(texts[side], scores[side], strict=True), start=1)
    ]
    return has_scores, rows


def write_pairs(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a pairs table atomically, format by extension (see :func:`rerank.data.write_table`)."""
    from rerank.data import write_table

    write_table(frame, path)


# --- reading -------------------------------------------------------------------------------


def _read_table(
    path: str | os.PathLike[str],
    *,
    headerless: tuple[str, ...] | None = None,
    header_words: tuple[str, ...] = (),
    force_headerless: bool = False,
) -> tuple[pl.DataFrame, int]:
    """Read a table by extension; return it and the file line of its first row (0: Parquet).

    A TSV is read without a header when ``force_headerless``, or when ``headerless``
    names its columns, its first line has that many fields and none of them is a
    known column name (``header_words`` or the alias lists).
    """
    p = Path(path)
    name = p.name.lower()
    if not p.is_file():
        raise input_error(path, "is a directory, not a file" if p.is_dir() else "no such file")
    stem = name[:-3] if name.endswith(".gz") else name
    raw: bytes | None = None
    try:
        if stem.endswith(".parquet"):
            return pl.read_parquet(p), 0
        with damaged_gzip(path):
            raw = gzip.decompress(p.read_bytes()) if name.endswith(".gz") else p.read_bytes()
        raw = raw.removeprefix(BOM)  # a UTF-8 byte-order mark is not part of the first field
        if stem.endswith(".jsonl"):
            if not raw.strip():
                raise input_error(path, "the file is empty")
            return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None), 1
        if stem.endswith(".csv"):
            if not raw.strip():
                raise input_error(path, "the file is empty")
            return pl.read_csv(io.BytesIO(raw), infer_schema=False), 2
        if stem.endswith((".tsv", ".qrels", ".qrel", ".txt")):
            return _read_tsv(raw, path, headerless, header_words, force_headerless)
    except RerankError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        _locate_bad_utf8(path, raw)  # polars says only "invalid utf-8 sequence"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise input_error(path, f"cannot read {stem.rsplit('.', 1)[-1]}: {first}") from None
    raise input_error(path, "unknown format; use .tsv, .csv, .jsonl or .parquet (optionally .gz)")


def _locate_bad_utf8(path: str | os.PathLike[str], raw: bytes | None) -> None:
    """Raise a located error if raw is not UTF-8 (only on the error path: it decodes all)."""
    if raw is None:
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = raw[: bad.start].count(b"\n") + 1
        raise input_error(
            path, f"expected UTF-8 text, got byte {raw[bad.start]:#04x}", row=line
        ) from None


def _read_tsv(
    raw: bytes,
    path: str | os.PathLike[str],
    headerless: tuple[str, ...] | None,
    header_words: tuple[str, ...],
    force_headerless: bool,
) -> tuple[pl.DataFrame, int]:
    first_line = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if not first_line.strip():
        raise input_error(path, "the file is empty", row=1)
    fields = first_line.split("\t")
    known = set(header_words) | {
        a for v in (*_QUERY_ALIASES.values(), *_DOC_ALIASES.values()) for a in v
    }
    known |= {"query_id", "doc_id"}
    no_header = headerless is not None and (
        force_headerless or (len(fields) == len(headerless) and not known & set(fields))
    )
    twice = next((f for i, f in enumerate(fields) if f in fields[:i]), None)
    if twice is not None and not no_header:  # polars would rename it and read the first
        raise input_error(path, f"column {twice!r} appears twice in the header", row=1)
    if force_headerless:
        # TREC qrels may be separated by spaces as well as tabs
        lines = raw.decode("utf-8").splitlines()
        rows = [line.split() for line in lines if line.strip()]
        for i, row in enumerate(rows):
            if len(row) != len(headerless or ()):
                raise input_error(
                    path, f"expected {len(headerless or ())} fields, got {len(row)}", row=i + 1
                )
        return pl.DataFrame(rows, schema=list(headerless or ()), orient="row"), 1
    frame = pl.read_csv(
        io.BytesIO(raw),
        separator="\t",
        has_header=not no_header,
        new_columns=list(headerless) if no_header and headerless else None,
        quote_char=None,
        infer_schema=False,
    )
    return frame, 1 if no_header else 2


def _rename(
    frame: pl.DataFrame,
    aliases: dict[str, tuple[str, ...]],
    path: str | os.PathLike[str],
) -> pl.DataFrame:
    renames = {}
    for column, names in aliases.items():
        found = next((n for n in names if n in frame.columns), None)
        if found is None:
            accepted = " or ".join(repr(n) for n in names)
            raise input_error(path, f"missing column {accepted}; have {frame.columns}")
        renames[found] = column
    return frame.rename({k: v for k, v in renames.items() if k != v})


def _check_ids(frame: pl.DataFrame, column: str, path: str | os.PathLike[str], offset: int) -> None:
    if frame.height == 0:
        raise input_error(path, "no rows")
    ids = frame.get_column(column)
    bad = ids.is_null() | (ids.str.strip_chars() == "")
    if bad.any():
        at = int(bad.arg_max() or 0)
        raise input_error(path, "expected a non-empty id", row=_row(at, offset), column=column)
    duplicated = ids.is_duplicated() & ~ids.is_first_distinct()
    if duplicated.any():
        at = int(duplicated.arg_max() or 0)
        raise input_error(
            path, f"{ids[at]!r} occurs more than once", row=_row(at, offset), column=column
        )


def _row(index: int, offset: int) -> int:
    """File line (TSV, JSONL) or 1-based row number (Parquet, offset 0) of row ``index``."""
    return index + (offset if offset else 1)
