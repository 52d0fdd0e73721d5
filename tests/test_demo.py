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
    assert summary["schema"] == "sdlab.demo/v2"
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



def test_demo_crosses_world_seeds(tmp_path, monkeypatch):
    """--world-seed 0,1: every seed on every world, one base per world, (world, seed) pairs pooled."""
    monkeypatch.setenv("SDLAB_ORGANISM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    rc = main(["demo", "--seeds", "2", "--steps", "1", "--eval-every", "1", "--world-seed", "0,1",
               "--algorithms", "sdpo", "--out", str(out), "organism.pretrain.steps=10",
               "organism.pretrain.tokens_per_batch=512", "data.train_batch_size=4", "data.coverage=8", "rollout.n=2",
               "eval.limit=4", "eval.n=1"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["world_seeds"] == [0, 1]
    res = summary["results"]["8"]
    units = {"w0-s0", "w0-s1", "w1-s0", "w1-s1"}
    assert set(res["sdpo"]) == set(res["base"]) == units
    assert summary["aggregate"]["8"]["sdpo"]["ood_accuracy"]["n"] == 4
    assert all(set(c["per_seed"]) == units for c in summary["checks"])
    for w in (0, 1):  # each world's runs train on that world
        cfg = (out / "runs" / f"w{w}" / "cov8" / "sdpo-s0" / "config.yaml").read_text()
        assert f"seed: {w}" in cfg.split("organism:", 1)[1]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # two bases, one per world

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


def test_checks_pass_only_when_the_whole_ci_is_on_the_predicted_side():
    from sdlab.experiments.demo import _checks

    def row(acc, ood, length, epi):
        return {"in_domain_accuracy": acc, "ood_accuracy": ood, "response_length": length, "epistemic": epi}

    base = {s: row(0.10, 0.20, 16.0, 1.6) for s in ("0", "1", "2")}
    # SDPO: in-domain +8 points on average but one seed below base (the CI straddles 0): FAIL;
    # epistemic and length fall on every seed (tight CIs): pass
    sdpo = {"0": row(0.30, 0.10, 8.0, 0.0), "1": row(0.02, 0.09, 8.2, 0.01), "2": row(0.12, 0.11, 8.1, 0.0)}
    checks = {c["check"].split(" ", 1)[1]: c for c in _checks({32: {"base": base, "sdpo": sdpo}})}
    in_dom = checks["SDPO in-domain accuracy minus base (points)"]
    assert in_dom["value"] > 0 and in_dom["ci95"][0] < 0 and not in_dom["passed"]
    assert {s: round(v, 6) for s, v in in_dom["per_seed"].items()} == {"0": 20.0, "1": -8.0, "2": 2.0}
    assert checks["SDPO epistemic words vs base (relative change)"]["passed"]
    assert checks["SDPO response length vs base (relative change)"]["passed"]
    assert checks["SDPO OOD accuracy vs base (relative change)"]["passed"]
    assert not any(name.startswith("GRPO") for name in checks)
    # one seed: no interval, so no claim can pass
    one = _checks({8: {"base": {"0": base["0"]}, "sdpo": {"0": sdpo["0"]}}})
    assert one and not any(c["passed"] for c in one)
