"""Files that must never be seen half-written: atomic text and JSONL writes.

A reader (a report, a resumed run, a second process) sees either the old file or the new one:
the content goes to a temporary file beside the target, which then replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from .errors import DataError

__all__ = ["read_jsonl", "read_lines", "read_text", "sha256_file", "write_jsonl", "write_text_atomic"]


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """One JSON object per line, written atomically."""
    return write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def _not_utf8(path: Path, lineno: int, e: UnicodeDecodeError) -> DataError:
    return DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{e.object[e.start]:02x} at column {e.start + 1}); "
                     "save the file as UTF-8")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file; a line that is not UTF-8 is a DataError naming it."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, lineno, e) from None


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file (see read_lines for the error)."""
    return "".join(line for _, line in read_lines(path))


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON value) per non-blank line; a line that is not JSON is a DataError
    naming the file, line and column."""
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (checkpoint and shipped-base manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
