"""Numbers over the seeds of a group: mean and 95% Student-t interval."""

from __future__ import annotations

import math
from typing import Any, Sequence

from .runs import num

__all__ = ["nan", "point", "stat"]

STAT_KEYS = ("n", "mean", "ci_low", "ci_high")


def stat(values: Sequence[float]) -> dict[str, Any]:
    """mean and 95% Student-t interval over seeds (interval undefined with fewer than 2 values)."""
    from ...analysis.stats import mean_ci_t

    vals = [float(v) for v in values if num(v) is not None]
    if not vals:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None, "values": []}
    m, lo, hi = mean_ci_t(vals)
    clean = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    return {"n": len(vals), "mean": clean(m), "ci_low": clean(lo), "ci_high": clean(hi), "values": vals}


def point(x_key: str, x: Any, s: dict[str, Any]) -> dict[str, Any]:
    """One point of a curve: {x_key: x, n, mean, ci_low, ci_high} from a `stat`."""
    return {x_key: x, **{k: s[k] for k in STAT_KEYS}}


def nan(v: Any) -> float:
    """None as nan (for drawing: no band there)."""
    return float("nan") if v is None else float(v)
