r"""Adversarial and regression inputs for the hardened verifier (ecosystem.md §4.9).

Every call must come back within 2x its deadline, never raise (except GoldParseError for a
bad gold) and never take the test process down.  Expected outcomes are pinned, including
the documented ones:

* repeated boxes: only the last box counts, so ``\boxed{840} and \boxed{840}`` is correct;
* ``\frac{1}{2006!}`` vs gold ``\frac{1}{2004!}``: *incorrect* (exact rational fast path;
  math-verify alone says correct, Math-Verify#14);
* interval vs inequality is asymmetric, as in math-verify: gold ``[1,2)`` with prediction
  ``1 \le x < 2`` is incorrect, gold ``1 \le x < 2`` with prediction ``[1,2)`` is correct.
"""

import functools
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sdlab.rewards import TaskTimeout, VerifierPool, _mv, clear_cache, get_pool, grade, grade_many
from sdlab.testing import pool_tasks

DEADLINE = 1.5
SLACK = 2.0 * DEADLINE

GARBAGE_65 = ("{@Neillier 1276915 4951077 ник增高人权 국 {1,1-3-10鼓励不停);5个_GENERAL2全校。 "
              "_HEADERS1 Orchestra}")
MULTILINGUAL = "这是一个答案 Это ответ 答え 정답 " * 40

# (id, response, gold, expected correct, expected reason or reason prefix or None for "any")
CASES = [
    ("mv65_tower_frac", r"\boxed{\dfrac{5^{(5^{(5^{(5^5)})} - 4)} - 5}{16}}", "5", False, "rejected:"),
    ("mv65_tower_left_right", r"\boxed{\dfrac{5^{\left(5^{\left(5^{\left(5^5\right)}\right)} - 4\right)} - 5}{16}}",
     "5", False, "rejected:"),
    ("tower_5", r"\boxed{5^{5^{5^{5^5}}}}", "5", False, "rejected:power_tower"),
    ("python_tower", r"\boxed{2**30**5}", "5", False, "rejected:power_tower"),
    ("python_tower_answer_line", "Answer: 2**30**5", "5", False, "rejected:power_tower"),
    ("ten_tower", r"\boxed{10^{10^{10}}}", "5", False, "rejected:power_tower"),
    ("e_tower", r"\boxed{e^{e^{e}}}", "5", False, "rejected:power_tower"),
    ("nested_exp_sin", r"\boxed{\sin(\exp(\exp(\exp(3))))}", "5", False, "timeout"),
    ("nested_tan", r"\boxed{\tan(\tan(\tan(\tan(\tan(\tan(1))))))}", "1", False, None),
    ("trig_simplify_blowup", r"\boxed{(\sin x + \cos x)^{40} - (\sin x - \cos x)^{40}}", "0", False, None),
    ("gamma_huge", r"\boxed{\Gamma(10^{10})}", "5", False, None),
    ("binomial_huge", r"\boxed{\binom{10^{9}}{10^{5}}}", "5", False, None),
    ("big_power_expand", r"\boxed{(x+1)^{9999}}", "x", False, None),
    ("unterminated_box", "\\boxed{", "5", False, "no_answer"),
    ("unterminated_after_good_box", r"\boxed{5} or maybe \boxed{\frac{1}{2}", "5", False, "no_answer"),
    ("empty_response", "", "5", False, "no_answer"),
    ("empty_box", r"The answer is \boxed{}", "5", False, "no_answer"),
    ("repeated_boxes_and", r"\boxed{840} and \boxed{840}", "840", True, "correct"),
    ("repeated_boxes_check", r"Final: \boxed{840}. Check: \boxed{840}", "840", True, "correct"),
    ("repeated_boxes_adjacent", r"\boxed{840}\boxed{840}", "840", True, "correct"),
    ("repeated_boxes_last_wins", r"\boxed{840} no wait \boxed{841}", "840", False, "incorrect"),
    ("text_13", r"\boxed{\text{13}}", "13", True, "correct"),
    ("factorial_2006_vs_2004", r"\boxed{\frac{1}{2006!}}", r"\frac{1}{2004!}", False, "incorrect"),
    ("pow2_98_vs_99", r"\boxed{\frac{1}{2^{98}}}", r"\frac{1}{2^{99}}", False, "incorrect"),
    ("pm_2021", r"\boxed{\pm 2021}", "2021", False, "incorrect"),
    ("huge_literal", r"\boxed{" + "9" * 120 + "}", "5", False, "rejected:literal_too_long"),
    ("huge_literal_very_long", r"\boxed{" + "9" * 100_000 + "}", "5", False, "rejected:too_long"),
    ("huge_exponent", r"\boxed{2^{99999999}}", "5", False, "rejected:exponent_too_large"),
    ("huge_factorial", r"\boxed{100000!}", "5", False, "rejected:factorial_too_large"),
    ("factorial_of_power", r"\boxed{(10^{10})!}", "5", False, "rejected:factorial_of_expression"),
    ("garbage_mv65_boxed", r"\boxed" + GARBAGE_65, "4951077", False, "no_answer"),  # inner "{" unclosed
    ("garbage_mv65_answer_line", "Answer: " + GARBAGE_65, "4951077", False, "rejected:non_math_text"),
    ("garbage_mv65_balanced", r"\boxed{" + GARBAGE_65.replace("{1,", "(1,") + "}", "4951077", False,
     "rejected:non_math_text"),
    ("garbage_multilingual_no_box", MULTILINGUAL, "5", False, "no_answer"),
    ("garbage_multilingual_answer_line", "Answer: " + MULTILINGUAL, "5", False, "rejected:"),
    ("very_long_response", "lorem ipsum " * 100_000 + r"\boxed{42}", "42", True, "correct"),
    ("very_long_answer", r"\boxed{" + "x+" * 5000 + "1}", "5", False, "rejected:too_long"),
    ("deep_braces", r"\boxed{" + "{" * 30 + "1" + "}" * 30 + "}", "1", True, "correct"),
    ("deep_braces_wrong", r"\boxed{" + "{" * 30 + "2" + "}" * 30 + "}", "1", False, None),
    ("deep_parens", r"\boxed{" + "(" * 40 + "x" + ")" * 40 + "}", "1", False, "rejected:nesting_too_deep"),
    ("deep_braces_unbalanced", r"\boxed{" + "{" * 5000, "1", False, "no_answer"),
    ("answer_tags_empty", "<answer></answer>", "5", False, "no_answer"),
    ("think_tags_no_box", "<think></think>a", "a", False, "no_answer"),
    ("options_listed", r"\boxed{A, B, C}", "A", False, "incorrect"),
    ("equation_other_rhs", r"\boxed{x+y=3}", "x+y=2", False, "incorrect"),
    ("line_not_zero", r"\boxed{0}", "3x-y+13=0", False, "incorrect"),
    ("line_same", r"\boxed{3*x-1*y+13=0}", "3x-y+13=0", True, "correct"),
    ("two_equations", r"\boxed{x=1, y=2}", "x=1, y=3", False, "incorrect"),
    ("interval_gold_inequality_pred", r"\boxed{1 \le x < 2}", "[1,2)", False, "incorrect"),
    ("inequality_gold_interval_pred", r"\boxed{[1,2)}", r"1 \le x < 2", True, "correct"),
    ("division_by_zero", r"\boxed{\frac{1}{0}}", "5", False, None),
    ("control_chars", "\\boxed{\x00\x01\x7f}", "5", False, None),
    ("many_powers", r"\boxed{" + "*".join(["2^{2}"] * 20) + "}", "5", False, "rejected:too_many_powers"),
    ("half_decimal", r"\boxed{0.5}", r"\frac{1}{2}", True, "correct"),
]


@pytest.fixture(scope="module", autouse=True)
def warm():
    clear_cache()
    assert get_pool().warmup(60)
    # validate every gold once, so each timed call measures only its own comparison
    for gold in sorted({c[2] for c in CASES}):
        grade(r"\boxed{0}", gold, timeout=10)
    yield


def test_enough_cases():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def _check(res, correct, reason):
    assert res.correct is correct, res
    if reason is not None:
        assert res.reason == reason or (reason.endswith(":") and res.reason.startswith(reason)), res
    if not correct:
        assert res.reward == 0.0 and res.feedback != ""


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_adversarial_within_deadline(case):
    _, response, gold, correct, reason = case
    t0 = time.monotonic()
    res = grade(response, gold, "math_verify", timeout=DEADLINE)
    elapsed = time.monotonic() - t0
    _check(res, correct, reason)
    assert elapsed < SLACK, f"{elapsed:.2f}s"


@pytest.mark.parametrize("grader", ["strict", "paper"])
def test_adversarial_other_graders_survive(grader):
    responses = [c[1] for c in CASES]
    golds = [c[2] for c in CASES]
    t0 = time.monotonic()
    res = grade_many(responses, golds, grader, timeout=DEADLINE)
    assert len(res) == len(CASES)
    for case, r in zip(CASES, res):
        assert isinstance(r.correct, bool) and r.reason, (case[0], r)
        if case[3]:  # documented-correct cases stay correct (the long one has its box at the end)
            assert r.correct or grader == "strict", (case[0], r)
        if case[4] and case[4].startswith("rejected:"):
            assert not r.correct
    # memoised from the math_verify run: nothing slow is re-run
    assert time.monotonic() - t0 < 4 * SLACK


def test_adversarial_from_worker_threads():
    """No signals in the parent: grading works from non-main threads (Math-Verify#50/#55)."""
    subset = [c for c in CASES if c[4] != "timeout"]
    errors = []

    def work(case):
        try:
            return grade(case[1], case[2], timeout=DEADLINE)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
            raise

    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(work, subset))
    assert not errors
    for case, res in zip(subset, results):
        _check(res, case[3], case[4])
    assert threading.current_thread() is threading.main_thread()


def test_true_hang_is_killed_and_pool_recovers():
    clear_cache()
    pool = get_pool()
    timeouts0 = pool.stats().get("timeouts", 0)
    box = r"\boxed{\sin(\exp(\exp(\exp(3))))}"
    t0 = time.monotonic()
    res = grade(box, "7", timeout=1.0)
    assert res.reason == "timeout" and not res.correct
    assert time.monotonic() - t0 < 2.0
    assert pool.stats()["timeouts"] == timeouts0 + 1
    # a batch with two hanging samples and normal ones: the normal ones still come back
    t0 = time.monotonic()
    out = grade_many([box, r"\boxed{\frac{6}{4}}", r"\boxed{\tan(\tan(\tan(\tan(\tan(\tan(2))))))}", r"\boxed{x^2}"],
                     ["8", "1.5", "9", "x \\cdot x"], timeout=1.0)
    assert [r.reason for r in out][1::2] == ["correct", "correct"]
    assert not out[0].correct and not out[2].correct
    assert time.monotonic() - t0 < 4.0
    assert grade(r"\boxed{\sqrt{16}}", "4", timeout=1.0).correct


def test_monkeypatched_hanging_worker_function(monkeypatch):
    """A worker function that never returns is killed at the deadline; the pool keeps working."""
    clear_cache()
    monkeypatch.setattr(_mv, "mv_compare", functools.partial(pool_tasks.sleep_task, 120))
    t0 = time.monotonic()
    res = grade(r"\boxed{x+1}", "x+2", timeout=1.0)
    assert res.reason == "timeout" and not res.correct
    assert time.monotonic() - t0 < 2.0
    monkeypatch.undo()
    assert grade(r"\boxed{x+1}", "1+x", timeout=5.0).correct


def test_dedicated_pool_kill_and_respawn_many_times():
    with VerifierPool(2) as pool:
        assert pool.warmup(60)
        t0 = time.monotonic()
        out = pool.run_many(pool_tasks.sleep_task, [(30,)] * 4 + [(0.01,)] * 4, timeout=0.5)
        assert [ok for ok, _ in out] == [False] * 4 + [True] * 4
        assert all(isinstance(v, TaskTimeout) for _, v in out[:4])
        assert time.monotonic() - t0 < 8.0
        assert pool.run_many(pool_tasks.echo_task, [("alive",)], timeout=5.0) == [(True, "alive")]
        assert pool.stats()["timeouts"] == 4


def test_process_survives():
    assert sys.getrecursionlimit() > 0
    assert grade(r"\boxed{1}", "1", timeout=DEADLINE).correct


PATHOLOGICAL = [
    "Answer: " + "\\text{" * 50_000,
    "\\boxed{" + "{" * 50_000 + "}" * 50_000 + "}",
    "\\boxed{" + "\\frac12" * 50_000 + "}",
    "\\boxed{" + "1,000" * 100_000 + "}",
    "\\boxed{" + "2^{" * 3000 + "}" * 3000 + "}",
    "\\boxed{" * 50_000,
    "Answer: " * 50_000,
    "\\boxed{" + "(" * 20_000 + "}",
]


@pytest.mark.parametrize("grader", ["strict", "math_verify", "paper"])
def test_pathological_strings_are_cheap(grader):
    """Extraction, normalisation and guards are (near) linear: no sympy, no quadratic blow-up."""
    for text in PATHOLOGICAL:
        t0 = time.monotonic()
        res = grade(text, "5", grader, timeout=DEADLINE)
        assert not res.correct
        assert time.monotonic() - t0 < 1.0, (grader, text[:40])
    gold = "2^{" * 1500 + "1" + "}" * 1500  # a huge (trusted) gold is analysed quickly too
    t0 = time.monotonic()
    assert grade(r"\boxed{7}", gold, "strict").reason == "incorrect"
    assert time.monotonic() - t0 < 1.0
