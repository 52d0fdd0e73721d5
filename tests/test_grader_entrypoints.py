r"""The grader from every kind of entry point: the caller's code runs once, verdicts are right,
nothing hangs, and a verifier that cannot run raises instead of grading.

Each case runs a small program in a fresh interpreter (with a timeout: the bound on a hang).
The program appends a line to a marker file when its body runs -- the test counts the lines
(a worker that re-ran the caller's ``__main__`` would add lines) -- and prints
``RESULT <json>`` with its verdicts.  Cases: a script without a main guard, stdin
(``python - < f.py``), ``python -c``, ``python -m``, several threads, ``exec`` in a fresh namespace and in a
replaced ``__main__`` (how notebooks / IPython run cells), ``torchrun --nproc_per_node=2``
(gloo), and a parent killed with SIGKILL (its workers must die too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import sdlab
from sdlab.rewards import VerifierPool, VerifierUnavailable, clear_cache, configure_pool, grade, grade_many
from sdlab.testing import pool_tasks

ROOT = Path(sdlab.__file__).resolve().parents[1]
BOUND = 60  # seconds: a case that runs longer is a hang

# Every comparison here goes to math-verify (no sympy-free fast path decides it).
BODY = textwrap.dedent(r'''
    import json, os
    with open(os.environ["SDLAB_TEST_MARK"], "a") as f:
        f.write(f"{os.getpid()}\n")
    from sdlab.rewards import get_pool, grade, grade_many
    T = 20.0
    got = [grade(r"\boxed{\sqrt{12}}", r"2\sqrt{3}", timeout=T).correct,
           grade(r"\boxed{1/2}", "0.5", timeout=T).correct,
           grade(r"\boxed{x+2}", "x+3", timeout=T).correct]
    got += [r.correct for r in grade_many([r"\boxed{2\sqrt{3}}", r"\boxed{0.5}", r"\boxed{x^2}"],
                                          [r"\sqrt{12}", r"\frac{1}{2}", "x^3"], timeout=T)]
    print("RESULT " + json.dumps({"got": got, "pids": get_pool().worker_pids()}), flush=True)
''')
EXPECTED = [True, True, False, True, True, False]

# The observed hang: a no-guard script with 31 calls.
BODY_31 = BODY + textwrap.dedent(r'''
    extra = [grade(rf"\boxed{{x^2+{i}x}}", rf"x(x+{i})", timeout=T).correct for i in range(1, 32)]
    print("RESULT " + json.dumps({"got": extra}), flush=True)
''')

BODY_THREADS = textwrap.dedent(r'''
    import json, os, threading
    from concurrent.futures import ThreadPoolExecutor
    with open(os.environ["SDLAB_TEST_MARK"], "a") as f:
        f.write(f"{os.getpid()}\n")
    from sdlab.rewards import grade, grade_many

    def work(i):
        a = grade(rf"\boxed{{\sqrt{{{4 * i * i * 3}}}}}", rf"{2 * i}\sqrt{{3}}", timeout=20).correct
        b = grade(rf"\boxed{{{i}/2}}", f"{i / 2}", timeout=20).correct
        c = [r.correct for r in grade_many([rf"\boxed{{x+{i}}}", rf"\boxed{{x+{i}}}"], [f"{i}+x", f"x+{i + 1}"],
                                           timeout=20)]
        return [a, b] + c == [True, True, True, False]

    with ThreadPoolExecutor(6) as ex:
        ok = list(ex.map(work, range(1, 13)))
    print("RESULT " + json.dumps({"got": ok, "threads": threading.active_count()}), flush=True)
''')

BODY_TORCHRUN = textwrap.dedent(r'''
    import json, os
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with open(os.environ["SDLAB_TEST_MARK"], "a") as f:
        f.write(f"{rank} {os.getpid()}\n")
    from sdlab.rewards import grade, grade_many
    got = [grade(r"\boxed{\sqrt{12}}", r"2\sqrt{3}", timeout=20).correct,
           grade(r"\boxed{1/2}", "0.5", timeout=20).correct,
           grade(rf"\boxed{{x+{rank + 2}}}", f"x+{rank + 3}", timeout=20).correct]
    got += [r.correct for r in grade_many([r"\boxed{2\sqrt{3}}", r"\boxed{0.5}", r"\boxed{x^2}"],
                                          [r"\sqrt{12}", r"\frac{1}{2}", "x^3"], timeout=20)]
    n = torch.tensor([sum(got)])
    dist.all_reduce(n)
    with open(os.environ["SDLAB_TEST_MARK"] + f".rank{rank}", "w") as f:  # ranks share stdout
        f.write("RESULT " + json.dumps({"rank": rank, "got": got, "total": int(n)}) + "\n")
    dist.destroy_process_group()
''')

# How notebooks run cells: exec in a fresh namespace, and in a replaced __main__ module with
# no __file__ (IPython's interactive namespace).
EXEC_RUNNER = textwrap.dedent('''
    import sys, types
    code = compile(open(sys.argv[1]).read(), "<cell>", "exec")
    exec(code, {"__name__": "cell"})
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    exec(code, main.__dict__)
''')


def _env(tmp_path: Path, workers: int = 1) -> dict:
    # one worker, no spare: these cases are about entry points, and a 2-core machine runs them
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["SDLAB_TEST_MARK"] = str(tmp_path / "mark")
    env["SDLAB_REWARD_WORKERS"] = str(workers)
    env["SDLAB_REWARD_SPARES"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args, tmp_path: Path, *, stdin: str | None = None, timeout: float = BOUND, workers: int = 1):
    t0 = time.monotonic()
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=_env(tmp_path, workers), cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args[:3]} hung: no exit within {timeout}s\n{exc.stdout}\n{exc.stderr}")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    mark = tmp_path / "mark"
    lines = mark.read_text().splitlines() if mark.exists() else []
    return results, lines, elapsed, proc


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _gone(pids, wait: float = 5.0) -> bool:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _check(results, lines, n_runs=1):
    assert len(lines) == n_runs, f"the body ran {len(lines)} times, expected {n_runs}"
    assert len(results) >= n_runs
    for res in results[:n_runs]:
        assert res["got"] == EXPECTED, res
        assert len(res["pids"]) == 1
        assert _gone(res["pids"]), "worker processes outlived their parent"


def test_script_without_main_guard(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(BODY_31)
    results, lines, elapsed, _ = _run([sys.executable, str(script)], tmp_path)
    _check(results, lines)
    assert results[1]["got"] == [True] * 31


def test_stdin(tmp_path):
    results, lines, _, _ = _run([sys.executable, "-"], tmp_path, stdin=BODY)
    _check(results, lines)


def test_dash_c(tmp_path):
    results, lines, _, _ = _run([sys.executable, "-c", BODY], tmp_path)
    _check(results, lines)


def test_dash_m(tmp_path):
    (tmp_path / "entry_mod.py").write_text(BODY)
    results, lines, _, _ = _run([sys.executable, "-m", "entry_mod"], tmp_path)
    _check(results, lines)


def test_threads(tmp_path):
    script = tmp_path / "threads.py"
    script.write_text(BODY_THREADS)
    results, lines, _, _ = _run([sys.executable, str(script)], tmp_path, workers=2)
    assert len(lines) == 1
    assert results[0]["got"] == [True] * 12


def test_exec_namespaces(tmp_path):
    cell = tmp_path / "cell.py"
    cell.write_text(BODY)
    results, lines, _, _ = _run([sys.executable, "-c", EXEC_RUNNER, str(cell)], tmp_path)
    _check(results, lines, n_runs=2)


def test_torchrun_two_ranks(tmp_path):
    try:
        import torch.distributed as dist
    except ImportError:
        pytest.skip("torch is not installed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is unavailable")
    script = tmp_path / "ranks.py"
    script.write_text(BODY_TORCHRUN)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    _, lines, _, proc = _run(args, tmp_path, timeout=2 * BOUND)
    assert sorted(line.split()[0] for line in lines) == ["0", "1"], proc.stdout + proc.stderr
    results = [json.loads((tmp_path / f"mark.rank{r}").read_text()[len("RESULT "):]) for r in (0, 1)]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for r in results:
        assert r["got"] == EXPECTED and r["total"] == 2 * sum(EXPECTED)


def test_workers_die_with_a_killed_parent(tmp_path):
    body = BODY + "import time\ntime.sleep(120)\n"
    env = _env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", body], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = ""
        end = time.monotonic() + BOUND
        while not line.startswith("RESULT ") and time.monotonic() < end:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("RESULT "), "the program did not report"
        pids = json.loads(line[len("RESULT "):])["pids"]
        assert pids and all(_alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _gone(pids), "workers survived a SIGKILL-ed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ----------------------------------------------------------------------------- cannot run


BROKEN = [
    pytest.param({"python": "/nonexistent/python3"}, "cannot start verifier workers", id="no_interpreter"),
    pytest.param({"python": "/bin/false"}, "die at start (exit code 1", id="interpreter_exits"),
    pytest.param({"preload": ("sdlab_no_such_module",)}, "cannot import sdlab_no_such_module", id="import_error"),
    pytest.param({"startup_check": "sdlab.testing.pool_tasks:failing_check"}, "broken on purpose", id="self_test"),
]


@pytest.mark.parametrize("kwargs, cause", BROKEN)
def test_worker_that_cannot_start_raises(kwargs, cause):
    clear_cache()
    configure_pool(**kwargs)
    try:
        t0 = time.monotonic()
        with pytest.raises(VerifierUnavailable, match="the math verifier cannot run") as info:
            grade(r"\boxed{\sqrt{12}}", r"2\sqrt{3}", timeout=5)
        assert cause in str(info.value)
        assert time.monotonic() - t0 < 20
        with pytest.raises(VerifierUnavailable):
            grade_many([r"\boxed{x+2}", r"\boxed{1/2}"], ["x+3", "0.5"], timeout=5)
        assert grade(r"\boxed{2}", "2", "strict").correct  # no workers needed
    finally:
        configure_pool()
        clear_cache()


def test_broken_interpreter_stderr_is_quoted(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ImportError: libpython is gone' >&2\nexit 3\n")
    fake.chmod(0o755)
    with VerifierPool(1, python=str(fake)) as pool:
        assert not pool.warmup(20)
        assert "exit code 3" in pool.unavailable and "libpython is gone" in pool.unavailable
        [(ok, exc)] = pool.run_many(pool_tasks.echo_task, [(1,)], timeout=5)
        assert not ok and isinstance(exc, VerifierUnavailable) and "libpython is gone" in str(exc)


def test_no_guard_script_with_broken_workers_raises(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(textwrap.dedent(r'''
        import json, os
        with open(os.environ["SDLAB_TEST_MARK"], "a") as f:
            f.write("x\n")
        from sdlab.rewards import VerifierUnavailable, configure_pool, grade
        configure_pool(python="/bin/false")
        try:
            r = grade(r"\boxed{\sqrt{12}}", r"2\sqrt{3}", timeout=5)
            print("RESULT " + json.dumps({"raised": False, "reason": r.reason}))
        except VerifierUnavailable as exc:
            print("RESULT " + json.dumps({"raised": True, "message": str(exc)}))
    '''))
    results, lines, _, _ = _run([sys.executable, str(script)], tmp_path)
    assert len(lines) == 1 and results[0]["raised"], results


def test_protocol_survives_prints_and_bad_tasks():
    with VerifierPool(1, spares=0) as pool:
        assert pool.warmup(60)
        assert pool.run_many(pool_tasks.print_task, [("noise",)], timeout=10) == [(True, "noise")]
        assert pool.run_many(pool_tasks.echo_task, [((1, "a"),)], timeout=10) == [(True, [1, "a"])]  # JSON lists
        [(ok, exc)] = pool.run_many(lambda: 1, [()], timeout=10)
        assert not ok and "not importable by name" in str(exc)
        [(ok, exc)] = pool.run_many(pool_tasks.echo_task, [(object(),)], timeout=10)
        assert not ok and "cannot send task" in str(exc)
        assert pool.run_many(pool_tasks.echo_task, [("still fine",)], timeout=10) == [(True, "still fine")]
        assert pool.stats()["spawned"] == 1


def test_library_does_not_import_sdlab_testing():
    import ast

    offenders = []
    for path in (ROOT / "sdlab").rglob("*.py"):
        if "testing" in path.relative_to(ROOT / "sdlab").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.level == 0 else []
                if node.level and "testing" in node.module.split("."):
                    names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n == "sdlab.testing" or n.startswith("sdlab.testing.")
                          or (n.split(".")[0] == "testing")]
    assert not offenders, offenders
