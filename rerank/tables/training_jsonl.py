"""sentence-transformers / FlagEmbedding training JSONL as rerank's labeled query lists."""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import polars as pl

from rerank.errors import first_line, input_error
from rerank.tables.columns import PAIRS, teacher_column

__all__ = ["TEACHER_SCORES", "read_training_jsonl"]

#: The target column of the teacher scores in a training JSONL (``pos_scores``/``neg_scores``).
TEACHER_SCORES = teacher_column("scores")


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
        first = first_line(err)
        raise input_error(path, f"cannot read: {first}") from None
    if not rows:
        raise input_error(path, "empty file: expected one JSON object per line")
    columns = [*PAIRS, "label", TEACHER_SCORES]
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
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value
            )
            if not ok or len(value) != len(texts[side]):
                raise input_error(
                    path,
                    f"expected {len(texts[side])} finite number(s), one per '{side}' text",
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
