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
