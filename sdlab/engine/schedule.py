"""The learning-rate schedule of every optimizer in the engine (RL steps and SFT steps)."""

from __future__ import annotations

import math

from ..config import LR_SCHEDULES


def lr_at(step: int, total_steps: int, lr: float, *, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """Linear warmup over warmup_steps, then constant / cosine / linear decay to 0 over the
    remaining steps (0-based step)."""
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return lr * (1 - progress)
    raise ValueError(f"unknown lr schedule {schedule!r} ({' | '.join(LR_SCHEDULES)})")
