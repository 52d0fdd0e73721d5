"""`sdlab eval` end to end on a tiny local model and a slice of the shared benchmark copies."""

import json

import pytest

from sdlab.cli import main
from sdlab.evaluation.runner import summarize


def _eval(model, out, data_dir, *extra):
    return main(["eval", "--model", str(model), "--benchmarks", "gsm8k,amc23", "--n", "3", "--limit", "2",
                 "--max-new-tokens", "8", "--temperature", "1.0", "--top-p", "0.95", "--grader", "math_verify",
                 "--data-dir", str(data_dir), "--out", str(out), *extra])


def test_eval_end_to_end_and_reproducible(tiny_qwen3, shared_data, tmp_path, capsys):
    assert _eval(tiny_qwen3, tmp_path / "a", shared_data) == 0
    table = capsys.readouterr().out
    assert "gsm8k" in table and "avg@3" in table
    samples = [json.loads(x) for x in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 2 * 3
    for key in ("problem_id", "prompt", "response", "num_tokens", "truncated", "correct", "pred", "reason"):
        assert key in samples[0], key
    assert "Please reason step by step" in samples[0]["prompt"]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    s = summary["benchmarks"]["gsm8k"]
    for key in ("accuracy", "avg@3", "pass@1", "pass@2", "pass@3", "accuracy_ci95", "response_length",
                "response_length_median", "truncation_rate", "epistemic", "epistemic_per_word"):
        assert key in s, key
    assert summary["settings"]["temperature"] == 1.0
    assert _eval(tiny_qwen3, tmp_path / "b", shared_data) == 0
    assert (tmp_path / "a" / "samples.jsonl").read_text() == (tmp_path / "b" / "samples.jsonl").read_text()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["benchmarks"] == summary["benchmarks"]


def test_summarize_pass_at_k_and_avg():
    rows = []
    for pid, correct in (("a", [1, 0, 0, 1]), ("b", [0, 0, 0, 0]), ("c", [1, 1, 1, 1])):
        rows += [{"problem_id": pid, "correct": bool(c), "num_tokens": 10, "truncated": False, "response": "wait",
                  "reason": "x"} for c in correct]
    s = summarize(rows, 4)
    assert s["avg@4"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert s["pass@1"] == pytest.approx(s["avg@4"])
    assert s["pass@2"] == pytest.approx((1 - 1 / 6 + 0 + 1) / 3)  # 1 - C(2,2)/C(4,2) for problem a
    assert s["pass@4"] == pytest.approx(2 / 3)
    assert s["epistemic"] == 1.0


def test_malformed_benchmark_file_names_file_and_line(tiny_qwen3, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "problem": "p", "answer": "1"}\n{"id": "2", "problem": "q"}\n')
    rc = main(["eval", "--model", str(tiny_qwen3), "--benchmarks", str(bad), "--out", str(tmp_path / "o"),
               "--max-new-tokens", "4"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "answer" in err


def test_unparseable_gold_is_reported_and_excluded(tiny_qwen3, tmp_path):
    data = tmp_path / "golds.jsonl"
    data.write_text('{"id": "ok", "problem": "1+1?", "answer": "2"}\n'
                    '{"id": "broken", "problem": "?", "answer": "$$"}\n')
    assert main(["eval", "--model", str(tiny_qwen3), "--benchmarks", str(data), "--out", str(tmp_path / "o"),
                 "--max-new-tokens", "4", "--n", "2"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())["benchmarks"][str(data)]
    assert summary["excluded_problems"] == ["broken"]
    assert summary["problems"] == 1
    samples = [json.loads(x) for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert all(s["correct"] is None for s in samples if s["problem_id"] == "broken")
