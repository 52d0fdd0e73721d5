"""MetricsWriter: metrics.jsonl always; TensorBoard event files readable by TensorBoard's own reader."""

import json

import pytest

from sdlab.engine.metrics import MetricsWriter, read_metrics


def test_jsonl_only_by_default(tmp_path):
    w = MetricsWriter(tmp_path)
    w.log(1, {"reward/mean": 0.5, "bad": float("nan")})
    w.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 1, "reward/mean": 0.5, "bad": None}]
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_event_file_has_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    w = MetricsWriter(tmp_path, tensorboard=True)
    w.log(0, {"eval/organism:ood/accuracy": 0.25})
    w.log(1, {"reward/mean": 0.5, "actor/entropy": 1.25, "note": "text is skipped", "flag": True})
    w.log(2, {"reward/mean": 0.75, "actor/entropy": 1.0})
    w.close()

    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"reward/mean", "actor/entropy", "eval/organism:ood/accuracy"} <= set(tags)
    assert "note" not in tags and "flag" not in tags
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.5), (2, 0.75)]
    assert [(e.step, e.value) for e in acc.Scalars("actor/entropy")] == [(1, 1.25), (2, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/organism:ood/accuracy")] == [(0, 0.25)]
    # the jsonl has the same numbers
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and rows[2]["reward/mean"] == 0.75


def test_disabled_writer_writes_nothing(tmp_path):
    w = MetricsWriter(tmp_path, tensorboard=True, enabled=False)
    w.log(1, {"reward/mean": 1.0})
    w.close()
    assert list(tmp_path.iterdir()) == []
