r"""Verifier pool start-up and latency: cold start, per-call latency, kill + respawn.

Each repetition runs in a fresh interpreter (so imports and worker start-up are really cold):

* ``import``      -- ``import sdlab.rewards`` in the parent;
* ``first_grade`` -- a fresh process's first ``grade`` that needs math-verify (default pool,
  started lazily by that call; includes the gold check);
* ``cold_start``  -- in another fresh process, ``VerifierPool(workers).warmup()`` (all
  workers ready);
* ``echo_ms``     -- median round trip of a trivial task on a warm pool;
* ``grade_ms``    -- median ``grade`` that goes to math-verify (distinct pairs, no memo), on
  the warm default pool (all workers, spares included, started);
* ``shutdown``    -- ``pool.shutdown()`` of the warm pool;
* ``respawn``     -- a one-worker pool without a spare: a task killed at a 0.2 s deadline,
  then the next task: the time from the kill to that task's result (one replacement started);
* ``respawn_spare`` -- the same with one spare worker (``spares=1``, the default since the
  workers became fresh interpreters);
* ``process_grade`` -- wall time of the whole ``first_grade`` process (interpreter start,
  import, first grade, exit).

    python benchmarks/grader_pool.py [--reps 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _tasks():
    # (sdlab.testing imported torch at the top before the tasks moved there: import it after
    # the cold-start measurement)
    try:
        from sdlab.testing import pool_tasks as tasks
    except ImportError:  # before the test tasks moved out of the library
        from sdlab.rewards import pool as tasks
    return tasks


def child(workers: int, first: str) -> dict:
    out = {}
    t0 = time.perf_counter()
    import sdlab.rewards as R

    out["import"] = time.perf_counter() - t0
    if first == "grade":  # the default pool, started lazily by the first grade
        t0 = time.perf_counter()
        assert R.grade(r"\boxed{\sqrt{12}}", r"2\sqrt{3}", timeout=30).correct
        out["first_grade"] = time.perf_counter() - t0
        return out

    t0 = time.perf_counter()
    pool = R.VerifierPool(workers)
    assert pool.warmup(120)
    out["cold_start"] = time.perf_counter() - t0
    tasks = _tasks()
    default = R.get_pool()
    assert default.warmup(120)
    for p in (pool, default):  # steady state: spares (if any) started too, nothing else starting
        end = time.monotonic() + 60
        while p.stats()["ready_workers"] < p.size + getattr(p, "spares", 0) and time.monotonic() < end:
            time.sleep(0.02)

    lat = []
    for i in range(40):
        t0 = time.perf_counter()
        [(ok, v)] = pool.run_many(tasks.echo_task, [(i,)], timeout=10)
        lat.append(time.perf_counter() - t0)
        assert ok and v == i
    out["echo_ms"] = 1000 * statistics.median(lat)

    lat = []
    for i in range(20):
        t0 = time.perf_counter()
        r = R.grade(rf"\boxed{{x^2 + {i + 3}x}}", rf"x(x + {i + 3})", timeout=10)
        lat.append(time.perf_counter() - t0)
        assert r.correct, r
    out["grade_ms"] = 1000 * statistics.median(lat)

    t0 = time.perf_counter()
    pool.shutdown()
    out["shutdown"] = time.perf_counter() - t0

    for key, kwargs in (("respawn", {"spares": 0}), ("respawn_spare", {"spares": 1})):
        try:
            one = R.VerifierPool(1, **kwargs)
        except TypeError:  # before spares existed: the plain pool is the no-spare case
            if kwargs["spares"]:
                continue
            one = R.VerifierPool(1)
        with one:  # one worker: without a spare the next task waits for the replacement
            assert one.warmup(120)
            end = time.monotonic() + 60
            while one.stats()["ready_workers"] < 1 + kwargs["spares"] and time.monotonic() < end:
                time.sleep(0.02)
            [(ok, _)] = one.run_many(tasks.sleep_task, [(30,)], timeout=0.2)
            assert not ok
            t0 = time.perf_counter()
            [(ok, v)] = one.run_many(tasks.echo_task, [("x",)], timeout=30)
            out[key] = time.perf_counter() - t0
            assert ok
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child", choices=["pool", "grade"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.workers, args.child)))
        return
    runs = []
    for _ in range(args.reps):
        run = {}
        for first in ("grade", "pool"):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, __file__, "--child", first, "--workers", str(args.workers)],
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                sys.exit(p.stderr)
            run.update(json.loads(p.stdout.strip().splitlines()[-1]))
            if first == "grade":
                run["process_grade"] = time.perf_counter() - t0
        runs.append(run)
    for key in runs[0]:
        vals = [r[key] for r in runs]
        unit = "ms" if key.endswith("_ms") else "s"
        print(f"{key:12s} median {statistics.median(vals):8.3f} {unit}   runs " + " ".join(f"{v:.3f}" for v in vals))


if __name__ == "__main__":
    main()
