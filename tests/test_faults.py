"""The fault suite: what a careful user does wrong, and what `sdlab` answers.

Each case runs the real command line (`sdlab.cli.main`, in process) and checks the exit status,
the one-line message and that no traceback is printed; the run-folder cases check that nothing is
mixed up or lost. (The grader from scripts without a main guard, stdin, `-c`, threads and torchrun
is tests/test_grader_entrypoints.py.)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdlab.cli import main
from sdlab.engine.metrics import read_metrics
from sdlab.engine.runs import LOCK, RunLock


@pytest.fixture
def data(toy_data):
    return toy_data


def base(model, data, out, *extra):
    return [f"model.name_or_path={model}", f"data.train={data}", f"output_dir={out}", "model.device=cpu",
            "reward.grader=strict", "rollout.n=2", "rollout.max_new_tokens=4", "data.train_batch_size=2",
            "steps=1", "logging.progress=false", *extra]


def fails(capsys, argv, *fragments) -> str:
    """`sdlab ARGV` exits 2 with one line naming every fragment, and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.startswith("sdlab ")]
    assert lines and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[-1], (f, lines[-1])
    return lines[-1]


# ----------------------------------------------------------------------------- a run folder belongs to one run


def test_a_second_process_is_refused_and_a_stale_lock_taken_over(tiny_qwen3, data, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):
        fails(capsys, ["train", *base(tiny_qwen3, data, out)], "is in use by pid", str(os.getpid()))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "since": "earlier"}))
    assert main(["train", *base(tiny_qwen3, data, out)]) == 0
    assert not (out / LOCK).exists()  # released at the end


def test_fresh_run_into_an_old_one_is_refused_or_moved_aside(tiny_qwen3, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *base(tiny_qwen3, data, out, "checkpoint.save_every=1")]) == 0
    first = read_metrics(out / "metrics.jsonl")
    fails(capsys, ["train", *base(tiny_qwen3, data, out)], "already holds a run", "--resume", "--overwrite")
    assert main(["train", *base(tiny_qwen3, data, out, "seed=5"), "--overwrite"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and read_metrics(aside[0] / "metrics.jsonl") == first  # nothing deleted
    assert (aside[0] / "checkpoints" / "step-1" / "COMPLETE").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 5


def test_resume_refuses_a_changed_experiment_and_records_allowed_changes(tiny_qwen3, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *base(tiny_qwen3, data, out, "checkpoint.save_every=1")]) == 0
    original = (out / "config.yaml").read_text()
    for change, key in (("actor.lr=0.5", "actor.lr"), ("algorithm=sdpo", "algorithm"), ("seed=3", "seed")):
        fails(capsys, ["train", *base(tiny_qwen3, data, out, change), "--resume"], "would change the experiment", key)
    assert main(["train", *base(tiny_qwen3, data, out, "steps=2", "logging.tensorboard=false"), "--resume"]) == 0
    assert (out / "config.yaml").read_text() == original  # the record of the earlier steps is kept
    assert yaml.safe_load((out / "config.resume-1.yaml").read_text())["steps"] == 2
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]


# ----------------------------------------------------------------------------- checkpoints that verify themselves


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated model": lambda c: _truncate(c / "model" / "model.safetensors"),
    "missing optimizer shard": lambda c: next((c / "state").glob("*.distcp")).unlink(),
    "missing rng": lambda c: (c / "rng" / "rank-0.safetensors").unlink(),
    "garbage trainer_state": lambda c: (c / "trainer_state.json").write_text("{not json"),
    "flipped byte": lambda c: (c / "state" / ".metadata").write_bytes(
        b"x" + (c / "state" / ".metadata").read_bytes()[1:]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_skipped_for_the_newest_intact_one(tiny_qwen3, data, tmp_path, capsys, caplog,
                                                                    damage):
    out = tmp_path / "run"
    common = base(tiny_qwen3, data, out, "checkpoint.save_every=1", "checkpoint.keep_last=3")
    assert main(["train", *common, "steps=3"]) == 0
    DAMAGE[damage](out / "checkpoints" / "step-3")
    with caplog.at_level(logging.WARNING):
        assert main(["train", *common, "steps=4", "--resume"]) == 0
    assert "step-3 is damaged" in caplog.text and "resuming from step-2" in caplog.text
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]  # step 3 was redone


def test_no_intact_checkpoint_is_one_line(tiny_qwen3, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *base(tiny_qwen3, data, out, "checkpoint.save_every=1")]) == 0
    (out / "checkpoints" / "step-1" / "MANIFEST.json").write_text("[]")
    fails(capsys, ["train", *base(tiny_qwen3, data, out), "--resume"], "no intact checkpoint", "step-1")


def _tmpfs(path: Path, size: str, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_full_disk_is_named_and_leaves_no_temporary_folder(tiny_qwen3, data, tmp_path, capsys):
    disk = tmp_path / "small"
    if not _tmpfs(disk, "600k"):
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        out = disk / "run"
        fails(capsys, ["train", *base(tiny_qwen3, data, out, "checkpoint.save_every=1")],
              "no space left on device while saving checkpoint step 1", "MB")
        assert not list((out / "checkpoints").glob(".tmp-step-*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_read_only_output_dir_is_named(tiny_qwen3, data, tmp_path, capsys):
    disk = tmp_path / "ro"
    if not _tmpfs(disk, "1m", "ro"):
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        fails(capsys, ["train", *base(tiny_qwen3, data, disk / "run")], "output_dir", "not writable")
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ----------------------------------------------------------------------------- ordinary mistakes, one line each


def test_ordinary_mistakes(tiny_qwen3, data, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    fails(capsys, ["train", *base(tiny_qwen3, empty, tmp_path / "a")], "holds no problems")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"problem": "1+1?", "answer": "2"}\n{"problem": "caf\xe9", "answer": "1"}\n')
    fails(capsys, ["train", *base(tiny_qwen3, bad, tmp_path / "b")], "bad.jsonl:2", "not valid UTF-8")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    fails(capsys, ["train", *base(tiny_qwen3, data, a_file)], "is a file, not a folder")
    fails(capsys, ["train", *base(tmp_path / "no" / "such" / "model", data, tmp_path / "c")], "no such folder")
    (tmp_path / "not_a_model").mkdir()
    fails(capsys, ["train", *base(tmp_path / "not_a_model", data, tmp_path / "d")], "has no config.json")
    fails(capsys, ["train", *base(tiny_qwen3, data, tmp_path / "e", "rollout.n=1")], "rollout.n=1", "zero gradient")


def test_silent_no_ops_are_refused(tiny_qwen3, data, tmp_path, capsys):
    fails(capsys, ["eval", "--model", str(tiny_qwen3), "--benchmarks", str(data), "--n", "0", "--out",
                   str(tmp_path / "ev")], "--n", ">= 1")
    (tmp_path / "nothing").mkdir()
    fails(capsys, ["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "rep")], "no runs in")
    fails(capsys, ["epistemic", str(tmp_path)], "is a folder", "samples.jsonl")
    responses = tmp_path / "r.jsonl"
    responses.write_bytes(b'{"response": "ok"}\n{"response": "\xff"}\n')
    fails(capsys, ["epistemic", str(responses)], "r.jsonl:2", "not valid UTF-8")


def test_an_unparseable_run_config_is_reported_by_the_report(tiny_qwen3, data, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", *base(tiny_qwen3, data, runs / "good")]) == 0
    (runs / "broken").mkdir()
    (runs / "broken" / "config.yaml").write_text("a: [unclosed\n")
    (runs / "broken" / "metrics.jsonl").write_text('{"step": 1}\n')
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path / "rep")]) == 0
    assert f"skipping {runs / 'broken'}: its config.yaml does not parse" in capsys.readouterr().err


def test_a_long_prompt_is_cut_with_a_warning_and_counted(tiny_qwen3, tmp_path, caplog):
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"id": "long", "problem": "x " * 400, "answer": "1"}) + "\n"
                    + json.dumps({"id": "short", "problem": "1+0?", "answer": "1"}) + "\n")
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert main(["train", *base(tiny_qwen3, data, out, "data.max_prompt_length=200", "data.shuffle=false")]) == 0
    assert "are cut to their last 200 tokens" in caplog.text
    assert read_metrics(out / "metrics.jsonl")[-1]["data/prompt_truncated"] == 0.5
