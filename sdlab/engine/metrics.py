"""Metric sinks: `metrics.jsonl` always (append-only, one object per step), TensorBoard and W&B
when enabled. Only the main process writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsWriter:
    def __init__(self, output_dir: Path, *, tensorboard: bool = False, wandb: bool = False,
                 wandb_project: str = "sdlab", run_name: str | None = None, config: dict | None = None,
                 enabled: bool = True):
        self.enabled = enabled
        self.path = output_dir / "metrics.jsonl"
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(output_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wb
            except ImportError as e:
                raise ImportError("logging.wandb=true needs `pip install sdlab[wandb]`") from e
            self.wandb = wb.init(project=wandb_project, name=run_name or output_dir.name, config=config,
                                 dir=str(output_dir))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        for k, v in record.items():
            if k == "step" or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if self.tb is not None:
                self.tb.add_scalar(k, v, step)
        if self.tb is not None:
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rewind_metrics(path: Path, step: int) -> None:
    """On resume: keep lines up to `step`; move later lines (from the lost part of the run) to
    metrics.orphaned.jsonl instead of deleting them."""
    if not path.exists():
        return
    keep, orphan = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash mid-write
            orphan.append(line)
            continue
        (keep if rec.get("step", 0) <= step else orphan).append(line)
    if orphan:
        with open(path.with_name("metrics.orphaned.jsonl"), "a") as f:
            f.write("\n".join(orphan) + "\n")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    tmp.replace(path)
