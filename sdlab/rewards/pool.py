"""A persistent pool of verifier worker *processes* with hard per-task wall-clock deadlines.

Why processes and not signals: math-verify's ``SIGALRM`` timeouts work only in the main
thread, take whole seconds, are cancelled by nested alarms and cannot interrupt a C-level
big-int or mpmath operation (ecosystem.md §4.2, §4.6).  Here the parent never uses
signals: a manager thread sends each task to an idle worker over a pipe, waits on the
pipes with a timeout, and ``SIGKILL``-s a worker whose task passes its deadline; a fresh
worker replaces it.  Anything a caller sees is a normal result or an exception object
(:class:`TaskTimeout`, :class:`TaskFailed`, :class:`WorkerCrashed`) -- never a hang.

* Workers are started with the ``forkserver`` context (``spawn`` where unavailable), so a
  replacement forks from a server that has already imported math-verify (milliseconds,
  not seconds).  A worker only receives tasks after reporting ready, so start-up time is
  never charged to a task's deadline.
* Each worker sets ``RLIMIT_AS`` (``memory_limit``, default 2 GiB; raised, if needed, to the
  worker's address space at start plus 512 MiB so that a large ``__main__`` still starts) and
  ``sys.set_int_max_str_digits(max_str_digits)``; a task that runs out of memory reports
  ``MemoryError`` instead of taking the machine down.  SIGINT is ignored in workers.
* Usable from any thread (submit is lock-protected; results are
  :class:`concurrent.futures.Future`).  The pool is started lazily on first use.
* :func:`get_pool` returns a lazily created module-level pool (``min(2, cpu)`` workers, or
  ``$SDLAB_REWARD_WORKERS``) that is shut down at interpreter exit.

A process forked from one that already used the pool (e.g. a ``fork`` DataLoader worker)
forgets the inherited default pool and, if it grades, starts its own with ``spawn`` (the
parent's fork server cannot be used from a forked child).

Like every ``spawn``/``forkserver`` user, a script that uses the pool at import time must
guard its entry point with ``if __name__ == "__main__":`` (the workers import ``__main__``).
"""

from __future__ import annotations

import atexit
import collections
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as _futures_wait
from multiprocessing.connection import wait as _mp_wait
from typing import Any, Callable, Sequence

__all__ = [
    "VerifierPool",
    "PoolError",
    "TaskTimeout",
    "TaskFailed",
    "WorkerCrashed",
    "get_pool",
    "configure_pool",
    "shutdown_pool",
    "default_workers",
    "sleep_task",
    "alloc_task",
    "echo_task",
    "int_str_task",
]

DEFAULT_MEMORY_LIMIT = 2 * 1024**3
DEFAULT_MAX_STR_DIGITS = 4300
MIN_HEADROOM = 512 * 1024**2
DEFAULT_PRELOAD = ("sdlab.rewards._mv", "math_verify")


class PoolError(RuntimeError):
    """Base class of the outcomes a task can fail with."""


class TaskTimeout(PoolError):
    """The task ran past its deadline; its worker was killed and replaced."""


class TaskFailed(PoolError):
    """The task raised inside the worker (message: ``"<ExceptionType>: <text>"``)."""


class WorkerCrashed(PoolError):
    """The worker died while running the task (or workers cannot be started)."""


def default_workers() -> int:
    env = os.environ.get("SDLAB_REWARD_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(2, os.cpu_count() or 1))


# ----------------------------------------------------------------------------- worker side


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

            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = max(int(memory_limit), _vm_size() + MIN_HEADROOM)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (ImportError, ValueError, OSError):
            pass
    if max_str_digits is not None and hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(int(max_str_digits))


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # str() of a huge object can itself fail
        text = ""
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg[:300]


def _worker_main(conn, memory_limit, max_str_digits, preload) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        pass
    _apply_limits(memory_limit, max_str_digits)
    for name in preload:
        try:
            __import__(name)
        except Exception:
            pass
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        except Exception as exc:  # the task could not be unpickled
            out = ("err", "cannot load task: " + _describe(exc))
        else:
            if msg is None:
                break
            fn, args = msg
            try:
                out = ("ok", fn(*args))
            except MemoryError:
                out = ("err", "MemoryError")
            except BaseException as exc:  # noqa: BLE001 - report everything, keep serving
                out = ("err", _describe(exc))
        try:
            conn.send(out)
        except Exception as exc:
            try:
                conn.send(("err", "cannot send result: " + _describe(exc)))
            except Exception:
                break


# Small tasks for tests and health checks (module level so that workers can import them).


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


# ----------------------------------------------------------------------------- parent side


class _Task:
    __slots__ = ("fn", "args", "timeout", "future", "claimed")

    def __init__(self, fn, args, timeout, future):
        self.fn, self.args, self.timeout, self.future = fn, args, timeout, future
        self.claimed = False  # future already moved to RUNNING (a re-queued task)

    def claim(self) -> bool:
        """Move the future to RUNNING; False if the caller cancelled it while queued."""
        if not self.claimed:
            if not self.future.set_running_or_notify_cancel():
                return False
            self.claimed = True
        return True


class _Worker:
    __slots__ = ("proc", "conn", "ready", "task", "deadline", "started", "dead")

    def __init__(self, proc, conn):
        self.proc, self.conn = proc, conn
        self.ready = False
        self.task: _Task | None = None
        self.deadline = math.inf
        self.started = time.monotonic()
        self.dead = False


class VerifierPool:
    """Persistent worker processes; each task gets a hard wall-clock deadline."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        max_str_digits: int | None = DEFAULT_MAX_STR_DIGITS,
        context: str | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        start_timeout: float = 120.0,
    ):
        self.size = int(workers) if workers else default_workers()
        if self.size < 1:
            raise ValueError("workers must be >= 1")
        self.memory_limit = memory_limit
        self.max_str_digits = max_str_digits
        self.context_name = context
        self.preload = tuple(preload)
        self.start_timeout = float(start_timeout)
        self._lock = threading.Lock()
        self._all_ready = threading.Condition(self._lock)
        self._queue: collections.deque[_Task] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_r = self._wake_w = -1
        self._ctx = None
        self._n_ready = 0
        self._stats = collections.Counter()

    # ------------------------------------------------------------------ public API
    def submit(self, fn: Callable, *args, timeout: float) -> Future:
        """Run ``fn(*args)`` in a worker; the future fails with :class:`TaskTimeout` once the
        task has run ``timeout`` seconds (counted from dispatch to a ready worker)."""
        fut: Future = Future()
        with self._lock:
            self._ensure_started()
            self._queue.append(_Task(fn, args, float(timeout), fut))
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
                out.append((False, WorkerCrashed("verifier pool stalled")))
            elif fut.exception() is not None:
                out.append((False, fut.exception()))
            else:
                out.append((True, fut.result()))
        return out

    def warmup(self, timeout: float | None = None) -> bool:
        """Start the workers and wait until all of them are ready (True) or ``timeout``."""
        with self._lock:
            self._ensure_started()
        self._wake()
        end = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        with self._all_ready:
            while self._n_ready < self.size and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._all_ready.wait(left)
            return self._n_ready >= self.size

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
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            pending = list(self._queue)
            self._queue.clear()
        for task in pending:
            if not task.future.done():
                task.future.set_exception(PoolError("verifier pool shut down"))
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
            raise PoolError("verifier pool is shut down")
        if self._thread is None:
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

    def _context(self):
        if self._ctx is None:
            name = self.context_name
            if name is None:
                # a forked child cannot use a fork server its parent started (waitpid fails)
                usable = "forkserver" in mp.get_all_start_methods() and not _FORKED_CHILD
                name = "forkserver" if usable else "spawn"
            ctx = mp.get_context(name)
            if name == "forkserver":
                # import math-verify once in the fork server, so replacements start fast
                ctx.set_forkserver_preload(["__main__", *self.preload])
            self._ctx = ctx
        return self._ctx

    def _spawn(self) -> _Worker:
        ctx = self._context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child_conn, self.memory_limit, self.max_str_digits, self.preload),
            name="sdlab-verifier",
            daemon=True,
        )
        try:
            proc.start()
        except BaseException:
            parent_conn.close()
            raise
        finally:
            child_conn.close()
        self._stats["spawned"] += 1
        return _Worker(proc, parent_conn)

    def _kill(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        if w.ready:
            with self._lock:
                self._n_ready -= 1
        try:
            w.proc.kill()
        except Exception:
            pass
        try:
            w.proc.join(1.0)
        except Exception:
            pass
        try:
            w.conn.close()
        except Exception:
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
        if task is None:
            return
        if ok:
            task.future.set_result(value)
        else:
            task.future.set_exception(value)

    def _run(self) -> None:  # the manager thread
        workers: list[_Worker] = []
        start_failures = 0
        retry_at = 0.0
        try:
            while not self._closed:
                now = time.monotonic()
                # keep the pool full (with a back-off after failed starts)
                if now >= retry_at:
                    while len(workers) < self.size:
                        try:
                            workers.append(self._spawn())
                        except Exception as exc:  # cannot start processes at all
                            start_failures += 1
                            retry_at = now + min(5.0, 0.2 * start_failures)
                            if start_failures >= 3:
                                self._fail_queued(WorkerCrashed("cannot start verifier workers: " + _describe(exc)))
                            break
                # dispatch queued tasks to idle ready workers
                for w in workers:
                    if w.ready and w.task is None and not w.dead:
                        task = self._next_task()
                        if task is None:
                            break
                        try:
                            w.conn.send((task.fn, task.args))
                        except (OSError, EOFError):  # worker died while idle: retry elsewhere
                            with self._lock:
                                self._queue.appendleft(task)
                            self._kill(w)
                            continue
                        except Exception as exc:  # not picklable
                            task.future.set_exception(TaskFailed("cannot send task: " + _describe(exc)))
                            continue
                        w.task, w.deadline = task, time.monotonic() + task.timeout
                workers = [w for w in workers if not w.dead]
                # sleep until a message, a wake-up, a deadline or a start timeout
                limits = [w.deadline for w in workers if w.task is not None]
                limits += [w.started + self.start_timeout for w in workers if not w.ready]
                if len(workers) < self.size:
                    limits.append(retry_at)
                wait_s = None if not limits else max(0.0, min(limits) - time.monotonic())
                by_conn = {w.conn: w for w in workers}
                ready = _mp_wait([self._wake_r, *by_conn], timeout=wait_s)
                for obj in ready:
                    if obj == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        continue
                    w = by_conn[obj]
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        code = w.proc.exitcode
                        self._kill(w)
                        code = w.proc.exitcode if code is None else code
                        if w.task is not None:
                            self._stats["crashes"] += 1
                            self._finish(w, False, WorkerCrashed(f"verifier worker died (exit code {code})"))
                        elif not w.ready:
                            start_failures += 1
                            retry_at = time.monotonic() + min(5.0, 0.2 * start_failures)
                            if start_failures >= 3:
                                self._fail_queued(WorkerCrashed(f"verifier workers die at start (exit code {code})"))
                        continue
                    except Exception as exc:  # result could not be unpickled
                        self._finish(w, False, TaskFailed("cannot load result: " + _describe(exc)))
                        continue
                    kind = msg[0]
                    if kind == "ready":
                        w.ready = True
                        start_failures = 0
                        with self._lock:
                            self._n_ready += 1
                            self._all_ready.notify_all()
                    elif kind == "ok":
                        self._stats["completed"] += 1
                        self._finish(w, True, msg[1])
                    else:
                        self._stats["failed"] += 1
                        self._finish(w, False, TaskFailed(msg[1]))
                # enforce deadlines
                now = time.monotonic()
                for w in workers:
                    if w.dead:
                        continue
                    if w.task is not None and now >= w.deadline:
                        timeout = w.task.timeout
                        self._kill(w)
                        self._stats["timeouts"] += 1
                        self._finish(w, False, TaskTimeout(f"verifier task exceeded {timeout:g}s"))
                    elif not w.ready and now - w.started > self.start_timeout:
                        self._kill(w)
                        start_failures += 1
                        if start_failures >= 3:
                            self._fail_queued(WorkerCrashed("verifier workers do not start"))
                workers = [w for w in workers if not w.dead]
        except BaseException as exc:  # never leave callers waiting
            self._fail_queued(WorkerCrashed("verifier pool manager failed: " + _describe(exc)))
            for w in workers:
                if w.task is not None and not w.task.future.done():
                    self._finish(w, False, WorkerCrashed("verifier pool manager failed"))
            with self._lock:
                self._thread = None if not self._closed else self._thread
            raise
        finally:
            for w in workers:
                if not w.dead and w.task is None and w.ready:
                    try:
                        w.conn.send(None)
                    except Exception:
                        pass
            for w in workers:
                if w.task is not None and not w.task.future.done():
                    self._finish(w, False, PoolError("verifier pool shut down"))
                if not w.dead:
                    try:
                        w.proc.join(0.2)
                    except Exception:
                        pass
                    self._kill(w)
            if self._closed:
                self._fail_queued(PoolError("verifier pool shut down"))


# ----------------------------------------------------------------------------- default pool

_DEFAULT: VerifierPool | None = None
_DEFAULT_KWARGS: dict = {}
_DEFAULT_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False
_FORKED_CHILD = False


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
    """Set the arguments of the default pool (``workers``, ``memory_limit``, ...); an existing
    default pool is shut down and recreated on next use."""
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
    # parent's workers: forget the default pool; the child starts its own (spawn) if it grades
    global _DEFAULT, _DEFAULT_LOCK, _FORKED_CHILD
    _DEFAULT = None
    _DEFAULT_LOCK = threading.Lock()
    _FORKED_CHILD = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
