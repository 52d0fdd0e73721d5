"""Runs grouped into settings: the config keys that differ between runs (ignoring the seed and the
run's name), one group per setting whose runs are its seeds, and the labels shown for them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ...config import ALGORITHMS, CONTEXT_LEVELS
from .runs import RunData

__all__ = ["Group", "group_runs", "label", "order_value", "series_of", "short_keys"]

IGNORED_KEYS = ("seed", "output_dir", "logging.run_name")
CONTEXT_ORDER = CONTEXT_LEVELS  # less -> more information
ALGORITHM_ORDER = ALGORITHMS
LABEL_PRIORITY = ("algorithm", "teacher_context", "data.coverage", "sdpo.teacher.kind")


def canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def order_value(key: str, v: Any) -> tuple:
    if key == "teacher_context" and v in CONTEXT_ORDER:
        return (0, CONTEXT_ORDER.index(v))
    if key == "algorithm" and v in ALGORITHM_ORDER:
        return (0, ALGORITHM_ORDER.index(v))
    if v is None:
        return (1, 0)
    if isinstance(v, bool):
        return (2, int(v))
    if isinstance(v, (int, float)):
        return (3, float(v))
    if isinstance(v, str):
        return (4, v)
    return (5, canon(v))


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (last if lasts.count(last) == 1 else k) for k, last in zip(keys, lasts)}


def fmt_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(fmt_value(x) for x in v)
    return str(v)


def label(values: dict[str, Any], short: dict[str, str]) -> str:
    parts = []
    for k, v in values.items():
        if k == "algorithm":
            parts.append(str(v).upper())
        else:
            parts.append(f"{short.get(k, k)}={fmt_value(v)}")
    return ", ".join(parts) or "all runs"


@dataclass
class Group:
    label: str
    values: dict[str, Any]
    """Differing key -> value shared by the runs of this group."""
    runs: list[RunData]
    label_keys: list[str] = field(default_factory=list)
    """The differing keys that appear in the label (the others are implied by them)."""

    @property
    def algorithm(self) -> str:
        return self.runs[0].algorithm if self.runs else ""

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]


def group_runs(runs: Sequence[RunData], ignore: Iterable[str] = IGNORED_KEYS) -> tuple[list[str], list[Group]]:
    """(differing keys, groups): groups of runs whose configs are equal except for `ignore`."""
    flats = [r.flat for r in runs]
    keys: list[str] = []
    for f in flats:
        for k in f:
            if k not in keys:
                keys.append(k)
    skip = set(ignore)
    differing = [k for k in keys if k not in skip and len({canon(f.get(k)) for f in flats}) > 1]
    buckets: dict[tuple, list[RunData]] = {}
    for r, f in zip(runs, flats):
        buckets.setdefault(tuple(canon(f.get(k)) for k in differing), []).append(r)
    short = short_keys(differing)
    keys_shown = _label_keys(differing, [tuple(members[0].flat.get(k) for k in differing)
                                         for members in buckets.values()])
    groups = []
    for members in buckets.values():
        f = members[0].flat
        values = {k: f.get(k) for k in differing}
        members = sorted(members, key=lambda r: (order_value("seed", r.seed), r.name))
        groups.append(Group(label({k: values[k] for k in keys_shown}, short), values, members, keys_shown))
    groups.sort(key=lambda g: tuple(order_value(k, g.values[k]) for k in differing))
    seen: dict[str, int] = {}
    for g in groups:  # values that print alike (0.1 vs 0.1000001) must not merge two groups
        seen[g.label] = seen.get(g.label, 0) + 1
        if seen[g.label] > 1:
            g.label = f"{g.label} #{seen[g.label]}"
    return differing, groups


def _label_keys(differing: list[str], rows: list[tuple]) -> list[str]:
    """The differing keys needed to tell the groups apart: keys that are implied by the others
    (e.g. actor.lr set together with algorithm) are left out of labels, least important first."""
    order = [k for k in LABEL_PRIORITY if k in differing] + [k for k in differing if k not in LABEL_PRIORITY]
    idx = {k: differing.index(k) for k in differing}
    keep = list(order)
    n_groups = len({tuple(canon(v) for v in r) for r in rows})
    for k in reversed(order):
        trial = [x for x in keep if x != k]
        if len({tuple(canon(r[idx[x]]) for x in trial) for r in rows}) == n_groups:
            keep = trial
    return keep


def series_of(groups: list[Group], drop: Sequence[str], short: dict[str, str],
              default: str = "all runs") -> dict[str, list[Group]]:
    """Groups bucketed by their values without the keys in `drop` (label -> groups): the lines of
    a figure whose x axis is one of the dropped keys."""
    out: dict[str, list[Group]] = {}
    for g in groups:
        vals = {k: g.values[k] for k in (g.label_keys or g.values) if k not in drop}
        out.setdefault(label(vals, short) if vals else default, []).append(g)
    return out
