"""`sdlab report` on hand-written run folders: every figure and table is there, the numbers in
summary.csv / summary.json equal means and Student-t intervals computed here by hand, and model
output is HTML-escaped."""

import argparse
import base64
import csv
import json
import math
import re

import pytest

from sdlab.commands import report as report_cmd
from sdlab.config import load_config
from sdlab.experiments import report

T975_DF2 = 4.302652729911275  # Student t, 0.975 quantile, 2 degrees of freedom (3 seeds)
SEEDS = (0, 1, 2)
STEPS = 4
EVIL = "<script>alert('x')</script> & <b>bold</b> \"quoted\""
EVIL_PROMPT = "Compute 1+1. <img src=x onerror=alert(1)>"


def reward(alg, cov, ctx, seed, step):
    return 0.1 * step + 0.01 * seed + (0.2 if alg == "sdpo" else 0.0) + cov / 1000


def ood_acc(alg, cov, ctx, seed, step):
    drop = {"none": 0.0, "demo": 0.1, "answer": 0.2}[ctx] if alg == "sdpo" else -0.05
    return 0.5 - drop * step / STEPS + 0.02 * seed + cov / 10000


def train_acc(alg, cov, ctx, seed, step):
    return 0.4 + 0.1 * step + 0.03 * seed


def eval_epi(alg, cov, ctx, seed, step):
    return 4.0 - (step if alg == "sdpo" else -step) * 0.5 + 0.1 * seed


def final_wait(alg, ctx, seed):
    """'wait' count of every final OOD response of a run (initial responses have 2)."""
    return (3 + seed) if alg == "grpo" else {"none": 2, "demo": 1, "answer": 0}[ctx] + (seed % 2)


GRID = ([(alg, cov, "demo") for alg in ("grpo", "sdpo") for cov in (8, 32)]
        + [("sdpo", 8, "none"), ("sdpo", 8, "answer")])


def write_run(root, alg, cov, ctx, seed):
    run = root / f"{alg}-cov{cov}-{ctx}" / f"s{seed}"  # nested: the report searches recursively
    run.mkdir(parents=True)
    cfg = load_config(None, {"algorithm": alg, "data.coverage": cov, "teacher_context": ctx, "seed": seed,
                             "output_dir": str(run), "steps": STEPS, "data.train": "organism:rl",
                             "eval.benchmarks": ["organism:train", "organism:ood"], "eval.every": 2,
                             "logging.run_name": run.name})
    cfg.save(run / "config.yaml")
    lines = []
    for step in range(STEPS + 1):
        rec = {"step": step}
        if step:
            rec.update({"reward/mean": reward(alg, cov, ctx, seed, step), "response_length/mean": 100.0 - step * seed,
                        "epistemic/mean": 3.0 + seed, "time/step": 0.1})
        if step % 2 == 0:
            rec.update({"eval/organism:ood/accuracy": ood_acc(alg, cov, ctx, seed, step),
                        "eval/organism:ood/epistemic": eval_epi(alg, cov, ctx, seed, step),
                        "eval/organism:ood/response_length": 50.0,
                        "eval/organism:train/accuracy": train_acc(alg, cov, ctx, seed, step)})
        lines.append(json.dumps(rec))
    # a resumed run logs step 0 twice (rewind keeps it, the eval at start runs again): merged
    lines.insert(1, json.dumps({"step": 0, "eval/organism:ood/accuracy": ood_acc(alg, cov, ctx, seed, 0)}))
    lines.append('{"step": 99, "torn')  # a line torn by a crash is ignored
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    for step, wait in ((0, 2), (STEPS, final_wait(alg, ctx, seed))):
        rows = []
        for pid in ("q1", "q2"):
            for k in range(2):
                text = f"{EVIL} " + "Wait, " * wait + "maybe. Hmm." + (" Checking." if step == 0 else "")
                rows.append({"benchmark": "organism:ood", "problem_id": pid, "sample": k, "prompt": EVIL_PROMPT,
                             "response": text, "num_tokens": 10, "truncated": False, "correct": k == 0,
                             "pred": "<2>", "reason": "correct", "gold": "2"})
        d = run / "eval" / f"step-{step}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "organism:ood.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def mean_ci(values):
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    h = T975_DF2 * sd / math.sqrt(len(values))
    return m, m - h, m + h


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for alg, cov, ctx in GRID:
        for seed in SEEDS:
            write_run(root, alg, cov, ctx, seed)
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "config.yaml").write_text("seed: 0\n")  # no metrics.jsonl: skipped
    out = tmp_path_factory.mktemp("report")
    path = report.build_report(root, out, title="Test <report>")
    return root, out, path, path.read_text()


def group_label(alg, cov, ctx):
    return f"{alg.upper()}, teacher_context={ctx}, coverage={cov}"


def test_groups_by_config_differences(built):
    root, out, _, _ = built
    summary = json.loads((out / "summary.json").read_text())
    assert summary["differing_keys"] == ["algorithm", "teacher_context", "data.coverage"]
    labels = [g["label"] for g in summary["groups"]]
    assert labels == [group_label("grpo", 8, "demo"), group_label("grpo", 32, "demo"), group_label("sdpo", 8, "none"),
                      group_label("sdpo", 8, "demo"), group_label("sdpo", 32, "demo"), group_label("sdpo", 8, "answer")]
    assert all(g["seeds"] == [0, 1, 2] for g in summary["groups"])
    assert len(summary["runs"]) == 18
    assert summary["benchmarks"] == {"in_domain": ["organism:train"], "ood": ["organism:ood"]}


def test_html_is_self_contained_with_every_figure(built):
    _, _, path, text = built
    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            'style-src \'unsafe-inline\'">' in text)
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert "@import" not in text and "url(" not in text
    for fig in ("curve-reward-mean", "curve-eval-organism-train-accuracy", "curve-eval-organism-ood-accuracy",
                "curve-response-length-mean", "curve-epistemic-mean", "curve-eval-organism-ood-epistemic",
                "epistemic-change-organism-ood", "coverage-sweep", "richness-sweep"):
        m = re.search(rf'<figure id="{fig}"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
        assert m, fig
        assert base64.b64decode(m.group(1))[:8] == b"\x89PNG\r\n\x1a\n", fig
    for table in ("groups-table", "final-table-grid", "coverage-table", "richness-table",
                  "epistemic-change-table-organism-ood", "runs-table"):
        assert f'<table id="{table}">' in text, table
    assert '<section id="samples">' in text and "<mark>Wait</mark>" in text
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_model_output_is_escaped(built):
    _, _, _, text = built
    assert "<script>alert" not in text and "<b>bold</b>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<title>Test &lt;report&gt;</title>" in text
    assert "<code>&lt;2&gt;</code>" in text


def test_final_numbers_match_hand_computation(built):
    _, out, _, _ = built
    summary = json.loads((out / "summary.json").read_text())
    groups = {g["label"]: g for g in summary["groups"]}
    with open(out / "summary.csv") as f:
        rows = {(r["section"], r["group"], r["metric"]): r for r in csv.DictReader(f)}
    for alg, cov, ctx in GRID:
        label = group_label(alg, cov, ctx)
        expected = {
            "reward/mean@final": [reward(alg, cov, ctx, s, STEPS) for s in SEEDS],
            "eval/organism:ood/accuracy@0": [ood_acc(alg, cov, ctx, s, 0) for s in SEEDS],
            "eval/organism:ood/accuracy@final": [ood_acc(alg, cov, ctx, s, STEPS) for s in SEEDS],
            "eval/organism:train/accuracy@final": [train_acc(alg, cov, ctx, s, STEPS) for s in SEEDS],
            "eval/organism:ood/epistemic@final": [eval_epi(alg, cov, ctx, s, STEPS) for s in SEEDS],
            "response_length/mean@final": [100.0 - STEPS * s for s in SEEDS],
        }
        for metric, values in expected.items():
            m, lo, hi = mean_ci(values)
            got = groups[label]["metrics"][metric]
            assert got["n"] == 3 and got["values"] == pytest.approx(values)
            assert (got["mean"], got["ci_low"], got["ci_high"]) == pytest.approx((m, lo, hi), rel=1e-6), (label, metric)
            row = rows[("final", label, metric)]
            assert int(row["n"]) == 3
            assert (float(row["mean"]), float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(
                (m, lo, hi), rel=1e-6)
        # identical values over seeds: zero-width interval
        epi = groups[label]["metrics"]["epistemic/mean@final"]
        assert (epi["mean"] == pytest.approx(4.0)
                and epi["ci_high"] - epi["ci_low"] == pytest.approx(2 * T975_DF2 * 1 / math.sqrt(3)))


def test_epistemic_change_matches_hand_computation(built):
    _, out, _, _ = built
    summary = json.loads((out / "summary.json").read_text())
    change = summary["epistemic_change"]["organism:ood"]
    assert change["words"][:3] == ["wait", "hmm", "perhaps"] and change["words"][-1] == "total"
    for alg, cov, ctx in GRID:
        g = change["groups"][group_label(alg, cov, ctx)]
        deltas = [final_wait(alg, ctx, s) - 2 for s in SEEDS]
        m, lo, hi = mean_ci(deltas)
        assert (g["wait"]["mean"], g["wait"]["ci_low"], g["wait"]["ci_high"]) == pytest.approx((m, lo, hi), rel=1e-6)
        assert g["maybe"]["mean"] == 0 and g["hmm"]["mean"] == 0
        assert g["check"]["mean"] == pytest.approx(-1.0)  # "Checking." only at step 0 (substring rule)
        assert g["total"]["mean"] == pytest.approx(m - 1.0)
        assert g["initial"]["wait"] == pytest.approx(2.0)


def test_coverage_and_richness_sweeps(built):
    _, out, _, _ = built
    summary = json.loads((out / "summary.json").read_text())
    cov = summary["coverage"]
    assert cov["x"] == [8, 32]
    ood = next(p for p in cov["panels"] if p["metric"] == "eval/organism:ood/accuracy")
    pts = ood["series"]["GRPO, teacher_context=demo"]
    assert [p["coverage"] for p in pts] == [8, 32]
    m, lo, hi = mean_ci([ood_acc("grpo", 32, "demo", s, STEPS) for s in SEEDS])
    assert (pts[1]["mean"], pts[1]["ci_low"], pts[1]["ci_high"]) == pytest.approx((m, lo, hi), rel=1e-6)
    assert ood["initial_model"] == pytest.approx(sum(ood_acc(a, c, x, s, 0) for a, c, x in GRID for s in SEEDS) / 18)

    rich = summary["richness"]
    assert rich["levels"] == ["none", "demo", "answer"]  # ordered by information, not alphabetically
    acc = next(p for p in rich["panels"] if p["metric"] == "eval/organism:ood/accuracy")
    pts = acc["series"]["coverage=8"]
    assert [p["level"] for p in pts] == ["none", "demo", "answer"]
    for p, ctx in zip(pts, ("none", "demo", "answer")):
        m, lo, hi = mean_ci([ood_acc("sdpo", 8, ctx, s, STEPS) for s in SEEDS])
        assert (p["mean"], p["ci_low"], p["ci_high"]) == pytest.approx((m, lo, hi), rel=1e-6)
    ref = acc["references"]["coverage=8"]
    assert ref["grpo"] == pytest.approx(mean_ci([ood_acc("grpo", 8, "demo", s, STEPS) for s in SEEDS])[0])
    epi = next(p for p in rich["panels"] if p["metric"] == "eval/organism:ood/epistemic")
    assert [p["mean"] for p in epi["series"]["coverage=8"]] == pytest.approx([2.1, 2.1, 2.1])

    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    sections = {r["section"] for r in rows}
    assert sections == {"final", "epistemic_change", "coverage", "richness"}
    r = next(r for r in rows
             if r["section"] == "richness" and r["metric"] == "eval/organism:ood/accuracy@teacher_context=answer")
    assert float(r["mean"]) == pytest.approx(mean_ci([ood_acc("sdpo", 8, "answer", s, STEPS) for s in SEEDS])[0])


def test_curves_aggregate_over_seeds_per_step(built):
    _, out, _, _ = built
    curves = json.loads((out / "summary.json").read_text())["curves"]
    pts = curves["reward/mean"][group_label("sdpo", 32, "demo")]
    assert [p["step"] for p in pts] == [1, 2, 3, 4]
    m, lo, hi = mean_ci([reward("sdpo", 32, "demo", s, 3) for s in SEEDS])
    assert (pts[2]["mean"], pts[2]["ci_low"], pts[2]["ci_high"]) == pytest.approx((m, lo, hi), rel=1e-6)
    ood = curves["eval/organism:ood/accuracy"][group_label("grpo", 8, "demo")]
    assert [p["step"] for p in ood] == [0, 2, 4]


def test_single_run_and_cli(tmp_path, capsys):
    run = write_run(tmp_path / "runs", "grpo", 8, "demo", 0)
    (run / "eval").rename(run / "eval-moved")  # no samples: no per-word figure, no samples section
    args = argparse.Namespace(runs_dir=str(tmp_path / "runs"), out=str(tmp_path / "out"), title=None)
    assert report_cmd.run(args) == 0
    assert "1 runs, 1 groups" in capsys.readouterr().out
    text = (tmp_path / "out" / "report.html").read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["groups"][0]["label"] == "all runs"
    g = summary["groups"][0]["metrics"]["reward/mean@final"]
    assert g["n"] == 1 and g["mean"] == pytest.approx(reward("grpo", 8, "demo", 0, STEPS)) and g["ci_low"] is None
    assert 'id="curve-reward-mean"' in text and 'id="samples"' not in text and "epistemic-change" not in text
    assert "coverage-sweep" not in text and "richness-sweep" not in text


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        report.build_report(tmp_path / "nope", tmp_path / "out")


def test_highlight_escapes_and_marks():
    html = report.highlight_epistemic("<i>Wait</i> & unlikely HMMM")
    assert html == "&lt;i&gt;<mark>Wait</mark>&lt;/i&gt; &amp; un<mark>likely</mark> <mark>HMM</mark>M"


def test_run_stopped_after_the_initial_eval_has_no_final_value(tmp_path):
    run = write_run(tmp_path / "runs", "grpo", 8, "demo", 0)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n")  # only step 0 was logged
    data = report.analyze(tmp_path / "runs")
    table = data.table[data.groups[0].label]
    assert table["eval/organism:ood/accuracy@0"]["mean"] == pytest.approx(ood_acc("grpo", 8, "demo", 0, 0))
    assert table["eval/organism:ood/accuracy@final"]["n"] == 0
    assert data.epistemic_change["organism:ood"]["groups"]  # the eval samples of step 4 are still there


def test_groups_whose_values_print_alike_stay_apart(tmp_path):
    for i, lr in enumerate((0.1, 0.1000000001)):
        run = tmp_path / f"r{i}"
        run.mkdir()
        load_config(None, {"actor.lr": lr, "output_dir": str(run)}).save(run / "config.yaml")
        (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/mean": i}) + "\n")
    _, groups = report.group_runs(report.load_runs(tmp_path))
    assert [g.label for g in groups] == ["lr=0.1", "lr=0.1 #2"]
