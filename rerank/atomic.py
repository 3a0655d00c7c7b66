"""Atomic file output: a file appears complete or not at all.

Every command that writes an output goes through :func:`atomic_path`: the data is
written to a temporary sibling and renamed into place only when writing
succeeded, so a crash or a user error never leaves a partial file behind. A write
that fails for a reason the user can fix (full disk, read-only or unwritable place,
a file where a directory should be) becomes a one-line :class:`RerankError` naming
the output. :func:`check_output` refuses an output that would overwrite an input.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from rerank.errors import RerankError, input_error

__all__ = ["atomic_path", "check_output", "check_output_dir", "write_error"]

# errno values of a write the user can fix (space, permissions, a path that is not a
# directory or is one); anything else is a bug and keeps its traceback.
_USER_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary lives in the same directory so the final ``os.replace`` is a
    rename on one file system. On any exception the temporary is removed and the
    previous content of ``path`` (if any) is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "out.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "out.txt").read_text()
    'hello'
    """
    final = Path(path)
    if is_dir and final.exists() and not final.is_dir():
        raise input_error(final, "exists and is not a directory; choose a new directory name")
    # the temporary's name says whose it is, so that one left by a killed run (kill -9)
    # is removed by the next run writing the same output
    prefix = f".{final.name}.{socket.gethostname()}-{os.getpid()}."
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=final.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as err:
        raise write_error(final, err) or err from None
    # mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual
    # permissions, as if opened with open(path, "w") under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
    try:
        yield tmp
        if is_dir:
            if final.exists():
                old = final.with_name(f".{final.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        else:
            os.replace(tmp, final)
    except BaseException as err:
        # judged before the temporary goes: removing it frees the space a full disk lacked
        mapped = write_error(final, err) if isinstance(err, Exception) else None
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if mapped is not None:
            raise mapped from None
        raise


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove temporaries of ``final`` left by runs of this host that no longer exist."""
    removed = []
    head = f".{final.name}."
    for tmp in final.parent.glob(f"{glob_escape(head)}*.tmp"):
        owner = tmp.name[len(head) : -len(".tmp")].rpartition(".")[0]  # host-pid
        host, _, pid = owner.rpartition("-")
        if host and pid.isdigit() and not process_alive(host, int(pid)):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def process_alive(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` may still run (another host's: assumed so)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (owned by another user)
    return True


def glob_escape(name: str) -> str:
    """``name`` as a glob pattern matching itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def write_error(path: str | os.PathLike[str], err: BaseException) -> RerankError | None:
    """A one-line error for a write to ``path`` that failed for a reason the user can fix.

    ``None`` when ``err`` is not such a failure. Writers report a full disk or a
    read-only place differently: Python as ``OSError`` (errno), polars and safetensors
    as text ending in ``(os error N)``, ``torch.save`` as a bare ``RuntimeError``; the
    last is recognised by the disk having no space left.

    Examples
    --------
    >>> str(write_error("out.tsv", OSError(28, "No space left on device")))
    'out.tsv: cannot write here: No space left on device'
    """
    if isinstance(err, RerankError):
        return None
    code = err.errno if isinstance(err, OSError) else None
    if code is None:
        found = re.search(r"\(os error (\d+)\)", str(err))
        code = int(found.group(1)) if found else None
    if code is None and isinstance(err, RuntimeError) and _disk_full(Path(path)):
        code = errno.ENOSPC
    if code not in _USER_ERRNOS:
        return None
    reason = os.strerror(code)
    if code in (errno.EEXIST, errno.ENOTDIR):  # a parent "directory" is a file
        blocker = next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a directory"
    return input_error(path, f"cannot write here: {reason}")


def _disk_full(path: Path) -> bool:
    for place in (path, *path.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free < (1 << 16)
            except OSError:
                return False
    return False


def check_output_dir(path: str | os.PathLike[str], *, marker: str, what: str) -> None:
    """Refuse an output directory that :func:`atomic_path` would replace with user files in it.

    ``path`` may be absent, empty, or an earlier output of the same kind (it holds the
    file ``marker``); anything else would be deleted whole when the new output is renamed
    into place.
    """
    out = Path(path)
    if not out.exists():
        return
    if not out.is_dir():
        raise input_error(path, "exists and is not a directory; choose a new directory name")
    if any(out.iterdir()) and not (out / marker).exists():
        raise input_error(
            path,
            f"holds files that are not {what} (no {marker}), which writing here would "
            "delete; choose a new directory",
        )


def check_output(
    path: str | os.PathLike[str] | None, inputs: Mapping[str, str | os.PathLike[str] | None]
) -> None:
    """Refuse an output that is one of the ``inputs`` (flag name -> path).

    Paths are compared resolved, so a symbolic link or another spelling of the input
    is caught, and by identity (a hard link). Writing the output would destroy the input
    it is computed from.

    Examples
    --------
    >>> check_output("scores.tsv", {"--data": "./scores.tsv"})
    Traceback (most recent call last):
    ...
    rerank.errors.RerankError: scores.tsv: is also the input --data; choose another output file
    """
    if path is None:
        return
    out = Path(path)
    for flag, given in inputs.items():
        if given is None or str(given) == "":
            continue
        same = os.path.realpath(out) == os.path.realpath(given)
        if not same and out.exists() and Path(given).exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(out, given)
        if same:
            raise input_error(path, f"is also the input {flag}; choose another output file")
