"""A persistent pool of verifier worker *processes* with hard per-task wall-clock deadlines.

Why processes and not signals: math-verify's ``SIGALRM`` timeouts work only in the main
thread, take whole seconds, are cancelled by nested alarms and cannot interrupt a C-level
big-int or mpmath operation (ecosystem.md §4.2, §4.6).  Here the parent never uses
signals: a manager thread sends each task to an idle worker over a pipe, waits on the
pipes with a timeout, and ``SIGKILL``-s a worker whose task passes its deadline; a fresh
worker replaces it.  Anything a caller sees is a normal result or an exception object
(:class:`TaskTimeout`, :class:`TaskFailed`, :class:`WorkerCrashed`,
:class:`VerifierUnavailable`) -- never a hang.

* Workers are **fresh interpreters** (``subprocess.Popen([sys.executable, "-c", BOOTSTRAP])``,
  see :mod:`sdlab.rewards._worker`), not ``multiprocessing`` children: they never import or
  re-run the caller's ``__main__``.  So the grader works, and the caller's script body runs
  exactly once, from a script without an ``if __name__ == "__main__":`` guard, from stdin
  (``python - < f.py``), ``python -c``, notebooks / ``exec``-ed code, threads and
  ``torchrun`` ranks.  Starting processes with ``posix_spawn``/``vfork`` + ``exec`` is also
  safe from a process with many threads.  A worker adopts the parent's ``sys.path`` and checks
  that it imported the same ``sdlab``.
* Protocol: JSON lines over the worker's stdin/stdout (nothing is ever unpickled).  A task is
  a function named by reference (``module:qualname``, a module other than ``__main__``; a
  :func:`functools.partial` of one is accepted) with JSON-serialisable arguments; results are
  JSON values (tuples come back as lists).  Worker stderr is forwarded to the parent's
  ``sys.stderr`` and its tail is quoted when a worker fails to start.
* A worker only receives tasks after reporting ready, so start-up (about 0.5 s: interpreter,
  math-verify import, a math-verify self-test) is never charged to a task's deadline.  One
  spare worker (``spares=1`` by default) is kept started, so a worker killed at a deadline
  is replaced at once; its own replacement starts in the background.
* Each worker sets ``RLIMIT_AS`` (``memory_limit``, default 2 GiB, or its address space after
  start-up plus 512 MiB if that is larger) and ``sys.set_int_max_str_digits(max_str_digits)``;
  a task that runs out of memory reports ``MemoryError`` instead of taking the machine down.
  Workers ignore SIGINT and are killed by the kernel if the parent dies (Linux).
* Systemic failure is an exception, never a grade: when workers cannot be started, die at
  start, cannot import math-verify or fail its self-test (3 start failures in a row, one
  explicit report from a worker, or no start within ``start_timeout``), every pending and new
  task fails at once with :class:`VerifierUnavailable` (message: the cause and what to do).
  The pool keeps retrying in the background (back-off up to 30 s) and recovers when a worker
  starts.
* Usable from any thread (submit is lock-protected; results are
  :class:`concurrent.futures.Future`).  The pool is started lazily on first use.
* :func:`get_pool` returns a lazily created module-level pool (``min(2, cpu)`` workers, or
  ``$SDLAB_REWARD_WORKERS``; ``$SDLAB_REWARD_SPARES`` spares, default 1) that is shut down at
  interpreter exit.  A process forked from one that already used it (e.g. a ``fork``
  DataLoader worker) forgets it and starts its own.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as _futures_wait
from typing import Any, Callable, Sequence

from ._worker import describe as _describe

__all__ = [
    "VerifierPool",
    "PoolError",
    "TaskTimeout",
    "TaskFailed",
    "WorkerCrashed",
    "VerifierUnavailable",
    "get_pool",
    "configure_pool",
    "shutdown_pool",
    "default_workers",
    "default_spares",
    "function_ref",
]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3
DEFAULT_MAX_STR_DIGITS = 4300
DEFAULT_PRELOAD = ("sdlab.rewards._mv", "math_verify")
DEFAULT_STARTUP_CHECK = "sdlab.rewards._mv:self_test"
START_FAILURES_BEFORE_UNAVAILABLE = 3
MAX_RETRY_S = 30.0
MAX_MESSAGE_BYTES = 16 * 1024**2
STDERR_TAIL_BYTES = 4096
SEND_ERROR = "SendError"  # TaskFailed.exc_type of a task the parent could not send

# Run by the worker interpreter.  Reads the configuration line, adopts the parent's sys.path
# (never the cwd: "" is dropped before the first import) and serves tasks.
BOOTSTRAP = """# sdlab verifier worker (sdlab/rewards/_worker.py)
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
import json
cfg = json.loads(sys.stdin.buffer.readline())
sys.path[:] = cfg["sys_path"]
from sdlab.rewards._worker import main
main(cfg, sys.stdin.buffer)
"""


class PoolError(RuntimeError):
    """Base class of the outcomes a task can fail with."""


class TaskTimeout(PoolError):
    """The task ran past its deadline; its worker was killed and replaced."""


class TaskFailed(PoolError):
    """The task raised inside the worker (message: ``"<ExceptionType>: <text>"``; the type's
    name is in ``exc_type``), or could not be sent to one (``exc_type == "SendError"``)."""

    def __init__(self, message: str, exc_type: str | None = None):
        super().__init__(message)
        self.exc_type = exc_type


class WorkerCrashed(PoolError):
    """The worker died while running the task."""


class VerifierUnavailable(PoolError):
    """The verifier cannot run at all (workers cannot start, die at start, cannot import
    math-verify, the pool is shut down, ...).  Says nothing about any answer: ``grade`` raises
    it instead of returning a result."""


ADVICE = (
    "grader='math_verify'/'paper' need these worker processes; check that math-verify imports in "
    "{python} (pip install 'math-verify[antlr4_13_2]'), that this process may start subprocesses "
    "and has memory for them, and read the worker's stderr; grader='strict' needs no workers"
)


def _unavailable(cause: str, python: Sequence[str] | None = None) -> VerifierUnavailable:
    py = " ".join(python) if python else (sys.executable or "the interpreter")
    return VerifierUnavailable(f"the math verifier cannot run: {cause}. " + ADVICE.format(python=py))


def default_workers() -> int:
    env = os.environ.get("SDLAB_REWARD_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(2, os.cpu_count() or 1))


def default_spares() -> int:
    """``$SDLAB_REWARD_SPARES`` or 1."""
    try:
        return max(0, int(os.environ.get("SDLAB_REWARD_SPARES", "1")))
    except ValueError:
        return 1


def function_ref(fn: Callable) -> tuple[str, list, dict]:
    """``(reference, leading args, keyword args)`` naming ``fn`` for a worker.

    ``fn`` must be reachable by name from an importable module other than ``__main__`` (no
    lambdas, nested functions or functions defined in a script / notebook); a
    :func:`functools.partial` of such a function is unwrapped.  Raises :class:`TaskFailed`."""
    args: list = []
    kwargs: dict = {}
    if isinstance(fn, functools.partial):
        args, kwargs, fn = list(fn.args), dict(fn.keywords), fn.func
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    mod = sys.modules.get(module) if isinstance(module, str) else None
    if not module or not qual or "<" in qual or module == "__main__" or mod is None or mod.__spec__ is None:
        raise TaskFailed(f"cannot send task: {fn!r} is not importable by name from a module other than "
                         "__main__ (define it in an importable module)", SEND_ERROR)
    obj = mod
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        raise TaskFailed(f"cannot send task: {module}:{qual} is not the same object as {fn!r}", SEND_ERROR)
    return f"{module}:{qual}", args, kwargs


# ----------------------------------------------------------------------------- parent side


class _Task:
    __slots__ = ("body", "timeout", "future", "claimed")

    def __init__(self, body, timeout, future):
        self.body, self.timeout, self.future = body, timeout, future  # body: JSON text '{"fn": ...}'
        self.claimed = False  # future already moved to RUNNING (a re-queued task)

    def claim(self) -> bool:
        """Move the future to RUNNING; False if the caller cancelled it while queued."""
        if not self.claimed:
            if not self.future.set_running_or_notify_cancel():
                return False
            self.claimed = True
        return True


class _Worker:
    __slots__ = ("proc", "out_fd", "err_fd", "buf", "err_tail", "ready", "task", "task_id", "deadline", "started",
                 "dead", "fatal")

    def __init__(self, proc):
        self.proc = proc
        self.out_fd = proc.stdout.fileno()
        self.err_fd = proc.stderr.fileno()
        os.set_blocking(self.out_fd, False)
        os.set_blocking(self.err_fd, False)
        self.buf = b""
        self.err_tail = b""
        self.ready = False
        self.task: _Task | None = None
        self.task_id = 0
        self.deadline = math.inf
        self.started = time.monotonic()
        self.dead = False
        self.fatal: str | None = None

    def stderr_tail(self, lines: int = 4) -> str:
        text = self.err_tail.decode("utf-8", "replace").strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:] if line.strip())


class VerifierPool:
    """Persistent worker processes; each task gets a hard wall-clock deadline.

    ``python``: the interpreter command that runs the workers (default ``[sys.executable]``;
    an argv prefix such as ``["nice", "-n", "5", sys.executable]`` works too).  ``preload``:
    modules imported at worker start; ``startup_check``: ``"module:function"`` called once at
    worker start (raising = the worker cannot serve).  A failure of either makes the pool
    :class:`VerifierUnavailable`.  ``spares``: extra started workers that take no task while
    ``workers`` are busy; one replaces a killed (timed-out / crashed) worker at once instead of
    after a fresh start (about 0.5 s).  Spares start only once the first ``workers`` are ready,
    so they do not slow the cold start."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        max_str_digits: int | None = DEFAULT_MAX_STR_DIGITS,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        startup_check: str | None = DEFAULT_STARTUP_CHECK,
        python: str | Sequence[str] | None = None,
        spares: int | None = None,
        start_timeout: float = 120.0,
    ):
        self.size = int(workers) if workers else default_workers()
        if self.size < 1:
            raise ValueError("workers must be >= 1")
        self.memory_limit = memory_limit
        self.max_str_digits = max_str_digits
        self.preload = tuple(preload)
        self.startup_check = startup_check
        if python is None:
            self.python = [sys.executable] if sys.executable else []
        else:
            self.python = [python] if isinstance(python, str) else list(python)
        self.spares = default_spares() if spares is None else max(0, int(spares))
        self.start_timeout = float(start_timeout)
        self._primed = False  # all `size` workers were ready once: spares may start now
        self._lock = threading.Lock()
        self._all_ready = threading.Condition(self._lock)
        self._queue: collections.deque[_Task] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_r = self._wake_w = -1
        self._n_ready = 0
        self._start_failures = 0
        self._retry_at = 0.0
        self._broken: str | None = None  # why workers cannot start (until one does)
        self._pids: set[int] = set()
        self._stats = collections.Counter()

    # ------------------------------------------------------------------ public API
    def submit(self, fn: Callable, *args, timeout: float) -> Future:
        """Run ``fn(*args)`` in a worker; the future fails with :class:`TaskTimeout` once the
        task has run ``timeout`` seconds (counted from dispatch to a ready worker).  A task that
        cannot be sent (``fn`` not importable by name, arguments not JSON) fails with
        :class:`TaskFailed`; raises :class:`VerifierUnavailable` if the pool is shut down."""
        fut: Future = Future()
        try:
            ref, pargs, kwargs = function_ref(fn)
            body = json.dumps({"fn": ref, "args": [*pargs, *args], "kwargs": kwargs})
        except TaskFailed as exc:
            fut.set_exception(exc)
            return fut
        except (TypeError, ValueError) as exc:  # not JSON-serialisable
            fut.set_exception(TaskFailed("cannot send task: " + _describe(exc), SEND_ERROR))
            return fut
        with self._lock:
            self._ensure_started()
            self._queue.append(_Task(body, float(timeout), fut))
            self._stats["submitted"] += 1
        self._wake()
        return fut

    def run_many(self, fn: Callable, arg_tuples: Sequence[tuple], timeout: float) -> list[tuple[bool, Any]]:
        """Submit ``fn(*args)`` for every tuple at once; ``(True, value)`` or ``(False, exception)``."""
        return self.run_calls([(fn, tuple(args)) for args in arg_tuples], timeout)

    def run_calls(self, calls: Sequence[tuple[Callable, tuple]], timeout: float) -> list[tuple[bool, Any]]:
        """Submit ``(fn, args)`` calls at once, wait for all; ``(True, value)`` or
        ``(False, exception)`` for each, in order.  Never raises for a task's failure."""
        if not calls:
            return []
        with self._lock:
            backlog = len(self._queue)
        futures: list[Future | BaseException] = []
        for fn, args in calls:
            try:
                futures.append(self.submit(fn, *args, timeout=timeout))
            except PoolError as exc:
                futures.append(exc)
        live = [f for f in futures if isinstance(f, Future)]
        rounds = math.ceil((backlog + len(live)) / self.size) + 2
        _futures_wait(live, timeout=timeout * rounds + self.start_timeout + 10.0)  # safety net only
        out: list[tuple[bool, Any]] = []
        for fut in futures:
            if not isinstance(fut, Future):
                out.append((False, fut))
            elif not fut.done():
                fut.cancel()
                out.append((False, _unavailable("the verifier pool stalled (no result within the safety limit)")))
            elif fut.exception() is not None:
                out.append((False, fut.exception()))
            else:
                out.append((True, fut.result()))
        return out

    def warmup(self, timeout: float | None = None) -> bool:
        """Start the workers and wait until all of them are ready (True), or ``timeout``, or the
        pool is found unavailable (False; see :attr:`unavailable`)."""
        with self._lock:
            self._ensure_started()
        self._wake()
        end = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        with self._all_ready:
            while self._n_ready < self.size and not self._closed:
                if self._broken is not None and self._n_ready == 0:
                    return False
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._all_ready.wait(left)
            return self._n_ready >= self.size

    @property
    def unavailable(self) -> str | None:
        """Why workers cannot start (None while the pool is healthy or has a ready worker)."""
        with self._lock:
            return self._broken if self._n_ready == 0 else None

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for diagnostics and tests)."""
        with self._lock:
            return sorted(self._pids)

    def stats(self) -> dict:
        with self._lock:
            out = dict(self._stats)
            out["queued"] = len(self._queue)
            out["ready_workers"] = self._n_ready
        return out

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._all_ready.notify_all()
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._fail_queued(_unavailable("the verifier pool was shut down"))
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1

    close = shutdown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ internals
    def _ensure_started(self) -> None:  # caller holds the lock
        if self._closed:
            raise _unavailable("the verifier pool is shut down")
        if self._thread is None:
            if self._wake_r < 0:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
            self._thread = threading.Thread(target=self._run, name="sdlab-verifier-pool", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _config(self) -> bytes:
        import sdlab

        sdlab_dir = os.path.dirname(os.path.dirname(os.path.abspath(sdlab.__file__)))  # holds the package
        path = [p for p in sys.path if isinstance(p, str)]
        if sdlab_dir not in path:
            path.insert(0, sdlab_dir)
        cfg = {
            "sys_path": path,
            "sdlab_dir": sdlab_dir,
            "preload": list(self.preload),
            "startup_check": self.startup_check,
            "memory_limit": self.memory_limit,
            "max_str_digits": self.max_str_digits,
            "parent_pid": os.getpid(),
        }
        return json.dumps(cfg).encode("ascii") + b"\n"

    def _spawn(self) -> _Worker:
        if not self.python:
            raise OSError("sys.executable is not set; pass python=[...] to VerifierPool / configure_pool")
        proc = subprocess.Popen(
            [*self.python, "-c", BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        with self._lock:
            self._stats["spawned"] += 1
            self._pids.add(proc.pid)
        w = _Worker(proc)
        try:
            proc.stdin.write(self._config())
            proc.stdin.flush()
        except OSError:  # died at once: noticed as EOF on its stdout
            pass
        return w

    def _kill(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        with self._lock:
            self._pids.discard(w.proc.pid)
            if w.ready:
                self._n_ready -= 1
        try:
            w.proc.kill()
        except Exception:
            pass
        try:
            w.proc.wait(1.0)
        except Exception:
            pass
        self._drain_stderr(w)
        for f in (w.proc.stdin, w.proc.stdout, w.proc.stderr):
            try:
                f.close()
            except Exception:
                pass

    def _drain_stderr(self, w: _Worker) -> None:
        while w.err_fd >= 0:
            try:
                data = os.read(w.err_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                w.err_fd = -1
                return
            w.err_tail = (w.err_tail + data)[-STDERR_TAIL_BYTES:]
            try:
                sys.stderr.write(data.decode("utf-8", "replace"))
                sys.stderr.flush()
            except Exception:  # no usable stderr (pythonw, closed): keep the tail only
                pass

    def _next_task(self) -> _Task | None:
        with self._lock:
            while self._queue:
                task = self._queue.popleft()
                if task.claim():
                    return task
        return None

    def _fail_queued(self, exc: Exception) -> None:
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        for task in pending:
            if task.claim() and not task.future.done():
                task.future.set_exception(exc)

    def _finish(self, w: _Worker, ok: bool, value: Any) -> None:
        task, w.task, w.deadline = w.task, None, math.inf
        if task is None or task.future.done():
            return
        if ok:
            task.future.set_result(value)
        else:
            task.future.set_exception(value)

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _start_failed(self, cause: str, definitive: bool = False) -> None:
        self._start_failures += 1
        self._count("start_failures")
        self._retry_at = time.monotonic() + min(MAX_RETRY_S, 0.25 * 2 ** (self._start_failures - 1))
        if definitive or self._start_failures >= START_FAILURES_BEFORE_UNAVAILABLE:
            with self._lock:
                self._broken = cause
                self._all_ready.notify_all()

    def _worker_gone(self, w: _Worker, exiting: bool = True) -> None:
        """``w``'s stdout closed (or it spoke garbage): reap it and account for the loss."""
        try:  # a closed stdout means it is exiting: let it, for a truthful exit code
            code = w.proc.wait(0.5) if exiting else w.proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        self._kill(w)
        code = w.proc.returncode if code is None else code
        if w.task is not None:
            self._count("crashes")
            self._finish(w, False, WorkerCrashed(f"verifier worker died while running the task (exit code {code})"))
        elif not w.ready:
            if w.fatal is not None:
                self._start_failed(f"a verifier worker failed to start: {w.fatal}", definitive=True)
            else:
                tail = w.stderr_tail()
                self._start_failed(f"verifier workers die at start (exit code {code}"
                                   + (f"; stderr: {tail[-600:]})" if tail else ")"))

    def _handle(self, w: _Worker, msg: dict) -> None:
        if "ready" in msg:
            if w.ready:
                return
            w.ready = True
            self._start_failures = 0
            with self._lock:
                self._n_ready += 1
                if self._n_ready >= self.size:
                    self._primed = True
                self._broken = None
                self._all_ready.notify_all()
        elif "fatal" in msg:
            w.fatal = str(msg["fatal"])
        elif w.task is None or msg.get("id") != w.task_id:
            pass  # a result for a task already given up on: ignore
        elif "ok" in msg:
            self._count("completed")
            self._finish(w, True, msg["ok"])
        else:
            self._count("failed")
            self._finish(w, False, TaskFailed(str(msg.get("err")), msg.get("type")))

    def _read(self, w: _Worker) -> None:
        try:
            data = os.read(w.out_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drain_stderr(w)
            self._worker_gone(w)
            return
        w.buf += data
        while not w.dead:
            line, sep, rest = w.buf.partition(b"\n")
            if not sep:
                if len(w.buf) > MAX_MESSAGE_BYTES:
                    self._finish(w, False, TaskFailed("verifier worker sent a result over 16 MiB"))
                    self._kill(w)
                break
            w.buf = rest
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._finish(w, False, WorkerCrashed("verifier worker sent an unreadable message"))
                w.fatal = w.fatal or "it sent an unreadable message"
                self._worker_gone(w, exiting=False)
                return
            self._handle(w, msg)

    def _dispatch(self, workers: list[_Worker]) -> None:
        busy = sum(1 for w in workers if w.task is not None)
        for w in workers:
            if busy >= self.size:  # at most `size` tasks run at once; the rest are spares
                return
            if not (w.ready and w.task is None and not w.dead):
                continue
            task = self._next_task()
            if task is None:
                return
            w.task_id += 1
            line = ('{"id": %d, ' % w.task_id + task.body[1:] + "\n").encode("ascii")
            try:
                w.proc.stdin.write(line)
                w.proc.stdin.flush()
            except (OSError, ValueError):  # died while idle: retry the task elsewhere
                with self._lock:
                    self._queue.appendleft(task)
                self._kill(w)
                continue
            w.task, w.deadline = task, time.monotonic() + task.timeout
            busy += 1

    def _run(self) -> None:  # the manager thread
        workers: list[_Worker] = []
        try:
            while not self._closed:
                # keep the pool full (with a back-off after failed starts)
                target = self.size + (self.spares if self._primed else 0)
                if len(workers) < target and time.monotonic() >= self._retry_at:
                    while len(workers) < target:
                        try:
                            workers.append(self._spawn())
                        except Exception as exc:  # cannot start processes at all
                            self._start_failed("cannot start verifier workers: " + _describe(exc))
                            break
                self._dispatch(workers)
                workers = [w for w in workers if not w.dead]
                if self._broken is not None and not any(w.ready for w in workers):
                    self._fail_queued(_unavailable(self._broken, self.python))
                # sleep until a message, a wake-up, a deadline or a start timeout
                limits = [w.deadline for w in workers if w.task is not None]
                limits += [w.started + self.start_timeout for w in workers if not w.ready]
                if len(workers) < target:
                    limits.append(self._retry_at)
                wait_s = None if not limits else max(0.0, min(limits) - time.monotonic())
                poller = select.poll()
                poller.register(self._wake_r, select.POLLIN)
                by_fd = {}
                for w in workers:
                    for fd in (w.out_fd, w.err_fd):
                        if fd >= 0:
                            poller.register(fd, select.POLLIN)
                            by_fd[fd] = w
                events = poller.poll(None if wait_s is None else math.ceil(wait_s * 1000))
                for fd, _ in events:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        continue
                    w = by_fd[fd]
                    if w.dead:
                        continue
                    if fd == w.err_fd:
                        self._drain_stderr(w)
                    else:
                        self._read(w)
                # enforce deadlines
                now = time.monotonic()
                for w in workers:
                    if w.dead:
                        continue
                    if w.task is not None and now >= w.deadline:
                        timeout = w.task.timeout
                        self._kill(w)
                        self._count("timeouts")
                        self._finish(w, False, TaskTimeout(f"verifier task exceeded {timeout:g}s"))
                    elif not w.ready and now - w.started > self.start_timeout:
                        self._kill(w)
                        self._start_failed(f"verifier workers do not start within {self.start_timeout:g}s",
                                           definitive=True)
                workers = [w for w in workers if not w.dead]
        except BaseException as exc:  # never leave callers waiting
            err = _unavailable("the verifier pool manager failed: " + _describe(exc), self.python)
            self._fail_queued(err)
            for w in workers:
                self._finish(w, False, err)
            with self._lock:
                self._thread = None if not self._closed else self._thread
            raise
        finally:
            for w in workers:
                self._finish(w, False, _unavailable("the verifier pool was shut down"))
                self._kill(w)
            if self._closed:
                self._fail_queued(_unavailable("the verifier pool was shut down"))


# ----------------------------------------------------------------------------- default pool

_DEFAULT: VerifierPool | None = None
_DEFAULT_KWARGS: dict = {}
_DEFAULT_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def get_pool() -> VerifierPool:
    """The module-level pool (created lazily; shut down at interpreter exit)."""
    global _DEFAULT, _ATEXIT_REGISTERED
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.closed:
            _DEFAULT = VerifierPool(**_DEFAULT_KWARGS)
            if not _ATEXIT_REGISTERED:
                atexit.register(shutdown_pool)
                _ATEXIT_REGISTERED = True
        return _DEFAULT


def configure_pool(**kwargs) -> None:
    """Set the arguments of the default pool (``workers``, ``memory_limit``, ``python``, ...);
    an existing default pool is shut down and recreated on next use."""
    global _DEFAULT_KWARGS
    shutdown_pool()
    with _DEFAULT_LOCK:
        _DEFAULT_KWARGS = dict(kwargs)


def shutdown_pool() -> None:
    global _DEFAULT
    with _DEFAULT_LOCK:
        pool, _DEFAULT = _DEFAULT, None
    if pool is not None:
        pool.shutdown()


def _after_fork_in_child() -> None:
    # a forked child (e.g. a DataLoader worker) has no manager thread and does not own the
    # parent's workers: forget the default pool; the child starts its own if it grades
    global _DEFAULT, _DEFAULT_LOCK
    _DEFAULT = None
    _DEFAULT_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
