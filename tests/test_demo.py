"""Smoke run of `sdlab demo` with a very small budget (the full demo is a benchmark, not a test)."""

import json

from sdlab.cli import main


def test_demo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SDLAB_ORGANISM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    rc = main(["demo", "--seeds", "2", "--steps", "2", "--eval-every", "1", "--out", str(out),
               "organism.pretrain.steps=20", "organism.pretrain.tokens_per_batch=512", "data.train_batch_size=4",
               "data.coverage=8", "rollout.n=4", "eval.limit=6", "eval.n=1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "sdlab.demo/v1"
    res = summary["results"]["8"]
    assert set(res) == {"base", "grpo", "sdpo"}
    for alg in ("base", "grpo", "sdpo"):
        assert set(res[alg]) == {"0", "1"}
        for key in ("in_domain_accuracy", "ood_accuracy", "response_length", "epistemic"):
            assert isinstance(res[alg]["0"][key], float)
    agg = summary["aggregate"]["8"]["sdpo"]["ood_accuracy"]
    assert agg["n"] == 2 and len(agg["ci95"]) == 2
    assert summary["checks"] and all("passed" in c for c in summary["checks"])
    html = (out / "report.html").read_text()
    assert "<img" in html and "claims on the organism" in html
    # a second call reuses the finished runs
    assert main(["demo", "--seeds", "2", "--steps", "2", "--eval-every", "1", "--out", str(out),
                 "organism.pretrain.steps=20", "organism.pretrain.tokens_per_batch=512", "data.train_batch_size=4",
                 "data.coverage=8", "rollout.n=4", "eval.limit=6", "eval.n=1"]) == 0


def test_a_failed_run_is_recorded_and_the_demo_exits_1_without_a_summary(tmp_path, monkeypatch, capsys):
    """The demo runs its grid through the sweep runner: a failed run does not stop the others, is
    recorded in its status.json, and the demo then exits 1 naming it instead of summarizing."""
    from sdlab.experiments import demo, sweep
    from sdlab.organism import registry

    calls = []

    class FakeRunner:
        def __init__(self, threads=None, env=None):
            assert threads == 1 and env["OMP_NUM_THREADS"] == "1"

        def __call__(self, run, resume):
            calls.append(run.name)
            if run.name == "cov8/grpo-s0":
                raise sweep.RunFailed("exit code 1; last lines of train.log:\nValueError: boom")

    monkeypatch.setattr(registry, "organism_base_path", lambda *a, **k: None)
    monkeypatch.setattr(demo, "SubprocessRunner", FakeRunner)
    out = tmp_path / "demo"
    rc = main(["demo", "--seeds", "2", "--coverage", "8", "--out", str(out), "--jobs", "1"])
    assert rc == 1
    assert calls == ["cov8/grpo-s0", "cov8/sdpo-s0", "cov8/grpo-s1", "cov8/sdpo-s1"]
    err = capsys.readouterr().err
    assert "1 of 4 demo runs did not finish" in err and "cov8/grpo-s0" in err and "ValueError: boom" in err
    assert not (out / "summary.json").exists()
    states = {r: json.loads((out / "runs" / r / "status.json").read_text())["state"] for r in calls}
    assert states == {"cov8/grpo-s0": "failed", "cov8/sdpo-s0": "done", "cov8/grpo-s1": "done", "cov8/sdpo-s1": "done"}
    # a second call retries only the failed run
    calls.clear()
    assert main(["demo", "--seeds", "2", "--coverage", "8", "--out", str(out), "--jobs", "1"]) == 1
    assert calls == ["cov8/grpo-s0"]
    # finished runs made with other settings are never summarized with new ones
    calls.clear()
    capsys.readouterr()
    assert main(["demo", "--seeds", "2", "--coverage", "8", "--out", str(out), "--steps", "7"]) == 2
    assert calls == [] and "made with other settings" in capsys.readouterr().err
