"""File access behind :mod:`rerank.data` (private): locate rows, read raw columns.

Tables are read as stored (a TSV as strings only, so that a bad value can be shown
as it was written); :mod:`rerank.tables.checks` then casts and validates them. A
:class:`Source` turns a 0-based data row into a file line for error messages, by
re-reading the file only once an error is certain.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rerank.errors import RerankError, first_line, input_error

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Source:
    """Where rows came from, to name them in errors (``index`` is the 0-based data row).

    ``kind`` is ``"tsv"`` (header on line 1), ``"jsonl"`` or ``"trec"`` (blank lines
    skipped), ``"csv"`` (quoted fields may span lines: ``row N``), ``"parquet"`` or
    ``"frame"`` (an in-memory table: ``row N``).
    """

    name: str | None
    kind: str

    @classmethod
    def of(cls, path: PathLike | None, fallback: str) -> Source:
        """The source of a frame read from ``path`` (``None``: an in-memory ``fallback``)."""
        if path is None:
            return cls(fallback, "frame")
        name = str(path).lower().removesuffix(".gz")
        kinds = (".tsv", "tsv"), (".jsonl", "jsonl"), (".parquet", "parquet"), (".csv", "csv")
        for suffix, kind in kinds:
            if name.endswith(suffix):
                return cls(str(path), kind)
        return cls(str(path), "trec")

    @property
    def label(self) -> str:
        """How to call this source in a message."""
        return self.name if self.kind != "frame" else f"the {self.name} frame"

    def where(self, index: int) -> str:
        """``line N`` or ``row N`` of data row ``index``."""
        if self.kind == "tsv":
            return f"line {index + 2}"
        if self.kind in ("jsonl", "trec"):
            return f"line {self._nonblank_line(index)}"
        return f"row {index + 1}"

    def error(self, index: int, message: str, *, column: str | None = None) -> RerankError:
        """A :class:`RerankError` locating data row ``index`` of this source."""
        if self.kind == "tsv":
            line = index + 2
            problem = self._tsv_field_problem(line)
            if problem:
                return input_error(self.name, problem, row=line)
            return input_error(self.name, message, row=line, column=column)
        if self.kind in ("jsonl", "trec"):
            return input_error(self.name, message, row=self._nonblank_line(index), column=column)
        return input_error(f"{self.name}: row {index + 1}", message, column=column)

    def _nonblank_line(self, index: int) -> int:
        seen = -1
        for number, raw in enumerate(_lines(self.name), start=1):
            seen += bool(raw.strip())
            if seen == index:
                return number
        return index + 1

    def _tsv_field_problem(self, line: int) -> str | None:
        lines = _lines(self.name)
        header = next(lines, b"")
        for number, raw in enumerate(lines, start=2):
            if number == line:
                want, got = header.count(b"\t") + 1, raw.count(b"\t") + 1
                if not raw.strip(b"\r\n"):
                    return (
                        f"expected {want} tab-separated fields as in the header, got an empty line"
                    )
                if got != want:
                    return f"expected {want} tab-separated fields as in the header, got {got}"
                return None
        return None


def _lines(path: PathLike | None) -> Iterator[bytes]:
    """Lines of a (possibly gzipped) file as bytes, split on ``\\n`` only."""
    if path is None:
        return iter(())
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as handle, damaged_gzip(path):
        yield from handle


GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
BOM = b"\xef\xbb\xbf"


@contextlib.contextmanager
def damaged_gzip(path: PathLike | None) -> Iterator[None]:
    """Turn the errors of reading damaged gzip data into a one-line error naming ``path``."""
    try:
        yield
    except GZIP_ERRORS as err:
        what = "truncated" if isinstance(err, EOFError) else "damaged"
        detail = first_line(err)
        raise input_error(path, f"{what} gzip file: {detail}") from None


def gzip_problem(path: PathLike) -> RerankError | None:
    """The error of a ``.gz`` file that does not decompress to its end (``None``: fine)."""
    if not str(path).lower().endswith(".gz"):
        return None
    try:
        with gzip.open(path, "rb") as handle, damaged_gzip(path):
            while handle.read(1 << 20):
                pass
    except RerankError as err:
        return err
    return None


def _head(path: PathLike, size: int) -> bytes:
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as handle, damaged_gzip(path):
        return handle.read(size)


def _require_file(source: Source, expected: str = "a header and data rows") -> None:
    path = Path(source.name or "")
    if not path.exists():
        raise input_error(source.name, "no such file")
    if not path.is_file():
        raise input_error(source.name, "not a file")
    if path.stat().st_size == 0:
        raise input_error(source.name, f"empty file: expected {expected}")


def _scan(source: Source) -> pl.LazyFrame:
    if source.kind == "tsv":
        return pl.scan_csv(
            source.name,
            separator="\t",
            quote_char=None,  # texts contain quotes; TSV here means no quoting at all
            infer_schema=False,  # read strings, then cast: errors can name the row
            empty_string_is_null=False,
        )
    if source.kind == "csv":
        return pl.scan_csv(source.name, infer_schema=False, empty_string_is_null=False)
    if source.kind == "jsonl":
        if source.name and _head(source.name, len(BOM)) == BOM:
            # polars' JSON reader stops at a byte-order mark; TSV and Python skip it
            raw = b"".join(_lines(source.name))[len(BOM) :]
            return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None).lazy()
        return pl.scan_ndjson(source.name, infer_schema_length=None)
    return pl.scan_parquet(source.name)


def _read_failure(source: Source, err: Exception) -> RerankError:
    """Turn a polars read error into a located one-line error."""
    damaged = gzip_problem(source.name or "")
    if damaged is not None:
        return damaged
    if isinstance(err, pl.exceptions.NoDataError):
        return input_error(source.name, "empty file: expected a header and data rows")
    if source.kind == "tsv":
        lines = _lines(source.name)
        want = next(lines, b"").count(b"\t") + 1
        for number, raw in enumerate(lines, start=2):
            got = raw.count(b"\t") + 1
            if got > want:
                return input_error(
                    source.name,
                    f"expected {want} tab-separated fields as in the header, got {got}",
                    row=number,
                )
    if source.kind == "jsonl":
        for number, raw in enumerate(_lines(source.name), start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as bad:
                return input_error(source.name, f"expected a JSON object: {bad.msg}", row=number)
            except ValueError:
                return input_error(source.name, "expected UTF-8 JSON", row=number)
            if not isinstance(value, dict):
                return input_error(source.name, "expected a JSON object", row=number)
    if source.kind != "parquet":
        bad_text = utf8_error(source.name, _lines(source.name))
        if bad_text is not None:
            return bad_text
    first = first_line(err)
    return input_error(source.name, f"cannot read as {source.kind}: {first}")


def utf8_error(name: PathLike | None, lines: Iterable[bytes]) -> RerankError | None:
    """The error naming the first line that is not UTF-8 (``None``: all are)."""
    for number, raw in enumerate(lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            text = f"expected UTF-8 text, got byte {raw[bad.start]:#04x} at byte {bad.start + 1}"
            return input_error(name, text, row=number)
    return None


def columns(source: Source) -> list[str]:
    """Column names of a table file."""
    _require_file(source)
    if source.kind == "tsv":
        # polars renames a repeated name ('query_duplicated_0') and reads the first:
        # a table whose header names a column twice is ambiguous, so it is refused
        header = next(_lines(source.name), b"").removeprefix(BOM).rstrip(b"\r\n").split(b"\t")
        twice = next((name for i, name in enumerate(header) if name in header[:i]), None)
        if twice is not None:
            shown = twice.decode("utf-8", errors="replace")
            raise input_error(source.name, f"column {shown!r} appears twice in the header", row=1)
    try:
        return _scan(source).collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise _read_failure(source, err) from None


def require_columns(source: Source, wanted: Sequence[str], found: Sequence[str]) -> None:
    """Raise naming the columns of ``wanted`` that are not in ``found``."""
    missing = [c for c in wanted if c not in found]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        have = ", ".join(repr(c) for c in found)
        noun = "column" if len(missing) == 1 else "columns"
        raise input_error(source.name, f"missing {noun} {names}; found columns: {have}")


def read_columns(source: Source, wanted: Sequence[str], found: Sequence[str]) -> pl.DataFrame:
    """Read ``wanted`` columns of a table file as they are stored (TSV: all strings)."""
    require_columns(source, wanted, found)
    try:
        frame = _scan(source).select(wanted).collect()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise _read_failure(source, err) from None
    if source.kind == "tsv":
        frame = _drop_trailing_blank_lines(frame, source)
    if frame.height == 0:
        raise input_error(source.name, "empty file: no data rows")
    return frame


def _drop_trailing_blank_lines(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Drop rows read from empty lines at the end of a TSV (polars reads them as rows)."""
    if frame.height == 0 or any(frame.row(-1)):
        return frame
    tail = _tail(source.name or "")
    blank_lines = tail[len(tail.rstrip(b" \t\r\n")) :].count(b"\n") - 1
    filled = frame.select(~pl.all_horizontal(pl.all() == "")).to_series()
    blank_rows = int(filled.reverse().arg_max() or 0) if filled.any() else frame.height
    return frame.head(frame.height - max(min(blank_lines, blank_rows), 0))


def _tail(path: PathLike, size: int = 1 << 16) -> bytes:
    """The last ``size`` bytes of a (possibly gzipped) file."""
    if str(path).lower().endswith(".gz"):
        tail = b""
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(size):
                tail = (tail + chunk)[-size:]
        return tail
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - size))
        return handle.read()


def read_trec(path: PathLike, fields: Sequence[str], layout: str) -> tuple[Source, pl.DataFrame]:
    """Read a whitespace-separated TREC file into string columns named ``fields``.

    ``layout`` names the fields for messages, e.g. ``"qid Q0 docid rank score tag"``.
    """
    source = Source(str(path), "trec")
    what = "TREC run" if "score" in fields else "TREC qrels"
    _require_file(source, f"{what} lines ({layout})")
    try:
        frame = _read_trec_fast(path, fields)
        if frame is None:
            frame = _read_trec_lines(source, fields, f"malformed {what} line: expected", layout)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise _read_failure(source, err) from None
    if frame.height == 0:
        raise input_error(path, f"empty file: expected {what} lines ({layout})")
    return source, frame


def _read_trec_fast(path: PathLike, fields: Sequence[str]) -> pl.DataFrame | None:
    """Single spaces, no blank lines: polars' CSV reader (about twice as fast)."""
    try:
        frame = pl.read_csv(
            path,
            separator=" ",
            has_header=False,
            quote_char=None,
            infer_schema=False,
            empty_string_is_null=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.width != len(fields):
        return None
    if frame.select(pl.any_horizontal(pl.all() == "").any()).item():
        return None
    return frame.rename(dict(zip(frame.columns, fields, strict=True)))


def _read_trec_lines(
    source: Source, fields: Sequence[str], problem: str, layout: str
) -> pl.DataFrame:
    """Any whitespace, blank lines skipped; a line with the wrong field count is an error."""
    n = len(fields)
    frame = (
        pl.scan_lines(source.name)
        .with_row_index("_line", offset=1)
        .with_columns(pl.col("line").str.replace_all(r"\s+", " ").str.strip_chars(" "))
        .filter(pl.col("line") != "")
        .select(
            "_line",
            pl.col("line")
            .str.split_exact(" ", n)
            .struct.rename_fields([*fields, "_extra"])
            .struct.unnest(),
        )
        .collect()
    )
    bad = frame.select(
        (pl.col(fields[-1]).is_null() | pl.col("_extra").is_not_null()).arg_max().alias("i"),
        (pl.col(fields[-1]).is_null() | pl.col("_extra").is_not_null()).any().alias("any"),
    ).row(0)
    if bad[1]:
        line = frame[bad[0], "_line"]
        text = next(r for k, r in enumerate(_lines(source.name), 1) if k == line)
        got = len(text.split())
        raise input_error(source.name, f"{problem} {n} fields ({layout}), got {got}", row=int(line))
    return frame.select(fields)


def write(frame: pl.DataFrame, path: Path, kind: str, *, gz: bool) -> None:
    """Write a table file (the caller provides an atomic temporary path)."""
    if kind == "parquet":
        frame.write_parquet(path)
        return
    buffer = io.BytesIO()
    if kind == "tsv":
        frame.write_csv(buffer, separator="\t", quote_style="never")
    elif kind == "csv":
        frame.write_csv(buffer)
    else:
        frame.write_ndjson(buffer)
    data = buffer.getvalue()
    path.write_bytes(gzip.compress(data) if gz else data)
