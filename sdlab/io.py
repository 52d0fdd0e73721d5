"""Files that must never be seen half-written: atomic text and JSONL writes.

A reader (a report, a resumed run, a second process) sees either the old file or the new one:
the content goes to a temporary file beside the target, which then replaces it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

__all__ = ["write_jsonl", "write_text_atomic"]


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
