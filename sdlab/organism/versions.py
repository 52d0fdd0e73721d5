"""World versions of the organism: `organism.version` in a run config selects one.

  1  world v1 (`world.py`, `corpus.py`): one-step problems, the v1 corpus; bit-for-bit as before
  2  world v2 (`world2.py`, `writer.py`, `corpus2.py`): one rational writer, one- and two-step
     problems, held-out functions, `feedback_attempt`, continuations of failed prefixes

DEFAULT_VERSION is what a config without `organism.version` gets. It is 1 for now, so every
existing config, cache key and documented number stays what it was; v2 is selected explicitly
(`organism: {version: 2}`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from .model import TinyModelConfig
from .world import World, WorldConfig
from .world2 import WorldConfigV2, WorldV2

__all__ = ["DEFAULT_VERSION", "VERSIONS", "default_model_config", "default_train_config", "iter_world_docs",
           "make_world", "world_config", "world_version"]

DEFAULT_VERSION = 1
VERSIONS = (1, 2)


def world_version(cfg) -> int:
    return 2 if isinstance(cfg, (WorldConfigV2, WorldV2)) else 1


def world_config(obj: Any = None, version: int | None = None):
    """A world config from a config object or a mapping of overrides (its `version` key, else
    `version`, else DEFAULT_VERSION, picks the class)."""
    if isinstance(obj, (WorldConfig, WorldConfigV2)):
        return obj
    d = dict(obj or {})
    v = int(d.pop("version", version if version is not None else DEFAULT_VERSION))
    if v == 1:
        return WorldConfig.from_dict(d)
    if v == 2:
        return WorldConfigV2.from_dict(d)
    raise ValueError(f"unknown organism version {v}; use one of {VERSIONS}")


def make_world(cfg) -> World | WorldV2:
    if isinstance(cfg, (World, WorldV2)):
        return cfg
    cfg = world_config(cfg)
    return WorldV2(cfg) if isinstance(cfg, WorldConfigV2) else World(cfg)


def iter_world_docs(world, seed: int = 0) -> Iterator:
    if isinstance(world, WorldV2):
        from .corpus2 import iter_docs_v2

        return iter_docs_v2(world, seed=seed)
    from .corpus import iter_docs

    return iter_docs(world, seed=seed)


V2_MODEL = TinyModelConfig()
"""World v2's default tiny model: the v1 architecture (2 layers), variant d of docs/organism.md
("World v2"), chosen by the pre-registered stopping rule over the 3-layer variant e."""


def default_model_config(version: int, overrides: dict | None = None) -> TinyModelConfig:
    if version == 1:
        return TinyModelConfig.from_dict(overrides)  # exactly as before
    return dataclasses.replace(V2_MODEL, **(overrides or {}))


def default_train_config(version: int, overrides: dict | None = None):
    from .pretrain import V2_TRAIN, TrainConfig

    if version == 1:
        return TrainConfig.from_dict(overrides)
    d = dict(overrides or {})
    if "betas" in d:
        d["betas"] = tuple(d["betas"])
    return dataclasses.replace(V2_TRAIN, **d)
