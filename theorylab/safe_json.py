"""Reading untrusted JSON files safely (a results folder is user input).

The low layer of ``verify.report`` (which validates a result's fields and resumes runs) and of
``figures/plot.py`` (which imports nothing of verify): a file is read only if it is a regular
file (opened non-blocking, checked on the descriptor: a FIFO or device never blocks), of at most
:data:`MAX_RESULT_BYTES`, UTF-8 JSON nested at most :data:`MAX_JSON_DEPTH` deep.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from theorylab.errors import TheorylabError, TheorylabWarning

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_JSON_DEPTH",
    "ResultFileError",
    "ResultFileWarning",
    "read_regular_file",
    "depth_at_most",
    "read_json",
]

#: largest result file read (bytes); a claim's result is a few hundred kB at most
MAX_RESULT_BYTES = 64 * 2**20
#: deepest nesting of lists/objects accepted in a result file (a result nests about 4 deep)
MAX_JSON_DEPTH = 32


class ResultFileError(TheorylabError):
    """A file in a results folder is not a valid saved result; the message says why."""


class ResultFileWarning(TheorylabWarning):
    """A file in a results folder was skipped (and, when resuming, its claim recomputed)."""


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Opened non-blocking, and checked on the open descriptor, so a FIFO (or a device, or a file
    swapped for one between a check and the open) can never block the reader.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise ResultFileError("it is a directory, not a file") from None
    except OSError as exc:
        raise ResultFileError(f"it cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ResultFileError("it is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ResultFileError("it is not a regular file (a FIFO, socket or device?)")
        if info.st_size > limit:
            raise ResultFileError(f"it has {info.st_size} bytes, more than the {limit} allowed")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ResultFileError(f"it has more than the {limit} bytes allowed")
        return b"".join(chunks)
    except OSError as exc:
        raise ResultFileError(f"it cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def depth_at_most(value, limit: int) -> bool:
    """Whether lists/dicts in ``value`` nest at most ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, dict)):
            if depth > limit:
                return False
            stack.extend((u, depth + 1) for u in (v.values() if isinstance(v, dict) else v))
    return True


def read_json(path: str | os.PathLike):
    """The JSON value in ``path``; :class:`ResultFileError` saying why when it is not readable.

    Never blocks, never recurses without bound (see the module docstring).
    """
    raw = read_regular_file(Path(path), MAX_RESULT_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultFileError("it is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except RecursionError:  # e.g. "[" x 200000: the parser's own nesting limit
        raise ResultFileError(f"its JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ResultFileError(f"it is not valid JSON: {exc}") from None
    if not depth_at_most(data, MAX_JSON_DEPTH):
        raise ResultFileError(f"its JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return data
