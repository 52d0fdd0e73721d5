"""Resolve the problem sources named in a config: benchmarks, files, hub ids, and the organism.

`organism:rl` (the RL training set of size data.coverage), `organism:train` (the same set, as an
in-domain evaluation) and `organism:ood` (held-out problems) come from the organism's world;
everything else goes through the benchmark registry or the generic loaders.
"""

from __future__ import annotations

import random

from .benchmarks import BENCHMARKS, load_benchmark
from .problems import FieldMap, Problem, load_problems


def load_source(spec: str, *, coverage: int | None = None, fields: dict | None = None,
                split: str = "train", organism: dict | None = None, limit: int | None = None) -> list[Problem]:
    if spec.startswith("organism:"):
        from ..organism.registry import organism_problems

        problems = organism_problems(spec.split(":", 1)[1], coverage=coverage, overrides=organism or {})
    elif spec in BENCHMARKS:
        problems = load_benchmark(spec)
        problems = _cover(problems, coverage)
    else:
        problems = load_problems(spec, FieldMap(**fields) if fields else None, split=split)
        problems = _cover(problems, coverage)
    return problems[:limit] if limit else problems


COVERAGE_SEED = 0
"""Task-coverage subsets are fixed, like the study's seen_{1,8,64,128,512} files: the same |D|
problems for every run seed and algorithm, and nested (smaller sets inside larger ones)."""


def _cover(problems: list[Problem], coverage: int | None) -> list[Problem]:
    """The first |D| problems of one fixed permutation, kept in file order."""
    if coverage is None or coverage >= len(problems):
        return problems
    order = list(range(len(problems)))
    random.Random(COVERAGE_SEED).shuffle(order)
    return [problems[i] for i in sorted(order[:coverage])]
