r"""sdlab.rewards: extraction, normalisation, graders, feedback, gold validation, the pool."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sdlab.rewards import (
    FORMAT_FEEDBACK,
    GRADERS,
    INCORRECT_FEEDBACK,
    TRUNCATION_FEEDBACK,
    GoldParseError,
    GradeResult,
    TaskFailed,
    TaskTimeout,
    VerifierPool,
    VerifierUnavailable,
    check_answer,
    clear_cache,
    exact_value,
    extract_answer,
    extract_answer_line,
    extract_boxed,
    get_pool,
    grade,
    grade_many,
    normalize_answer,
    summarize,
)
from sdlab.testing import pool_tasks

T = 2.0  # per-sample deadline used in these tests


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    assert get_pool().warmup(60)
    yield


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"The answer is \boxed{5}.", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\frac{a^{2}}{b_{1}}} done", r"\frac{a^{2}}{b_{1}}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\boxed{840} and \boxed{840}", "840"),
        (r"\fbox{7}", "7"),
        (r"so $\boxed 5$", "5"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{ 12 }", "12"),
        (r"\boxed{", None),
        (r"\boxed{5} but then \boxed{6", None),  # unterminated last box: no answer
        (r"The answer is \boxed{}", None),
        (r"\boxed{   }", None),
        ("", None),
        ("no box here", None),
        (r"\boxedx{5}", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_answer_line_and_priority():
    assert extract_answer_line("Answer: 3\nmore\nanswer: 27") == "27"
    assert extract_answer_line("Final Answer: $42$") == "$42$"
    assert extract_answer_line("nothing") is None
    assert extract_answer("Answer: 3\nso \\boxed{4}") == "4"  # a box wins over Answer:
    assert extract_answer("Answer: 3") == "3"
    assert extract_answer("Answer: 3 \\boxed{") is None  # broken box: no fallback to prose
    assert extract_answer(None) is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("$27$", "27"),
        ("027", "27"),
        ("27.0", "27"),
        ("+27", "27"),
        ("-0", "0"),
        ("0.50", "0.5"),
        ("1,000", "1000"),
        ("1{,}000", "1000"),
        ("$1,234,567$", "1234567"),
        (r"\text{13}", "13"),
        (r"\textbf{13}", "13"),
        (r"\mathrm{5}", "5"),
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        (r"\tfrac12", r"\frac{1}{2}"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"30^\circ", "30"),
        (r"30^{\circ}", "30"),
        ("30°", "30"),
        (r"50\%", "50"),
        ("5.", "5"),
        ("x = 5", "5"),
        (r"\boxed{\text{(A)}}", "(A)"),
        (r"\boxed{}", ""),
        ("{5}", "5"),
        (r"\(5\)", "5"),
        ("\u22123", "-3"),
        (r"\frac{1}{2}", r"\frac{1}{2}"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_value():
    assert exact_value(r"\frac{1}{2}").value == exact_value("0.5").value
    assert exact_value("0.5").has_decimal and not exact_value("1/2").has_decimal
    assert exact_value(r"\frac{1}{2006!}").value != exact_value(r"\frac{1}{2004!}").value
    assert exact_value(r"2^{10}").value == 1024
    assert exact_value(r"-2^{2}").value == -4
    unsupported_answers = (r"\sqrt{2}", "x", r"\pi", "2(3)", "2^10", r"5^{5^{5^{5^5}}}", "2**30**5", "10001!", "1,2",
                           "3!!")
    for unsupported in unsupported_answers:
        assert exact_value(unsupported) is None, unsupported


# ----------------------------------------------------------------------------- graders


def test_graders_tuple():
    assert GRADERS == ("strict", "math_verify", "paper")
    with pytest.raises(ValueError):
        grade(r"\boxed{1}", "1", "nope")


def test_half_vs_point_five():
    r = r"So the answer is \boxed{0.5}."
    assert not grade(r, r"\frac{1}{2}", "strict").correct
    assert grade(r, r"\frac{1}{2}", "math_verify", timeout=T).correct
    assert grade(r, r"\frac{1}{2}", "paper", timeout=T).correct
    assert grade(r"\boxed{\frac{1}{2}}", "0.5", "math_verify", timeout=T).correct


@pytest.mark.parametrize("grader", GRADERS)
def test_text_13_vs_13(grader):
    res = grade(r"The answer is \boxed{\text{13}}", "13", grader, timeout=T)
    assert res.correct and res.reason == "correct" and res.reward == 1.0 and res.feedback == ""
    assert res.pred == r"\text{13}"


@pytest.mark.parametrize("grader", GRADERS)
def test_basic_correct_incorrect(grader):
    ok = grade(r"... thus \boxed{840}", "840", grader, timeout=T)
    bad = grade(r"... thus \boxed{841}", "840", grader, timeout=T)
    assert ok.correct and ok.reason == "correct"
    assert not bad.correct and bad.reason == "incorrect" and bad.reward == 0.0 and bad.pred == "841"


def test_math_verify_symbolic():
    assert grade(r"\boxed{3\sqrt{2}}", r"\sqrt{18}", timeout=T).correct
    assert not grade(r"\boxed{3}", r"3\sqrt{2}", timeout=T).correct  # bare-gold parse would read "3"
    assert grade(r"\boxed{(1, 2)}", r"(1,2)", timeout=T).correct
    assert grade(r"\boxed{x^2+1}", r"1+x^2", timeout=T).correct
    assert not grade(r"\boxed{y=2x+4}", r"y=2x+3", timeout=T).correct


def test_exact_fast_path_fixes_math_verify_14():
    r = grade(r"\boxed{\frac{1}{2006!}}", r"\frac{1}{2004!}", timeout=T)
    assert not r.correct and r.reason == "incorrect"
    assert not grade(r"\boxed{\frac{1}{2^{98}}}", r"\frac{1}{2^{99}}", timeout=T).correct
    assert grade(r"\boxed{\frac{1}{2^{99}}}", r"\frac{1}{2^{99}}", timeout=T).correct
    assert grade(r"\boxed{2^{10}}", "1024", timeout=T).correct
    # decimals keep math-verify's rounding semantics (documented)
    assert grade(r"\boxed{0.333333}", r"\frac{1}{3}", timeout=T).correct
    assert not grade(r"\boxed{0.33}", r"\frac{1}{3}", timeout=T).correct


def test_pm_is_incorrect():
    for g in GRADERS:
        assert not grade(r"\boxed{\pm 2021}", "2021", g, timeout=T).correct


def test_paper_last_100_chars():
    early = r"\boxed{5}" + " and then a long discussion" * 10
    assert grade(early, "5", "math_verify", timeout=T).correct
    res = grade(early, "5", "paper", timeout=T)
    assert not res.correct and res.reason == "no_answer" and res.feedback == FORMAT_FEEDBACK
    assert grade("x" * 500 + r" final \boxed{5}", "5", "paper", timeout=T).correct
    assert grade("Answer: 5", "5", "paper").reason == "no_answer"  # paper: boxes only
    assert grade("Answer: 5", "5", "strict").correct
    assert grade("Answer: 5", "5", "math_verify", timeout=T).correct


# ----------------------------------------------------------------------------- feedback


@pytest.mark.parametrize("grader", GRADERS)
def test_feedback_strings(grader):
    assert FORMAT_FEEDBACK == ("Your answer had the wrong format. The solution must be given in the format: "
                               "\\boxed{your_answer}.")
    assert TRUNCATION_FEEDBACK == "Your response was truncated because it exceeded the maximum length."
    no_box = grade("I think it is 5", "5", grader, timeout=T)
    assert (no_box.reason, no_box.pred, no_box.feedback) == ("no_answer", None, FORMAT_FEEDBACK)
    cut = grade("Let me think about it for a long", "5", grader, truncated=True, timeout=T)
    assert (cut.reason, cut.correct, cut.feedback) == ("truncated", False, TRUNCATION_FEEDBACK)
    wrong = grade(r"\boxed{6}", "5", grader, timeout=T)
    assert wrong.feedback == INCORRECT_FEEDBACK == "Your answer is incorrect."
    assert "5" not in wrong.feedback
    oracle = grade(r"\boxed{6}", "5", grader, reveal_answer=True, timeout=T)
    assert oracle.feedback == "Your answer is incorrect. The correct answer is 5."
    right = grade(r"\boxed{5}", "5", grader, truncated=True, reveal_answer=True, timeout=T)
    assert right.correct and right.feedback == ""
    wrong_cut = grade(r"\boxed{6} and more", "5", grader, truncated=True, timeout=T)
    assert wrong_cut.reason == "incorrect" and wrong_cut.feedback == TRUNCATION_FEEDBACK


def test_grade_result_contract():
    r = GradeResult(correct=True, pred="1", reason="correct", feedback="")
    assert r.reward == 1.0
    with pytest.raises(Exception):
        r.correct = False  # frozen


# ----------------------------------------------------------------------------- gold validation


@pytest.mark.parametrize("grader", GRADERS)
@pytest.mark.parametrize("gold", ["", "   ", "$$", r"\text{}", r"\boxed{}"])
def test_empty_gold_raises(grader, gold):
    with pytest.raises(GoldParseError):
        grade(r"\boxed{}", gold, grader, timeout=T)
    with pytest.raises(GoldParseError):
        grade(r"\boxed{5}", gold, grader, timeout=T)


@pytest.mark.parametrize("grader", ["math_verify", "paper"])
def test_unparseable_gold_raises(grader):
    # normalises to "}" (non-empty) but math-verify's parse returns []
    with pytest.raises(GoldParseError):
        grade(r"\boxed{\}}", "}", grader, timeout=T)
    with pytest.raises(GoldParseError):  # even when the prediction matches it as a string
        grade("Answer: }", "}", grader, timeout=T)
    with pytest.raises(GoldParseError):  # one bad gold fails the batch (the runner relies on it)
        grade_many([r"\boxed{1}", r"\boxed{2}"], ["1", "}"], grader, timeout=T)
    assert issubclass(GoldParseError, ValueError)


# ----------------------------------------------------------------------------- grade_many


def test_grade_many_order_and_flags():
    responses = [r"\boxed{1}", r"\boxed{0.5}", "nothing", "cut off", r"\boxed{\sqrt{4}}", r"\boxed{3}"]
    golds = ["1", r"\frac12", "3", "3", "2", "4"]
    res = grade_many(responses, golds, "math_verify", truncated=[False, False, False, True, False, False], timeout=T)
    assert [r.reason for r in res] == ["correct", "correct", "no_answer", "truncated", "correct", "incorrect"]
    assert [r.reward for r in res] == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert len(grade_many([], [], timeout=T)) == 0
    assert [r.reason for r in grade_many(["a", "b"], ["1", "2"], "strict", truncated=True)] == ["truncated"] * 2
    with pytest.raises(ValueError):
        grade_many(["a"], ["1", "2"])
    with pytest.raises(ValueError):
        grade_many(["a"], ["1"], truncated=[True, False])


def test_grade_many_is_parallel_and_memoised():
    clear_cache()
    pool = get_pool()
    n = 16
    responses = [rf"\boxed{{x^{2} + {i}x}}" for i in range(n)]
    golds = [rf"x({i} + x)" for i in range(n)]
    before = pool.stats().get("submitted", 0)
    res = grade_many(responses, golds, timeout=T)
    assert all(r.correct for r in res)
    mid = pool.stats().get("submitted", 0)
    assert mid - before >= n  # every comparison went to the pool
    res2 = grade_many(responses, golds, timeout=T)
    assert [r.reason for r in res2] == [r.reason for r in res]
    assert pool.stats().get("submitted", 0) == mid  # memoised: nothing resubmitted


def test_summarize_counts():
    rs = [
        GradeResult(False, "x", "timeout", INCORRECT_FEEDBACK),
        GradeResult(False, "x", "error:boom", INCORRECT_FEEDBACK),
        GradeResult(False, "x", "rejected:power_tower", INCORRECT_FEEDBACK),
        GradeResult(False, None, "no_answer", FORMAT_FEEDBACK),
        GradeResult(False, None, "truncated", TRUNCATION_FEEDBACK),
        GradeResult(True, "1", "correct", ""),
    ]
    s = summarize(rs)
    assert s["reward/timeouts"] == 1 and s["reward/errors"] == 1 and s["reward/rejected"] == 1
    assert s["reward/no_answer"] == 1 and s["reward/truncated_no_answer"] == 1
    assert all(isinstance(v, int) for v in s.values())
    assert set(summarize([])) == set(s)


# ----------------------------------------------------------------------------- threads


def test_grade_from_threads():
    out, errors = {}, []

    def work(i):
        try:
            out[i] = grade(rf"\boxed{{\frac{{{i}}}{{2}}}}", f"{i / 2}", timeout=T).correct
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and all(out[i] for i in range(6))
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda g: grade(r"\boxed{\dfrac{2}{4}}", g, timeout=T).correct, ["0.5"] * 8))
    assert all(results)


# ----------------------------------------------------------------------------- pool


def test_pool_kills_hanging_task_and_recovers():
    with VerifierPool(1, start_timeout=60) as pool:
        assert pool.warmup(60)
        t0 = time.monotonic()
        [(ok, exc)] = pool.run_many(pool_tasks.sleep_task, [(60,)], timeout=1.0)
        elapsed = time.monotonic() - t0
        assert not ok and isinstance(exc, TaskTimeout)
        assert elapsed < 2.0
        assert pool.run_many(pool_tasks.echo_task, [(41,), (42,)], timeout=5.0) == [(True, 41), (True, 42)]
        st = pool.stats()
        assert st["timeouts"] == 1 and st["spawned"] >= 2


def test_pool_spare_replaces_a_killed_worker_at_once():
    with VerifierPool(1, spares=1) as pool:
        assert pool.warmup(60)
        end = time.monotonic() + 60
        while pool.stats()["ready_workers"] < 2 and time.monotonic() < end:  # the spare starts after
            time.sleep(0.02)
        assert pool.stats()["ready_workers"] == 2
        t0 = time.monotonic()  # the spare takes no task while the one worker is busy
        assert [ok for ok, _ in pool.run_many(pool_tasks.sleep_task, [(0.3,), (0.3,)], timeout=5)] == [True, True]
        assert time.monotonic() - t0 >= 0.6
        [(ok, exc)] = pool.run_many(pool_tasks.sleep_task, [(60,)], timeout=0.3)
        assert not ok and isinstance(exc, TaskTimeout)
        t0 = time.monotonic()
        assert pool.run_many(pool_tasks.echo_task, [(7,)], timeout=5) == [(True, 7)]
        assert time.monotonic() - t0 < 0.25  # no wait for a fresh interpreter (about 0.5 s)


def test_pool_limits():
    with VerifierPool(1, memory_limit=1 << 30) as pool:
        [(ok, exc)] = pool.run_many(pool_tasks.alloc_task, [(8 << 30,)], timeout=10)
        assert not ok and isinstance(exc, TaskFailed) and "MemoryError" in str(exc)
        [(ok, exc)] = pool.run_many(pool_tasks.int_str_task, [(10_000,)], timeout=10)
        assert not ok and "ValueError" in str(exc)
        assert pool.run_many(pool_tasks.alloc_task, [(1 << 20,)], timeout=10) == [(True, 1 << 20)]


def test_pool_shutdown():
    pool = VerifierPool(1)
    fut = pool.submit(pool_tasks.echo_task, 1, timeout=10)
    assert fut.result(30) == 1
    pool.shutdown()
    assert pool.closed
    with pytest.raises(Exception):
        pool.submit(pool_tasks.echo_task, 1, timeout=1)


def test_guard_reasons_exposed():
    assert check_answer("1" * 400) == "too_long"
    assert check_answer(r"5^{5^{5}}") == "power_tower"
    assert check_answer(r"2^{3^{4}}", gold=r"2^{3^4}") is None  # relaxed to the gold's shape
    r = grade(r"\boxed{5^{5^{5}}}", "7", timeout=T)
    assert r.reason == "rejected:power_tower" and not r.correct and r.feedback == INCORRECT_FEEDBACK


class _BrokenPool(VerifierPool):
    def _spawn(self):
        raise OSError("cannot start processes here")


def test_broken_pool_raises_not_hangs(monkeypatch):
    """A pool that cannot start processes makes grade raise VerifierUnavailable, quickly --
    never a silent correct=False."""
    from sdlab.rewards import grader as grader_mod

    broken = _BrokenPool(1)
    monkeypatch.setattr(grader_mod, "get_pool", lambda: broken)
    clear_cache()
    try:
        t0 = time.monotonic()
        with pytest.raises(VerifierUnavailable, match="cannot start processes here"):
            grade(r"\boxed{x+1}", "x+3", timeout=1.0)
        assert time.monotonic() - t0 < 10
        assert not broken.warmup(5) and "cannot start" in broken.unavailable
        t0 = time.monotonic()
        with pytest.raises(VerifierUnavailable):  # a broken pool fails fast afterwards
            grade_many([r"\boxed{x+2}", r"\boxed{y}"], ["x+3", "z"], timeout=1.0)
        assert time.monotonic() - t0 < 1.0
        assert grade(r"\boxed{5}", "5", "strict").correct  # the strict grader needs no workers
    finally:
        broken.shutdown()
        clear_cache()


def test_import_error_in_worker_raises(monkeypatch):
    """math-verify failing to import a module inside a worker, or a task that cannot be sent,
    is systemic, not a grade."""
    import functools

    from sdlab.rewards import _mv

    clear_cache()
    monkeypatch.setattr(_mv, "mv_compare", functools.partial(pool_tasks.raise_task, "ModuleNotFoundError", "antlr4"))
    with pytest.raises(VerifierUnavailable, match="antlr4"):
        grade(r"\boxed{x+1}", "x+3", timeout=T)
    monkeypatch.setattr(_mv, "mv_compare", lambda gold, pred: "equal")  # cannot be sent to a worker
    with pytest.raises(VerifierUnavailable, match="could not be sent"):
        grade(r"\boxed{x+1}", "x+3", timeout=T)
    monkeypatch.setattr(_mv, "mv_compare", functools.partial(pool_tasks.raise_task, "ValueError", "bad latex"))
    res = grade(r"\boxed{x+1}", "x+3", timeout=T)  # an exception on this answer stays a graded error
    assert res.reason == "error:ValueError: bad latex" and not res.correct
    monkeypatch.undo()
    clear_cache()


def test_worker_crash_mid_task_is_a_graded_error(monkeypatch):
    import functools

    from sdlab.rewards import _mv

    clear_cache()
    monkeypatch.setattr(_mv, "mv_compare", functools.partial(pool_tasks.crash_task))
    res = grade(r"\boxed{x+1}", "x+4", timeout=T)
    assert res.reason.startswith("error:verifier worker died") and not res.correct
    monkeypatch.undo()
    assert grade(r"\boxed{x+1}", "1+x", timeout=T).correct  # replaced; not memoised
    clear_cache()


def test_timeout_memo_respects_longer_deadlines():
    from sdlab.rewards import grader as grader_mod

    clear_cache()
    key = ("11", r"x^{3}+y")
    grader_mod._memo_put(grader_mod._memo, key, ("timeout", 0.5))
    assert grade(r"\boxed{x^{3}+y}", "11", timeout=0.5).reason == "timeout"  # remembered
    assert grade(r"\boxed{x^{3}+y}", "11", timeout=T).reason == "incorrect"  # longer deadline: re-run
    assert grader_mod._memo[key] == ("incorrect", T)


def test_forked_child_gets_its_own_pool():
    import multiprocessing as mp

    assert grade(r"\boxed{x+x}", "2x", timeout=T).correct  # the parent's pool is running
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_grade_in_child, args=(q,))
    p.start()
    p.join(60)
    assert p.exitcode == 0 and q.get(timeout=5) is True


def _grade_in_child(q):
    q.put(grade(r"\boxed{3x}", "x+2x", timeout=T).correct)
    from sdlab.rewards import shutdown_pool

    shutdown_pool()
