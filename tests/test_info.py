"""The information lens (`sdlab.analysis.info`) and `sdlab info` (study §2 Eq. 2, §3.1 Table 1)."""

import argparse
import csv
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sdlab.analysis.info import context_logratios, epistemic_token_ids, summarize_values
from sdlab.commands import info as info_cmd
from sdlab.evaluation import sampling
from sdlab.models import load_tokenizer


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads; one thread keeps these tests fast on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lm(tiny_qwen3):
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3).eval()
    return model, load_tokenizer(str(tiny_qwen3))


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _brute_force(model, context, response, extra_ids):
    """One forward per prefix: log p(y_t | context, y_<t) and the mass on extra_ids."""
    lps, masses = [], []
    with torch.no_grad():
        for t in range(len(response)):
            ids = torch.tensor([context + response[:t]])
            logp = model(input_ids=ids).logits[0, -1].double().log_softmax(-1)
            lps.append(float(logp[response[t]]))
            masses.append(float(logp[extra_ids].exp().sum()))
    return torch.tensor(lps, dtype=torch.float64), torch.tensor(masses, dtype=torch.float64)


def test_estimate_is_exactly_zero_without_context(lm):
    model, tok = lm
    x = _ids(tok, "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    ys = [_ids(tok, "wait, 2+3=5. \\boxed{5}"), _ids(tok, "hmm 5"), _ids(tok, "maybe check: 6")]
    scores = context_logratios(model, tok, [x] * 3, [x] * 3, ys)
    for s, y in zip(scores, ys):
        assert s.num_tokens == len(y)
        assert torch.equal(s.logratio, torch.zeros(len(y)))
        assert s.total == 0.0
        assert torch.equal(s.mass_c, s.mass_x)
    assert all(float(s.logp_x.sum()) < 0 for s in scores)


@pytest.mark.parametrize("batch_size,chunk_size", [(8, 1024), (1, 3)])
def test_logratios_match_brute_force(lm, batch_size, chunk_size):
    model, tok = lm
    x = _ids(tok, "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    c = _ids(tok, "<|im_start|>user\nWhat is 2+3?\nThe correct final answer is 5.\n\nCorrectly solve the "
                  "original question.<|im_end|>\n<|im_start|>assistant\n")
    ys = [_ids(tok, "wait, 2+3=5. So \\boxed{5}<eos>"), _ids(tok, "hmm"), _ids(tok, "maybe check 2+3 again: 6?")]
    epi = epistemic_token_ids(tok)
    assert len(epi) >= 4  # wait, hmm, maybe, check are single tokens of the tiny tokenizer
    scores = context_logratios(model, tok, [x] * 3, [c] * 3, ys, batch_size=batch_size, chunk_size=chunk_size)
    for s, y in zip(scores, ys):
        lp_c, m_c = _brute_force(model, c, y, epi)
        lp_x, m_x = _brute_force(model, x, y, epi)
        assert torch.allclose(s.logp_c.double(), lp_c, atol=1e-5)
        assert torch.allclose(s.logp_x.double(), lp_x, atol=1e-5)
        assert torch.allclose(s.logratio.double(), lp_c - lp_x, atol=1e-5)
        assert abs(s.total - float((lp_c - lp_x).sum())) < 1e-5 * len(y)
        assert torch.allclose(s.mass_c.double(), m_c, atol=1e-6)
        assert torch.allclose(s.mass_x.double(), m_x, atol=1e-6)
    assert any(abs(s.total) > 1e-3 for s in scores)  # the context does change the log-probs
    # one sequence instead of lists, and no epistemic ids
    single = context_logratios(model, tok, x, c, ys[1], epistemic_ids=None)
    assert len(single) == 1 and single[0].mass_c is None
    assert torch.allclose(single[0].logratio, scores[1].logratio, atol=1e-6)


def test_summarize_values_is_a_mean_over_problems():
    s = summarize_values([1.0, 3.0, 10.0], ["a", "a", "b"])
    assert s["mean"] == pytest.approx((2.0 + 10.0) / 2)
    assert s["problems"] == 2 and s["responses"] == 3
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert summarize_values([], [])["mean"] is None


def _run(argv) -> int:
    p = argparse.ArgumentParser()
    info_cmd.add_arguments(p)
    return info_cmd.run(p.parse_args(argv))


def _argv(model, data, out, contexts):
    return ["--model", str(model), "--benchmark", str(data / "gsm8k.jsonl"), "--limit", "3", "--n", "2",
            "--max-new-tokens", "8", "--temperature", "1.0", "--top-p", "1.0", "--contexts", contexts,
            "--device", "cpu", "--out", str(out)]


def _rows(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_info_cli_end_to_end(tiny_qwen3, shared_data, tmp_path, capsys):
    out = tmp_path / "info"
    assert _run(_argv(tiny_qwen3, shared_data, out, "none,demo,demo_answer,answer")) == 0
    info = json.loads((out / "info.json").read_text())
    res = info["contexts"]
    assert list(res) == ["none", "demo", "demo_answer", "answer"]
    assert res["none"]["info"]["mean"] == 0.0 and res["none"]["logratio_unguided"]["mean"] == 0.0
    assert res["none"]["table1"]["samples"] == 6 and res["none"]["table1"]["problems"] == 3
    assert res["answer"]["table1"]["samples"] == 6  # the gold answer is always available
    assert res["answer"]["info"]["responses"] == 6 and res["answer"]["info"]["mean"] != 0.0
    table = list(csv.DictReader((out / "table1.csv").open()))
    assert [r["context"] for r in table] == ["none", "demo", "demo_answer", "answer"]
    assert float(table[0]["info"]) == 0.0
    rows = _rows(out)
    assert sum(r["kind"] == "unguided" for r in rows) == 6
    assert all(r["logratio_sum"] == 0.0 for r in rows if r["kind"] == "unguided_score" and r["context"] == "none")
    assert "I(y;c|x)" in capsys.readouterr().out


def test_info_cli_contexts_follow_trainer_rules(tiny_qwen3, shared_data, tmp_path, monkeypatch):
    """With sample 0 of every problem graded correct: demo contexts exist, a response is never its
    own demo, feedback contexts exist for the failed responses only, Table 1 rows come from
    responses generated with the context."""
    from sdlab.rewards import GradeResult

    def grade(texts, golds, grader, *, truncated, timeout, reveal_answer):
        return [GradeResult(correct=i % 2 == 0, pred="x", reason="correct" if i % 2 == 0 else "incorrect",
                            feedback="" if i % 2 == 0 else "Wrong.")
                for i in range(len(texts))]

    monkeypatch.setattr(sampling, "grade_many", grade)
    out = tmp_path / "info"
    assert _run(_argv(tiny_qwen3, shared_data, out, "none,demo,feedback,solution") + ["--token-level"]) == 0
    res = json.loads((out / "info.json").read_text())["contexts"]
    rows = _rows(out)
    plain = {r["problem_id"]: r["context_tokens"] for r in rows
             if r["kind"] == "unguided_score" and r["context"] == "none"}
    demo_scored = [r for r in rows if r["kind"] == "unguided_score" and r["context"] == "demo"]
    assert sorted(r["sample"] for r in demo_scored) == [1, 1, 1]  # sample 0 is the demo, never its own
    assert all(r["context_tokens"] > plain[r["problem_id"]] for r in demo_scored)
    assert all(len(r["logratio_tokens"]) > 0 for r in demo_scored)
    guided = [r for r in rows if r["kind"] == "guided"]
    assert sum(r["context"] == "demo" for r in guided) == 6  # one context per problem, n samples
    assert sorted(r["sample"] for r in guided if r["context"] == "feedback") == [1, 1, 1]  # the failed ones
    assert sum(r["context"] == "solution" for r in guided) == 6  # gsm8k has reference solutions
    assert res["demo"]["table1"]["samples"] == 6 and res["feedback"]["table1"]["samples"] == 3
    assert res["demo"]["info"]["mean"] == pytest.approx(
        sum(r["logratio_sum"] for r in guided if r["context"] == "demo") / 6, abs=1e-9)
    assert res["none"]["info"]["mean"] == 0.0


def test_info_cli_rejects_unknown_context(tiny_qwen3, shared_data, tmp_path):
    from sdlab.config import ConfigError

    with pytest.raises(ConfigError, match="hint"):
        _run(_argv(tiny_qwen3, shared_data, tmp_path / "x", "none,hint"))
