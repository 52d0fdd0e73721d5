"""The verifier worker process (started by :class:`sdlab.rewards.pool.VerifierPool`).

A worker is a fresh interpreter started as ``python -c BOOTSTRAP`` (see ``pool.BOOTSTRAP``): it
never imports the caller's ``__main__``.  The bootstrap reads one JSON line (the configuration)
from stdin, adopts the parent's ``sys.path`` (so it imports the same ``sdlab`` and packages as
the parent) and calls :func:`main`.

Protocol: one JSON object per line (``json.dumps`` escapes newlines, so a line is a frame).
Nothing is ever unpickled.

    parent -> worker   {"id": 7, "fn": "package.module:function", "args": [...], "kwargs": {...}}
    worker -> parent   {"ready": <pid>}                       after start-up, once
                       {"fatal": "<why>"}                       start-up failed; the worker exits
                       {"id": 7, "ok": <JSON value>}
                       {"id": 7, "err": "<Type>: <text>", "type": "<Type>"}

The protocol uses private copies of fds 0/1; fd 1 is then pointed at stderr, so a stray
``print`` in a library cannot corrupt the stream.  EOF on stdin ends the worker.

Start-up: ignore SIGINT (Ctrl-C reaches the whole process group; the parent decides), ask the
kernel to SIGKILL the worker when its parent dies (Linux ``PR_SET_PDEATHSIG``), import the
``preload`` modules, run the ``startup_check`` (a math-verify self-test by default), then set
``RLIMIT_AS`` to ``max(memory_limit, address space now + 512 MiB)`` and the int-to-str digit
limit.  A failure in any of these is reported as ``fatal`` -- the parent turns it into
:class:`~sdlab.rewards.pool.VerifierUnavailable`, never into a grade.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys

MIN_HEADROOM = 512 * 1024**2
_FUNCS: dict = {}


def describe(exc: BaseException) -> str:
    """One line (at most 300 characters) naming an exception, even one whose str() fails."""
    try:
        text = str(exc)
    except Exception:  # str() of a huge object can itself fail
        text = ""
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg[:300]


def resolve(ref: str):
    """``"package.module:qual.name"`` -> the object (imports the module)."""
    fn = _FUNCS.get(ref)
    if fn is None:
        module, _, qual = ref.partition(":")
        if not module or not qual or module == "__main__":
            raise ValueError(f"bad function reference {ref!r}")
        fn = importlib.import_module(module)
        for part in qual.split("."):
            fn = getattr(fn, part)
        _FUNCS[ref] = fn
    return fn


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _apply_limits(memory_limit: int | None, max_str_digits: int | None) -> None:
    if memory_limit:
        try:
            import resource
        except ImportError:  # not POSIX: no address-space cap
            pass
        else:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = max(int(memory_limit), _vm_size() + MIN_HEADROOM)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    if max_str_digits is not None and hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(int(max_str_digits))


def _die_with_parent(parent_pid: int | None) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:  # best effort: EOF on stdin also ends an idle worker
            pass
    if parent_pid:  # the pool's process died before prctl took effect
        try:
            os.kill(int(parent_pid), 0)
        except ProcessLookupError:
            os._exit(0)
        except OSError:  # exists (EPERM)
            pass


def _send(out, msg: dict) -> None:
    out.write(json.dumps(msg).encode("ascii") + b"\n")
    out.flush()


def main(cfg: dict, rin=None) -> None:
    """Serve tasks until EOF.  ``rin``: the binary stream the configuration was read from."""
    rin = rin if rin is not None else sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, not into the protocol
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        pass
    _die_with_parent(cfg.get("parent_pid"))
    try:
        want = cfg.get("sdlab_dir")
        import sdlab

        here = os.path.dirname(os.path.dirname(os.path.abspath(sdlab.__file__)))  # holds the package
        if want and os.path.realpath(want) != os.path.realpath(here):
            raise RuntimeError(f"the worker imported sdlab from {here}, the parent from {want}")
        for name in cfg.get("preload") or ():
            try:
                importlib.import_module(name)
            except BaseException as exc:
                raise RuntimeError(f"cannot import {name} ({describe(exc)})") from exc
        check = cfg.get("startup_check")
        if check:
            try:
                resolve(check)()
            except BaseException as exc:
                raise RuntimeError(f"start-up check {check} failed ({describe(exc)})") from exc
        try:
            _apply_limits(cfg.get("memory_limit"), cfg.get("max_str_digits"))
        except BaseException as exc:
            raise RuntimeError(f"cannot set resource limits ({describe(exc)})") from exc
    except BaseException as exc:
        _send(out, {"fatal": str(exc)[:1000]})
        return
    _send(out, {"ready": os.getpid()})
    while True:
        try:
            line = rin.readline()
        except (OSError, ValueError):
            break
        if not line:
            break
        task_id = None
        try:
            msg = json.loads(line)
            task_id = msg["id"]
            value = resolve(msg["fn"])(*msg.get("args", ()), **msg.get("kwargs", {}))
            reply = json.dumps({"id": task_id, "ok": value}).encode("ascii")
        except MemoryError:
            reply = json.dumps({"id": task_id, "err": "MemoryError", "type": "MemoryError"}).encode("ascii")
        except BaseException as exc:  # noqa: BLE001 - report everything, keep serving
            reply = json.dumps({"id": task_id, "err": describe(exc), "type": type(exc).__name__}).encode("ascii")
        try:
            out.write(reply + b"\n")
            out.flush()
        except (OSError, ValueError):  # the parent is gone
            break
