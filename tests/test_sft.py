"""Off-policy self-distillation: `sdlab sft` (study §4, Table 2 design)."""

import argparse
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sdlab.algorithms.sft import select_traces, sft_loss, truncate_example
from sdlab.commands import sft as sft_cmd
from sdlab.data.problems import Problem
from sdlab.data.prompts import PromptBuilder
from sdlab.engine.sft import sft_micro_loss
from sdlab.evaluation import sampling
from sdlab.evaluation.sampling import Generation
from sdlab.models import load_tokenizer


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(pi, k, correct, *, prompt=(9, 9, 9, 9)):
    return Generation(problem=pi, problem_id=f"p{pi}", sample=k, level="answer", prompt_ids=list(prompt),
                      response_ids=[10 + k, 11, 1], text=f"resp {pi}.{k} wait", truncated=False, correct=correct)


def test_select_traces_keeps_correct_and_uses_plain_prompt():
    problems = [Problem(id=f"p{i}", prompt=f"q{i}", answer="1") for i in range(4)]
    plain = [[1, 2, i] for i in range(4)]
    cands = {
        0: [_gen(0, 0, False), _gen(0, 1, True), _gen(0, 2, True)],
        1: [_gen(1, 0, None), _gen(1, 1, False)],  # unparseable gold (None) and wrong: dropped
        2: [_gen(2, 0, False)],
        3: [_gen(3, 0, True)],
    }
    traces = select_traces(problems, plain, [f"q{i}" for i in range(4)], cands, guidance="answer", per_problem=1)
    assert [(t.problem_id, t.sample) for t in traces] == [("p0", 1), ("p3", 0)]
    for t in traces:
        assert t.prompt_ids == plain[int(t.problem_id[1:])]  # the plain prompt, not the guided one
        assert t.guided_prompt_tokens == 4 and t.guidance == "answer" and t.epistemic == 1
        assert t.to_dict()["correct"] is True
    everything = select_traces(problems, plain, ["q"] * 4, cands, guidance="answer", per_problem=0)
    assert [(t.problem_id, t.sample) for t in everything] == [("p0", 1), ("p0", 2), ("p3", 0)]
    filtered = select_traces(problems, plain, ["q"] * 4, cands, guidance="answer", per_problem=0,
                             problem_filter=[3, 0], max_problems=1)
    assert [(t.problem_id, t.sample) for t in filtered] == [("p3", 0)]


def test_truncate_example():
    assert truncate_example([1, 2], [3, 4, 5], 10) == ([3, 4, 5], False)
    assert truncate_example([1, 2], [3, 4, 5], 4) == ([3, 4], True)
    assert truncate_example([1, 2, 3], [4], 3) is None


def test_loss_masks_prompt_tokens(tiny_qwen3):
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    responses = [[20, 21, 22], [23, 24, 25, 26, 1]]
    n_tok = sum(map(len, responses))
    loss, nll = sft_micro_loss(model, prompts, responses, 0, num_tokens=float(n_tok), num_seqs=2.0)
    # reference: HF's own causal-LM loss with the prompt labels set to -100, one sequence at a time
    total = 0.0
    with torch.no_grad():
        for p, r in zip(prompts, responses):
            labels = torch.tensor([[-100] * len(p) + r])
            total += float(model(input_ids=torch.tensor([p + r]), labels=labels).loss) * len(r)
    assert float(loss.detach()) == pytest.approx(total / n_tok, abs=1e-5)
    assert nll == pytest.approx(total, abs=1e-4)
    # micro-batches with the batch's normaliser sum to the batch loss

    parts = [sft_micro_loss(model, [p], [r], 0, num_tokens=float(n_tok), num_seqs=2.0)[0]
             for p, r in zip(prompts, responses)]
    assert float(sum(parts).detach()) == pytest.approx(float(loss.detach()), abs=1e-6)
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(sft_loss(logp, mask, num_tokens=3, num_seqs=2)) == pytest.approx(7.0 / 3)
    assert float(sft_loss(logp, mask, mode="seq-mean-token-mean", num_tokens=3, num_seqs=2)) == pytest.approx(
        (1.5 + 4.0) / 2)


def _run(argv) -> int:
    p = argparse.ArgumentParser()
    sft_cmd.add_arguments(p)
    return sft_cmd.run(p.parse_args(argv))


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _mean_nll(model, traces):
    with torch.no_grad():
        n = sum(len(t["response_ids"]) for t in traces)
        return float(sft_micro_loss(model, [t["prompt_ids"] for t in traces], [t["response_ids"] for t in traces], 0,
                                    num_tokens=float(n), num_seqs=float(len(traces)))[0])


def test_sft_from_traces_decreases_loss_and_is_deterministic(tiny_qwen3, tmp_path):
    src = tmp_path / "inject.jsonl"
    rows = [
        {"problem": "What is 2+3?", "response": "2+3=5, so the answer is \\boxed{5}.", "guidance": "solution"},
        {"problem": "What is 4*4?", "response": "4*4=16. wait, check: 16. \\boxed{16}", "guidance": "solution"},
        {"problem": "What is 9-7?", "response": "9-7=2. \\boxed{2}", "guidance": "solution"},
        {"problem": "What is 1+1?", "response": "3", "correct": False},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _run([f"model.name_or_path={tiny_qwen3}", "model.device=cpu", f"output_dir={out}", "seed=3",
                     "actor.lr=0.003", "actor.micro_batch_size=1", "actor.lr_schedule=cosine", "sft.epochs=2",
                     "sft.batch_size=2", "--from-traces", str(src)]) == 0
        outs.append(out)
    out = outs[0]
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 3 and all(t["guidance"] == "solution" for t in traces)
    tok = load_tokenizer(str(tiny_qwen3))
    plain = PromptBuilder(tok).prompt_ids(Problem(id="x", prompt="What is 2+3?", answer="5"))
    assert traces[0]["prompt_ids"] == plain and traces[0]["response_ids"][-1] == tok.eos_token_id
    assert traces[1]["epistemic"] == 2
    metrics = _metrics(out)
    assert metrics[0]["step"] == 0 and metrics[0]["traces/count"] == 3
    steps = [m for m in metrics if "sft/loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]  # 2 epochs x ceil(3 / 2) steps
    epochs = [m["sft/epoch_nll_per_token"] for m in steps if "sft/epoch_nll_per_token" in m]
    assert len(epochs) == 2 and epochs[1] < epochs[0]
    before = _mean_nll(AutoModelForCausalLM.from_pretrained(tiny_qwen3), traces)
    after = _mean_nll(AutoModelForCausalLM.from_pretrained(out / "final"), traces)
    assert after < before - 0.1
    assert [m["sft/loss"] for m in steps] == [m["sft/loss"] for m in _metrics(outs[1]) if "sft/loss" in m]
    cfg = (out / "config.yaml").read_text()
    assert "sft:" in cfg and "epochs: 2" in cfg


def test_sft_generates_guided_traces_and_filters(tiny_qwen3, shared_data, tmp_path, monkeypatch):
    from sdlab.rewards import GradeResult

    calls = []

    def grade(texts, golds, grader, *, truncated, timeout, reveal_answer):
        calls.append(len(texts))  # unguided call first, then the guided one; sample 0 of each problem is correct
        return [GradeResult(correct=i % 2 == 0, pred="x", reason="correct" if i % 2 == 0 else "incorrect",
                            feedback="" if i % 2 == 0 else "Wrong.") for i in range(len(texts))]

    monkeypatch.setattr(sampling, "grade_many", grade)
    data = tmp_path / "train.jsonl"
    data.write_text("".join((shared_data / "gsm8k.jsonl").read_text().splitlines(keepends=True)[:3]))
    base = [f"model.name_or_path={tiny_qwen3}", "model.device=cpu", f"data.train={data}", "rollout.n=2",
            "rollout.max_new_tokens=8"]
    out = tmp_path / "answer"
    assert _run(base + [f"output_dir={out}", "--traces-only", "--guidance", "answer"]) == 0
    assert calls == [6, 6]
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert sum(g["kind"] == "unguided" for g in gens) == 6 and sum(g["kind"] == "guided" for g in gens) == 6
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert [(t["problem_id"], t["sample"]) for t in traces] == [(f"gsm8k-test-000{i}", 0) for i in range(3)]
    tok = load_tokenizer(str(tiny_qwen3))
    builder = PromptBuilder(tok)
    guided_by_id = {(g["problem_id"], g["sample"]): g for g in gens if g["kind"] == "guided"}
    for t, line in zip(traces, data.read_text().splitlines()):
        row = json.loads(line)
        plain = builder.prompt_ids(Problem(id=row["id"], prompt=row["problem"], answer=row["answer"]))
        assert t["prompt_ids"] == plain  # distilled into the unguided prompt
        assert t["guidance"] == "answer" and t["guided_prompt_tokens"] > len(plain)
        g = guided_by_id[(t["problem_id"], t["sample"])]
        assert (g["correct"] is True and g["response"] == t["response"]
                and g["prompt_tokens"] == t["guided_prompt_tokens"])
    m = _metrics(out)[0]
    assert m["gen/unguided/accuracy"] == 0.5 and m["gen/guided/samples"] == 6 and m["traces/count"] == 3
    assert not (out / "final").exists()

    # the study's selection: problems solved 2 of 2 times -> none here; unguided traces need no guided pass
    calls.clear()
    out = tmp_path / "none"
    assert _run(base + [f"output_dir={out}", "sft.solve_range=[2,2]", "--traces-only"]) == 0
    assert calls == [6] and (out / "traces.jsonl").read_text() == ""


def test_sft_config_split_and_errors(tmp_path):
    from sdlab.config import ConfigError

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("seed: 4\nsft:\n  epochs: 5\n  solve_range: [1, 4]\n")
    cfg, s = sft_cmd.load_sft_config(str(cfg_file), ["sft.batch_size=3", "actor.lr=0.00001"], guidance="demo")
    assert cfg.seed == 4 and cfg.actor.lr == 1e-5
    assert (s.epochs, s.batch_size, s.solve_range, s.guidance) == (5, 3, [1, 4], "demo")
    with pytest.raises(ConfigError, match="sft.guidance"):
        sft_cmd.load_sft_config(None, [], guidance="hint")
    with pytest.raises(ConfigError, match="unknown config key sft.epoch"):
        sft_cmd.load_sft_config(None, ["sft.epoch=2"])
    with pytest.raises(ConfigError, match="sft.solve_range"):
        sft_cmd.load_sft_config(None, ["sft.solve_range=[3,1]"])
