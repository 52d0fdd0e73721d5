"""How the engine finds the organism: `model.name_or_path: organism` and `data.train: organism:rl`.

The run config's `organism:` mapping holds WorldConfig overrides, plus optional `model:` and
`pretrain:` sub-mappings for the tiny model and its pretraining. The base model is pretrained
once per (world, model, pretraining) hash and cached (`$SDLAB_CACHE`, else ~/.cache/sdlab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .pretrain import pretrain
from .world import World, WorldConfig

_SPLITS = ("rl", "train", "ood", "direct", "search")


def _split_overrides(overrides: dict[str, Any]) -> tuple[dict, dict, dict]:
    rest = dict(overrides or {})
    return rest, rest.pop("model", None) or {}, rest.pop("pretrain", None) or {}


def organism_world(overrides: dict[str, Any] | None = None) -> World:
    world_cfg, _, _ = _split_overrides(overrides or {})
    return World(WorldConfig.from_dict(world_cfg))


def organism_base_path(overrides: dict[str, Any] | None = None, *, progress: bool = True) -> Path:
    world_cfg, model_cfg, train_cfg = _split_overrides(overrides or {})
    return pretrain(world_cfg, model_cfg, train_cfg, progress=progress)


def organism_problems(split: str, *, coverage: int | None = None, overrides: dict[str, Any] | None = None):
    """`rl` / `train`: the RL training set of size |D| = coverage (in-domain evaluation uses the same
    problems); `ood`: held-out problems; `direct` / `search`: the pretraining splits."""
    world = organism_world(overrides)
    if split in ("rl", "train"):
        return world.rl_train(coverage)
    if split == "ood":
        return world.ood()
    if split in ("direct", "search"):
        return world.problems(split)
    raise ValueError(f"unknown organism split {split!r}; use organism:{' | organism:'.join(_SPLITS)}")
