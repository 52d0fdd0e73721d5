"""Teacher prompt builder (algorithms.md §1.6, vectors S8) and teacher weights (S7)."""

import torch

from sdlab.algorithms.context import DEFAULT_TEMPLATES, build_teacher_contexts, fill, strip_thinking
from sdlab.algorithms.teacher import Teacher, ema_update_
from sdlab.data.prompts import truncate_ids

P = "What is 2+3? Please reason step by step, and put your final answer within \\boxed{}."
DEMO = "<think>2+3=5</think>\n\nThe answer is \\boxed{5}."
FB = "Your response was truncated because it exceeded the maximum length."

# lasgroup actor.yaml (YAML) and TRL/dataclass template sets, verbatim from the reference
YAML = {
    "reprompt": "{prompt}{solution}{feedback}\n\nCorrectly solve the original question.",
    "solution": "\nCorrect solution:\n\n{successful_previous_attempt}",
    "feedback": "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}",
}
TRL_TEMPLATES = {
    "demo_answer": "{prompt}\nCorrect solution:\n\n{demo_answer}\n\n\n\nCorrectly solve the original question.\n",
}


def build(level, rewards, *, responses=None, feedbacks=None, templates=None, exclude_self=True, solutions=None):
    n = len(rewards)
    return build_teacher_contexts(
        level, prompts=[P] * n, responses=responses or [DEMO] * n, rewards=rewards, group_ids=[0] * n,
        answers=["5"] * n, solutions=solutions or [None] * n, feedbacks=feedbacks or [""] * n,
        success_threshold=0.5, exclude_self=exclude_self, templates=templates,
    )


def test_yaml_worked_examples_exact():
    ctx = build("demo_answer", [0.0, 1.0])
    expected = ("What is 2+3? Please reason step by step, and put your final answer within \\boxed{}.\n"
                "Correct solution:\n\nThe answer is \\boxed{5}.\n\nCorrectly solve the original question.")
    assert ctx[0].text == expected and ctx[0].distilled
    # the same string the reference's three templates produce
    ref = YAML["reprompt"].format(
        prompt=P, solution=YAML["solution"].format(successful_previous_attempt="The answer is \\boxed{5}."),
        feedback="")
    assert ctx[0].text == ref
    fb = build("feedback", [0.0], feedbacks=[FB])[0]
    assert fb.text == ("What is 2+3? Please reason step by step, and put your final answer within \\boxed{}.\n"
                       "The following is feedback from your unsuccessful earlier attempt:\n\n"
                       "Your response was truncated because it exceeded the maximum length.\n\n"
                       "Correctly solve the original question.")


def test_trl_template_set_exact():
    ctx = build("demo_answer", [0.0, 1.0], templates=TRL_TEMPLATES)
    assert ctx[0].text == ("What is 2+3? Please reason step by step, and put your final answer within \\boxed{}.\n"
                           "Correct solution:\n\nThe answer is \\boxed{5}.\n\n\n\n"
                           "Correctly solve the original question.\n")


def test_demo_keeps_thinking_demo_answer_strips_it():
    demo = build("demo", [0.0, 1.0])[0].text
    assert "<think>2+3=5</think>" in demo
    assert "<think>" not in build("demo_answer", [0.0, 1.0])[0].text


def test_strip_thinking_variants():
    assert strip_thinking("<think>a\nb</think>\n\nfinal") == "final"
    assert strip_thinking("reasoning without open tag</think> final") == "final"  # DeepSeek-R1-Distill
    assert strip_thinking("no thinking") == "no thinking"


def test_lone_success_and_self_exclusion():
    ctx = build("demo", [1.0, 0.0, 0.0])
    assert not ctx[0].distilled and ctx[0].text == P  # the only success has no *other* demo
    assert ctx[1].distilled and ctx[2].distilled
    ctx = build("demo", [1.0, 0.0], exclude_self=False)
    assert ctx[0].distilled
    ctx = build("demo", [1.0, 1.0], responses=["first", "second"])
    assert ctx[0].text.count("second") == 1 and ctx[1].text.count("first") == 1


def test_no_success_means_no_distillation():
    assert not any(c.distilled for c in build("demo", [0.0, 0.0]))


def test_groups_are_separate():
    ctx = build_teacher_contexts(
        "demo", prompts=[P] * 4, responses=["a", "b", "c", "d"], rewards=[1, 0, 0, 1], group_ids=[0, 0, 1, 1],
        answers=["5"] * 4, solutions=[None] * 4, feedbacks=[""] * 4,
    )
    assert [c.distilled for c in ctx] == [False, True, True, False]
    assert ctx[1].text.endswith("a\n\nCorrectly solve the original question.")
    assert ctx[2].text.endswith("d\n\nCorrectly solve the original question.")


def test_feedback_answer_solution_none_levels():
    assert [c.distilled for c in build("feedback", [0, 1], feedbacks=[FB, ""])] == [True, False]
    ans = build("answer", [0, 0])
    assert all(c.distilled for c in ans) and "The correct final answer is 5." in ans[0].text
    sol = build("solution", [0, 0], solutions=["Add them: 5.", None])
    assert sol[0].distilled and "Add them: 5." in sol[0].text and not sol[1].distilled
    none = build("none", [0, 1])
    assert all(c.distilled and c.text == P for c in none)


def test_braces_inside_prompts_and_responses_are_safe():
    assert fill("{prompt} and {demo}", prompt="f(x) = {x}", demo="\\boxed{ {5} }") == "f(x) = {x} and \\boxed{ {5} }"
    assert fill("{unknown} {prompt}", prompt="p") == "{unknown} p"
    ctx = build("demo", [0.0, 1.0], responses=["x", "\\frac{1}{2} {prompt}"])
    assert "\\frac{1}{2} {prompt}" in ctx[0].text


def test_truncation_sides():
    ids = list(range(10))
    assert truncate_ids(ids, 4, "left") == ([6, 7, 8, 9], True)
    assert truncate_ids(ids, 4, "right") == ([0, 1, 2, 3], True)
    assert truncate_ids(ids, 20, "left") == (ids, False)


def test_default_templates_cover_every_level():
    from sdlab.config import CONTEXT_LEVELS

    assert set(DEFAULT_TEMPLATES) == set(CONTEXT_LEVELS)


def test_ema_vector_s7():
    t, s = [torch.tensor([1.0], dtype=torch.float64)], [torch.tensor([0.0], dtype=torch.float64)]
    values = []
    for step in range(1, 101):
        ema_update_(t, s, 0.05)
        if step in (1, 10, 100):
            values.append(float(t[0]))
    assert abs(values[0] - 0.95) < 1e-12
    assert abs(values[1] - 0.59873694) < 1e-8
    assert abs(values[2] - 0.00592053) < 1e-8


def test_teacher_kinds(tiny_qwen3):
    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    frozen, ema, live = Teacher("frozen", student), Teacher("ema", student, 0.5), Teacher("live", student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    ema.step(), frozen.step()
    sp = next(student.parameters())
    assert torch.allclose(next(frozen.module().parameters()) + 1.0, sp)
    assert torch.allclose(next(ema.module().parameters()) + 0.5, sp)
    assert live.module() is student
    assert frozen.state_module is None and ema.state_module is ema.model  # only EMA weights are training state
