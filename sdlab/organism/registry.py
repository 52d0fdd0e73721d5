"""How the engine finds the organism: `model.name_or_path: organism` and `data.train: organism:rl`.

The run config's `organism:` mapping holds the world's overrides, plus optional `model:` and
`pretrain:` sub-mappings for the tiny model and its pretraining, and `version:` (1 or 2; default
`versions.DEFAULT_VERSION` = 1, world v1 exactly as before). The world seed is the world's `seed`
key (`organism.seed=1`), the pretraining seed `organism.pretrain.seed`. The base model is
pretrained once per (world, model, pretraining) hash and cached (`$SDLAB_ORGANISM_CACHE`, else
~/.cache/sdlab/organism), or taken from the bases shipped in the package (`bases.py`).

Problem sources: `organism:rl` / `organism:train` (the RL training set of size |D|), `organism:ood`,
`organism:direct`, `organism:search`, and for v2 also `organism:iid`; a `:one` or `:two` suffix
(v2: `organism:ood:two`) keeps one- or two-step problems only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .pretrain import pretrain
from .versions import make_world, world_config

_SPLITS = ("rl", "train", "ood", "direct", "search", "iid")


def _split_overrides(overrides: dict[str, Any]) -> tuple[dict, dict, dict]:
    rest = dict(overrides or {})
    return rest, rest.pop("model", None) or {}, rest.pop("pretrain", None) or {}


def organism_world(overrides: dict[str, Any] | None = None):
    """The world (v1 `World` or v2 `WorldV2`) of a config's `organism:` mapping."""
    world_cfg, _, _ = _split_overrides(overrides or {})
    return make_world(world_config(world_cfg))


def organism_base_path(overrides: dict[str, Any] | None = None, *, progress: bool = True) -> Path:
    world_cfg, model_cfg, train_cfg = _split_overrides(overrides or {})
    return pretrain(world_config(world_cfg), model_cfg, train_cfg, progress=progress)


def organism_problems(split: str, *, coverage: int | None = None, overrides: dict[str, Any] | None = None):
    """`rl` / `train`: the RL training set of size |D| = coverage (in-domain evaluation uses the same
    problems); `ood`: held-out problems; `iid` (v2): unseen problems of in-domain functions;
    `direct` / `search`: the pretraining splits. v2 only: `SPLIT:one` / `SPLIT:two`."""
    world = organism_world(overrides)
    name, _, kind = split.partition(":")
    if kind and getattr(world, "version", 1) != 2:
        raise ValueError(f"organism:{split}: the :one / :two suffix needs organism.version 2")
    if kind and kind not in ("one", "two"):
        raise ValueError(f"organism:{split}: the suffix must be :one or :two")
    if name in ("rl", "train"):
        problems = world.rl_train(coverage)
    elif name == "ood":
        problems = world.ood()
    elif name in ("direct", "search") or (name == "iid" and getattr(world, "version", 1) == 2):
        problems = world.problems(name)
    else:
        raise ValueError(f"unknown organism split {split!r}; use organism:{' | organism:'.join(_SPLITS)}")
    if kind:
        two = kind == "two"
        problems = [p for p in problems if world.task(p).two_step == two]
    return problems
