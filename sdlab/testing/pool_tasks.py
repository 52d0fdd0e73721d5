"""Small tasks for testing :class:`sdlab.rewards.pool.VerifierPool` (hang, crash, allocate, ...).

Workers import tasks by name, so these live in an importable module (this one imports nothing
heavy).  Test helpers only: no library module imports them.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import time
from typing import Any


def sleep_task(seconds: float, *_ignored) -> float:
    """Sleep; extra arguments are ignored (so ``partial(sleep_task, 60)`` can stand in for any
    task function in tests)."""
    time.sleep(seconds)
    return seconds


def alloc_task(nbytes: int) -> int:
    buf = bytearray(int(nbytes))
    return len(buf)


def echo_task(value: Any) -> Any:
    return value


def int_str_task(digits: int) -> int:
    return len(str(10 ** int(digits)))


def crash_task(*_ignored) -> None:
    """Kill the worker mid-task (as a segfault in C code would)."""
    os.kill(os.getpid(), signal.SIGKILL)


def raise_task(exc_name: str, message: str = "", *_ignored) -> None:
    """Raise the built-in exception ``exc_name`` (e.g. ``"ModuleNotFoundError"``)."""
    raise getattr(builtins, exc_name)(message)


def print_task(text: str) -> str:
    """Write to stdout and stderr: neither may corrupt the protocol."""
    print(text)
    print(text, file=sys.stderr)
    sys.stdout.flush()
    os.write(1, (text + "\n").encode())
    return text


def pid_task(*_ignored) -> int:
    return os.getpid()


def failing_check() -> None:
    """A start-up check that fails (``VerifierPool(startup_check=...)``)."""
    raise RuntimeError("this verifier is broken on purpose")
