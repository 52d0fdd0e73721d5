"""`sdlab sweep`: grid expansion, naming, validation, skip / resume decisions, failure isolation,
parallel runs, and an end-to-end sweep of the model organism that is interrupted, resumed and
reported."""

import argparse
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from sdlab.commands import sweep as sweep_cmd
from sdlab.config import ConfigError
from sdlab.experiments import sweep as sw


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine, OpenMP threads spinning
    against each other make every matmul ~10x slower. Restored after this module."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


BASE = {"model": {"name_or_path": "organism"}, "data": {"train": "organism:rl", "prompt_template": "plain"},
        "eval": {"benchmarks": ["organism:train", "organism:ood"]}, "reward": {"grader": "strict"}}


def make_sweep(tmp_path, **spec):
    doc = {"base": BASE, "output_dir": str(tmp_path / "out"), **spec}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def expand(tmp_path, **spec):
    return sw.expand(sw.load_sweep(make_sweep(tmp_path, **spec)))


# ---------------------------------------------------------------------------- expansion


def test_grid_names_and_configs(tmp_path):
    runs = expand(tmp_path, overrides={"steps": 3, "rollout": {"n": 4}},
                  axes={"algorithm": ["grpo", "sdpo"], "data.coverage": [8, 32], "seed": [0, 1]},
                  name="{algorithm}-cov{data.coverage}-s{seed}")
    assert [r.name for r in runs] == [f"{a}-cov{c}-s{s}" for a in ("grpo", "sdpo") for c in (8, 32) for s in (0, 1)]
    for r in runs:
        c = r.config
        assert (c.algorithm, c.data.coverage, c.seed) == (r.values["algorithm"], r.values["data.coverage"],
                                                          r.values["seed"])
        assert c.output_dir == str(tmp_path / "out" / r.name) and r.dir == tmp_path / "out" / r.name
        assert c.logging.run_name == r.name
        assert c.steps == 3 and c.rollout.n == 4  # overrides (flat or nested) reach every run
        assert c.model.name_or_path == "organism" and c.eval.benchmarks == ["organism:train", "organism:ood"]
    assert sw.differing_keys([r.config for r in runs]) == ["algorithm", "seed", "data.coverage"]


def test_linked_axis_exclude_and_default_names(tmp_path):
    runs = expand(tmp_path, axes={
        "method": {"grpo": {"algorithm": "grpo", "actor.lr": 1e-6},
                   "sdpo": {"algorithm": "sdpo", "actor": {"lr": 1e-5}, "sdpo.teacher.kind": "ema"}},
        "teacher_context": ["none", "demo"]},
        exclude=[{"method": "grpo", "teacher_context": ["demo"]}])
    assert [r.name for r in runs] == ["grpo-none", "sdpo-none", "sdpo-demo"]
    grpo, sdpo = runs[0].config, runs[2].config
    assert (grpo.algorithm, grpo.actor.lr, grpo.sdpo.teacher.kind) == ("grpo", 1e-6, "frozen")
    assert (sdpo.algorithm, sdpo.actor.lr, sdpo.sdpo.teacher.kind, sdpo.teacher_context) == (
        "sdpo", 1e-5, "ema", "demo")
    # nested overrides merge into the base instead of replacing whole sections
    runs = expand(tmp_path, base={**BASE, "sdpo": {"teacher": {"update_rate": 0.1}}},
                  axes={"sdpo.teacher": [{"kind": "ema"}]},
                  name="{sdpo.teacher.kind}-{sdpo.teacher.update_rate}-{actor.lr:.0e}")
    assert runs[0].name == "ema-0.1-1e-06" and runs[0].config.sdpo.teacher.update_rate == 0.1


def test_base_may_use_dotted_keys(tmp_path):
    runs = expand(tmp_path, base={**BASE, "data.coverage": 8, "sdpo.teacher.kind": "ema"}, axes={"seed": [0]})
    assert runs[0].config.data.coverage == 8 and runs[0].config.data.train == "organism:rl"
    assert runs[0].config.sdpo.teacher.kind == "ema" and runs[0].name == "0"


def test_base_file_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text(yaml.safe_dump({**BASE, "steps": 7}))
    (tmp_path / "sweeps").mkdir()
    path = tmp_path / "sweeps" / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "../configs/base.yaml", "axes": {"seed": [0, 1]}, "name": "s{seed}"}))
    sweep = sw.load_sweep(path)
    assert sweep.output_dir == Path("runs/s")  # default: runs/<sweep file stem>
    runs = sw.expand(sweep)
    assert [r.config.steps for r in runs] == [7, 7] and runs[1].config.output_dir == str(Path("runs/s/s1"))


@pytest.mark.parametrize("spec, message", [
    ({"axes": {"rollout.n": [4, 0]}, "name": "n{rollout.n}"}, r"sweep run 'n0': rollout\.n: must be >= 1"),
    ({"axes": {"rollout.nn": [1]}}, r"unknown config key rollout\.nn"),
    ({"axes": {"algorithm": ["grpo", "ppo"]}, "name": "{algorithm}"},
     r"sweep run 'ppo': algorithm: 'ppo' is not one of"),
    ({"axis": {"seed": [0]}}, r"unknown sweep key 'axis'"),
    ({"axes": {"seed": [0, 1], "algorithm": ["grpo", "sdpo"]}, "name": "{algorithm}"}, r"two runs get the name 'grpo'"),
    ({"axes": {"seed": [0]}, "name": "{nonsense}"}, r"neither an axis nor a config key"),
    ({"axes": {"seed": []}}, r"axes\.seed: the list of values is empty"),
    ({"axes": {"output_dir": ["a", "b"]}}, r"output_dir is set by the sweep"),
    ({"base": "missing.yaml"}, r"sweep base config not found"),
    ({"axes": {"seed": [0]}, "exclude": [{"seed": 0}]}, r"the grid is empty"),
    ({"parallel": 0}, r"parallel: expected an integer >= 1"),
])
def test_validation_errors_name_run_and_key(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        expand(tmp_path, **spec)


def test_select_only(tmp_path):
    runs = expand(tmp_path, axes={"algorithm": ["grpo", "sdpo"], "seed": [0, 1]}, name="{algorithm}-s{seed}")
    assert [r.name for r in sw.select(runs, "sdpo-*")] == ["sdpo-s0", "sdpo-s1"]
    assert [r.name for r in sw.select(runs, "grpo-s1,sdpo-s0")] == ["grpo-s1", "sdpo-s0"]
    with pytest.raises(ConfigError, match="matches no run"):
        sw.select(runs, "ppo*")


def cli_args(path, **kw):
    p = argparse.ArgumentParser()
    sweep_cmd.add_arguments(p)
    argv = [str(path)] + [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in kw.items()]
    return p.parse_args(argv)


def test_dry_run_prints_the_grid_and_writes_nothing(tmp_path, capsys):
    path = make_sweep(tmp_path, axes={"algorithm": ["grpo", "sdpo"], "data.coverage": [8, 200]},
                      name="{algorithm}-cov{data.coverage}")
    assert sweep_cmd.run(cli_args(path, dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "4 of 4 runs" in out
    header = next(line for line in out.splitlines() if line.startswith("name"))
    assert header.split() == ["name", "algorithm", "data.coverage", "status"]
    assert any(line.split()[:3] == ["sdpo-cov200", "sdpo", "200"] for line in out.splitlines())
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- execution (fake runners)


class Recorder:
    def __init__(self, fail=(), sleep=0.0, interrupt=()):
        self.calls, self.fail, self.sleep, self.interrupt = [], set(fail), sleep, set(interrupt)
        self.active = self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, run, resume):
        with self.lock:
            self.calls.append((run.name, resume))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.sleep)
            assert json.loads((run.dir / "status.json").read_text())["state"] == "running"
            assert (run.dir / "config.yaml").exists()
            if run.name in self.interrupt:
                raise KeyboardInterrupt
            if run.name in self.fail:
                raise ValueError(f"data.train: no such file for {run.name}")
        finally:
            with self.lock:
                self.active -= 1


def fake_checkpoint(run_dir, step=1):
    d = run_dir / "checkpoints" / f"step-{step}"
    d.mkdir(parents=True)
    (d / "COMPLETE").write_text("ok\n")


def prepared(tmp_path, names=("a", "b", "c", "d")):
    sweep = sw.load_sweep(make_sweep(tmp_path, axes={"logging.wandb_project": list(names)},
                                     name="{logging.wandb_project}"))
    runs = sw.expand(sweep)
    sw.prepare(runs, sweep)
    return sweep, runs


def test_prepare_writes_configs_status_and_sweep_json(tmp_path):
    sweep, runs = prepared(tmp_path)
    for r in runs:
        st = json.loads((r.dir / "status.json").read_text())
        assert st["state"] == "pending" and st["attempts"] == 0 and st["error"] is None
        again = yaml.safe_load((r.dir / "config.yaml").read_text())
        assert again["output_dir"] == str(r.dir) and again["logging"]["wandb_project"] == r.name
    doc = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [x["name"] for x in doc["runs"]] == ["a", "b", "c", "d"]
    assert (doc["differing_keys"] == ["logging.wandb_project"]
            and doc["axes"] == {"logging.wandb_project": ["a", "b", "c", "d"]})


def test_skips_finished_and_resumes_interrupted_runs(tmp_path):
    _, runs = prepared(tmp_path)
    a, b, c, d = runs
    sw.write_status(a.dir, {**sw.read_status(a.dir), "state": "done"})
    sw.write_status(b.dir, {**sw.read_status(b.dir), "state": "failed", "error": "boom", "attempts": 1})
    fake_checkpoint(b.dir)
    # c was "running" when its sweep process died (no checkpoint yet): started over
    sw.write_status(c.dir, {**sw.read_status(c.dir), "state": "running", "sweep_pid": 2**22 + 12345, "attempts": 1,
                            "host": "elsewhere"})
    (c.dir / "metrics.jsonl").write_text('{"step": 0}\n')
    rec = Recorder()
    results = sw.run_sweep(runs, runner=rec, log=lambda *_: None)
    assert results == {"a": "done", "b": "done", "c": "done", "d": "done"}
    assert rec.calls == [("b", True), ("c", False), ("d", False)]
    st = sw.read_status(b.dir)
    assert st["state"] == "done" and st["attempts"] == 2 and st["resumed"] is True and st["error"] is None
    assert st["started_at"] and st["ended_at"]
    assert not (c.dir / "metrics.jsonl").exists() and (c.dir / "metrics.attempt-1.jsonl").exists()
    # a second pass runs nothing
    rec2 = Recorder()
    assert set(sw.run_sweep(runs, runner=rec2, log=lambda *_: None).values()) == {"done"} and rec2.calls == []


def test_failure_is_recorded_and_the_others_continue(tmp_path, monkeypatch, capsys):
    path = make_sweep(tmp_path, axes={"seed": [0, 1, 2]}, name="s{seed}")
    rec = Recorder(fail={"s1"})
    monkeypatch.setattr(sw, "inprocess_runner", rec)
    assert sweep_cmd.run(cli_args(path, in_process=True)) == 1
    assert [c[0] for c in rec.calls] == ["s0", "s1", "s2"]
    states = {n: sw.read_status(tmp_path / "out" / n) for n in ("s0", "s1", "s2")}
    assert [states[n]["state"] for n in ("s0", "s1", "s2")] == ["done", "failed", "done"]
    assert "ValueError: data.train: no such file for s1" in states["s1"]["error"]
    out = capsys.readouterr().out
    assert "2/3 done, 1 failed: s1" in out
    # re-running retries only the failed run (no checkpoint: from scratch)
    rec2 = Recorder()
    monkeypatch.setattr(sw, "inprocess_runner", rec2)
    assert sweep_cmd.run(cli_args(path, in_process=True)) == 0 and rec2.calls == [("s1", False)]


def test_parallel_runs_at_most_n_at_a_time(tmp_path):
    _, runs = prepared(tmp_path, names=("a", "b", "c", "d", "e"))
    rec = Recorder(fail={"c"}, sleep=0.3)
    results = sw.run_sweep(runs, parallel=2, runner=rec, log=lambda *_: None)
    assert rec.max_active == 2 and len(rec.calls) == 5
    assert results == {"a": "done", "b": "done", "c": "failed", "d": "done", "e": "done"}


def test_poll_runs_while_runs_go_and_once_at_the_end(tmp_path):
    """The demo's progress bar: `poll` is called from the calling thread during the runs (also with
    one run at a time) and after the last one."""
    _, runs = prepared(tmp_path, names=("a", "b"))
    rec = Recorder(sleep=0.3)
    seen = []
    results = sw.run_sweep(runs, runner=rec, log=lambda *_: None, poll_interval=0.05,
                           poll=lambda: seen.append((threading.current_thread() is threading.main_thread(),
                                                     len(rec.calls))))
    assert results == {"a": "done", "b": "done"}
    assert len(seen) >= 4 and all(main for main, _ in seen) and seen[-1][1] == 2
    assert {n for _, n in seen[:-1]} >= {1, 2}  # polled during both runs


def test_interrupt_stops_the_sweep_and_leaves_runs_resumable(tmp_path):
    _, runs = prepared(tmp_path)
    rec = Recorder(interrupt={"b"})
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(runs, runner=rec, log=lambda *_: None)
    assert [c[0] for c in rec.calls] == ["a", "b"]
    assert [sw.read_status(r.dir)["state"] for r in runs] == ["done", "failed", "pending", "pending"]
    assert sw.read_status(runs[1].dir)["error"].startswith("interrupted")


def test_changed_config_is_not_resumed(tmp_path):
    _, runs = prepared(tmp_path, names=("a", "b"))
    for r in runs:
        sw.write_status(r.dir, {**sw.read_status(r.dir), "state": "failed", "config_hash": "0000", "attempts": 1})
    fake_checkpoint(runs[0].dir)
    plans = {p.run.name: p for p in sw.plan(runs)}
    assert plans["a"].action == "stale" and "config changed" in plans["a"].note
    assert plans["b"].action == "start"  # no checkpoint: simply starts over with the new config
    rec = Recorder()
    assert sw.run_sweep(runs, runner=rec, log=lambda *_: None) == {"a": "failed", "b": "done"}
    assert rec.calls == [("b", False)]


def test_live_sweep_process_is_not_disturbed(tmp_path):
    import socket

    _, runs = prepared(tmp_path, names=("a",))
    sw.write_status(runs[0].dir, {**sw.read_status(runs[0].dir), "state": "running", "host": socket.gethostname(),
                                  "sweep_pid": os.getppid()})
    rec = Recorder()
    assert sw.run_sweep(runs, runner=rec, log=lambda *_: None) == {"a": "running"} and rec.calls == []


# ---------------------------------------------------------------------------- real training


PROBLEMS = [{"id": f"p{i}", "problem": f"{a}+{b}?", "answer": str(a + b)}
            for i, (a, b) in enumerate([(1, 1), (2, 3), (4, 4), (1, 5), (3, 3), (2, 2)])]


def test_real_training_failure_is_isolated(tmp_path, tiny_qwen3):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    base = {"model": {"name_or_path": str(tiny_qwen3), "device": "cpu"}, "reward": {"grader": "strict"},
            "data": {"train_batch_size": 2, "prompt_template": "plain"}, "rollout": {"n": 2, "max_new_tokens": 4},
            "steps": 1, "logging": {"progress": False}, "checkpoint": {"save_final_model": False}}
    path = make_sweep(tmp_path, base=base, axes={"data.train": [str(tmp_path / "missing.jsonl"), str(data)]},
                      name="{data.train}")
    sweep = sw.load_sweep(path)
    runs = sw.expand(sweep)
    sw.prepare(runs, sweep)
    results = sw.run_sweep(runs, runner=sw.inprocess_runner, log=lambda *_: None)
    bad, good = runs
    assert results == {bad.name: "failed", good.name: "done"}
    assert "missing.jsonl" in sw.read_status(bad.dir)["error"]
    assert [json.loads(x)["step"] for x in (good.dir / "metrics.jsonl").read_text().splitlines()] == [1]


def toy_sweep(tmp_path, model, **spec):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    ood = tmp_path / "toy_ood.jsonl"
    ood.write_text("".join(json.dumps({**p, "id": "o" + p["id"], "problem": p["problem"] + " "}) + "\n"
                           for p in PROBLEMS))
    base = {"model": {"name_or_path": str(model), "device": "cpu"}, "reward": {"grader": "strict"},
            "data": {"train": str(data), "train_batch_size": 2, "prompt_template": "plain"},
            "rollout": {"n": 4, "max_new_tokens": 8}, "steps": 2,
            "eval": {"benchmarks": [str(data), str(ood)], "every": 1, "limit": 4},
            "sdpo": {"distillation_topk": 8, "max_reprompt_len": 64},
            "logging": {"progress": False}, "checkpoint": {"save_every": 1, "save_final_model": False}}
    return make_sweep(tmp_path, base=base, **spec)


def test_subprocess_runner_isolates_runs_and_logs(tmp_path, tiny_qwen3, capsys):
    path = toy_sweep(tmp_path, tiny_qwen3, overrides={"steps": 1, "eval.every": 0},
                     axes={"rollout.max_new_tokens": [8, 0]}, name="len{rollout.max_new_tokens}")
    with pytest.raises(ConfigError, match=r"sweep run 'len0': rollout\.max_new_tokens: must be >= 1"):
        sweep_cmd.run(cli_args(path))  # every run is validated before anything runs
    assert not (tmp_path / "out").exists()

    good = yaml.safe_load(path.read_text())["base"]["data"]["train"]
    path = toy_sweep(tmp_path, tiny_qwen3, overrides={"steps": 1, "eval.every": 0},
                     axes={"method": {"ok": {"data.train": good},
                                      "bad": {"data.train": str(tmp_path / "missing.jsonl")}}},
                     name="{method}")
    assert sweep_cmd.run(cli_args(path, parallel=2)) == 1  # one subprocess per run, two at a time
    ok, bad = tmp_path / "out" / "ok", tmp_path / "out" / "bad"
    assert sw.read_status(ok)["state"] == "done", (ok / "train.log").read_text()[-3000:]
    st = sw.read_status(bad)
    assert st["state"] == "failed" and "exit code" in st["error"] and "missing.jsonl" in st["error"]
    log = (ok / "train.log").read_text()
    assert "-m sdlab.cli train" in log and str(ok / "config.yaml") in log
    assert [m["step"] for m in map(json.loads, (ok / "metrics.jsonl").read_text().splitlines())] == [1]
    assert "1/2 done, 1 failed: bad" in capsys.readouterr().out


def _train_in_process(run, resume):
    from sdlab.engine.trainer import train

    train(run.config, resume=resume)


ORGANISM_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "organism.yaml"
# A small organism (pretrained in seconds, cached per test session) and a tiny training budget.
SMALL_ORGANISM = {"pretrain": {"steps": 30, "warmup_steps": 5, "threads": 1},
                  "model": {"hidden_size": 32, "intermediate_size": 64}}


def test_end_to_end_organism_sweep_interrupted_resumed_and_reported(tmp_path, tmp_path_factory, monkeypatch):
    from sdlab.engine import trainer as trainer_mod
    from sdlab.engine.metrics import read_metrics
    from sdlab.experiments.report import build_report

    monkeypatch.setenv("SDLAB_ORGANISM_CACHE", str(tmp_path_factory.getbasetemp() / "organism-cache"))
    path = tmp_path / "organism-sweep.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(ORGANISM_CONFIG),
        "overrides": {"steps": 2, "data.train_batch_size": 2, "rollout.n": 4, "eval.every": 1, "eval.limit": 4,
                      "checkpoint.save_every": 1, "checkpoint.save_final_model": False, "logging.progress": False,
                      "organism": SMALL_ORGANISM},
        "axes": {"algorithm": ["grpo", "sdpo"], "data.coverage": [8, 32], "seed": [0, 1]},
        "name": "{algorithm}-cov{data.coverage}-s{seed}", "output_dir": str(tmp_path / "out")}))
    sweep = sw.load_sweep(path)
    runs = sw.expand(sweep)
    assert len(runs) == 8 and all(r.config.model.name_or_path == "organism" for r in runs)
    sw.prepare(runs, sweep)

    calls = []
    original_step = trainer_mod.Trainer.step

    def interrupting_runner(run, resume):
        calls.append((run.name, resume))
        if len(calls) < 4:
            return _train_in_process(run, resume)

        def step(trainer):  # Ctrl-C during the second step of the fourth run, after its step-1 checkpoint
            if trainer.step_idx == 1:
                raise KeyboardInterrupt
            return original_step(trainer)

        with monkeypatch.context() as m:
            m.setattr(trainer_mod.Trainer, "step", step)
            _train_in_process(run, resume)

    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(runs, runner=interrupting_runner, log=lambda *_: None)
    assert [sw.read_status(r.dir)["state"] for r in runs] == ["done"] * 3 + ["failed"] + ["pending"] * 4
    fourth = runs[3]
    assert sw.read_status(fourth.dir)["error"].startswith("interrupted")
    assert (fourth.dir / "checkpoints" / "step-1" / "COMPLETE").exists()

    # the same sweep again, through the command (in-process to keep the test fast): finished runs are
    # skipped, the interrupted one resumes from its checkpoint, the others start
    resumed = []

    def recording(run, resume):
        resumed.append((run.name, resume))
        _train_in_process(run, resume)

    monkeypatch.setattr(sw, "inprocess_runner", recording)
    assert sweep_cmd.run(cli_args(path, in_process=True)) == 0
    assert resumed == [(fourth.name, True)] + [(r.name, False) for r in runs[4:]]
    for r in runs:
        assert sw.read_status(r.dir)["state"] == "done", r.name
        rows = read_metrics(r.dir / "metrics.jsonl")
        assert [m["step"] for m in rows] == [0, 1, 2], r.name
        assert "eval/organism:ood/accuracy" in rows[0] and "reward/mean" in rows[2]
        assert sorted(p.name for p in (r.dir / "eval").iterdir()) == ["step-0", "step-1", "step-2"]
    st = sw.read_status(fourth.dir)
    assert st["attempts"] == 2 and st["resumed"] is True

    report = build_report(tmp_path / "out", tmp_path / "report")
    summary = json.loads((report.parent / "summary.json").read_text())
    assert [g["label"] for g in summary["groups"]] == ["GRPO, coverage=8", "GRPO, coverage=32",
                                                       "SDPO, coverage=8", "SDPO, coverage=32"]
    assert all(g["seeds"] == [0, 1] for g in summary["groups"])
    assert summary["benchmarks"] == {"in_domain": ["organism:train"], "ood": ["organism:ood"]}
    assert summary["coverage"]["x"] == [8, 32]
    assert set(summary["epistemic_change"]) == {"organism:train", "organism:ood"}
    for g in summary["groups"]:
        acc = g["metrics"]["eval/organism:ood/accuracy@final"]
        assert acc["n"] == 2 and 0.0 <= acc["mean"] <= 1.0
    text = report.read_text()
    for fig in ("curve-reward-mean", "curve-eval-organism-train-accuracy", "curve-eval-organism-ood-accuracy",
                "coverage-sweep", "epistemic-change-organism-ood", "samples"):
        assert f'id="{fig}"' in text, fig


def test_sigterm_stops_the_sweep_and_its_runs(tmp_path, tiny_qwen3):
    import signal
    import subprocess
    import sys

    path = toy_sweep(tmp_path, tiny_qwen3, overrides={"steps": 100000, "eval.every": 0, "rollout.n": 2,
                                                      "rollout.max_new_tokens": 4},
                     axes={"seed": [0, 1, 2]}, name="s{seed}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "sdlab.cli", "sweep", str(path), "--parallel", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    out = tmp_path / "out"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # both runs are training (they have logged steps and saved a checkpoint)
            if all(sw.has_checkpoint(out / n) for n in ("s0", "s1")):
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        else:
            pytest.fail("the runs did not start within 120 s")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:  # never leave the sweep's training runs behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = proc.stdout.read()
    assert proc.returncode == 130, log
    states = {n: sw.read_status(out / n) for n in ("s0", "s1", "s2")}
    assert [states[n]["state"] for n in ("s0", "s1", "s2")] == ["failed", "failed", "pending"], log
    assert all(states[n]["error"].startswith("interrupted") for n in ("s0", "s1"))
    sizes = [(out / n / "metrics.jsonl").stat().st_size for n in ("s0", "s1")]
    time.sleep(2)  # the training subprocesses are gone: nothing writes any more
    assert [(out / n / "metrics.jsonl").stat().st_size for n in ("s0", "s1")] == sizes
    assert [p.action for p in sw.plan(sw.expand(sw.load_sweep(path)))] == ["resume", "resume", "start"]
