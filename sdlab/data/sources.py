"""Resolve the problem sources named in a config: benchmarks, files, hub ids, and the organism.

`organism:rl` (the RL training set of size data.coverage), `organism:train` (the same set, as an
in-domain evaluation) and `organism:ood` (held-out problems) come from the organism's world;
everything else goes through the benchmark registry or the generic loaders.
"""

from __future__ import annotations

import random

from .problems import FieldMap, Problem, load_problems
from .benchmarks import BENCHMARKS, load_benchmark


def load_source(spec: str, *, coverage: int | None = None, fields: dict | None = None,
                split: str = "train", organism: dict | None = None, seed: int = 0,
                limit: int | None = None) -> list[Problem]:
    if spec.startswith("organism:"):
        from ..organism.registry import organism_problems

        problems = organism_problems(spec.split(":", 1)[1], coverage=coverage, overrides=organism or {})
    elif spec in BENCHMARKS:
        problems = load_benchmark(spec)
        problems = _cover(problems, coverage, seed)
    else:
        problems = load_problems(spec, FieldMap(**fields) if fields else None, split=split)
        problems = _cover(problems, coverage, seed)
    return problems[:limit] if limit else problems


def _cover(problems: list[Problem], coverage: int | None, seed: int) -> list[Problem]:
    """A seeded subset of |D| problems; nested in |D| (the first k of one fixed permutation)."""
    if coverage is None or coverage >= len(problems):
        return problems
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    return [problems[i] for i in sorted(order[:coverage])]
