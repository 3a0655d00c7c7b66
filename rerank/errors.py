"""User-facing errors.

A :class:`RerankError` is a mistake in the user's input (a file, a config key, a
flag), not a bug. The CLI prints its message as one line and exits with code 2,
without a traceback. Library callers get an ordinary ``ValueError`` subclass.
"""

from __future__ import annotations

import re
from os import PathLike

# C0 and C1 control characters and DEL: a file's bytes echoed raw could move the cursor
# or recolour the user's terminal (ESC sequences). Tabs and line breaks included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    r"""``text`` on one line with control characters escaped as Python does (``\x1b``).

    Examples
    --------
    >>> printable("doc\x1b[31m id\nnext")
    'doc\\x1b[31m id next'
    """
    text = " ".join(text.split("\n"))
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class RerankError(ValueError):
    """A user error whose message is one line naming where and what was expected."""


def input_error(
    path: str | PathLike[str] | None,
    message: str,
    *,
    row: int | None = None,
    column: str | None = None,
) -> RerankError:
    """Build a :class:`RerankError` that locates the problem.

    Parameters
    ----------
    path
        File the problem is in (``None`` when it is not about a file).
    message
        What was expected and what was found, e.g. ``"expected an integer grade in 0..4, got 'x'"``.
    row
        1-based line number in the file (the header of a TSV is line 1), if known.
    column
        Column (or config key) name, if known.

    Examples
    --------
    >>> str(input_error("eval.tsv", "expected an integer grade in 0..4, got 'x'", row=3, column="label"))
    "eval.tsv:3: column 'label': expected an integer grade in 0..4, got 'x'"
    """
    where = "" if path is None else str(path)
    if row is not None:
        where = f"{where}:{row}" if where else f"row {row}"
    parts = [p for p in (where, f"column '{column}'" if column else "") if p]
    head = ": ".join(parts)
    text = f"{head}: {message}" if head else message
    return RerankError(printable(text))


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line error says of a library's failure.

    Examples
    --------
    >>> first_line(ValueError("bad header\\n  at byte 12")), first_line(OSError())
    ('bad header', 'OSError')
    """
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
