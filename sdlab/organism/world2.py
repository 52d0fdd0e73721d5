"""World v2 of the organism: one-step and two-step problems, held-out functions, one rational writer.

Functions and facts are as in world v1 (K random permutations of the digits 0..V-1, values written
as letters `a..j` in facts and as capitals `A..J` in targets), with two kinds of problem:

  one-step   `solve f7 x = E`            answer: the x with f7(x) = 4 (a digit; the answer IS the witness)
  two-step   `solve f7 x = E then f2 x`  answer: f2(x) for that x (a value letter; the witness x is
                                         not the answer, so a reasoning trace that shows x carries
                                         more than the answer alone)

Functions are split once into in-domain functions (every pretraining and RL problem uses only them)
and held-out functions, whose facts are in the pretraining corpus but which appear in no problem
before evaluation: the `ood` split asks one- and two-step problems built only from held-out functions.
Witness pairs (k, y) of in-domain functions are shuffled once and cut into the disjoint splits

  direct   memorised problems (the writer knows their solution from memory)
  search   pretraining problems solved by the writer, with and without teacher contexts
  rl       the RL pool; `rl_train(|D|)` is its first |D| problems (nested)
  iid      unseen problems of in-domain functions (an i.i.d. held-out set, never trained on)
  ood      problems of held-out functions (genuinely out of distribution)

Each pair yields one problem; a fixed share `multi_step_share` of every split is two-step, spread
evenly over the split's order (every even-length prefix of the RL pool is half two-step at share
0.5). The second function b of a two-step problem is drawn once per problem (in-domain b != k for
in-domain splits, held-out b != k for `ood`); on `search` problems the corpus draws b afresh per
document so that the writer's second look-up is seen with many functions.

Everything is a deterministic function of `WorldConfigV2` (seed included). Documents are written
by `sdlab.organism.writer`; the rules and parameters are in docs/organism.md ("World v2").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ..data.problems import Problem
from .world import (
    ARROW,
    DEFAULT_DOUBTS,
    TARGET_WORDS,
    VALUE_WORDS,
    ConfigIO,
    SplitsAndGrading,
    parse_response,
    value_word,
)

__all__ = ["SPLITS_V2", "Task", "WorldConfigV2", "WorldV2", "CONTEXT_LEVELS_V2", "parse_response_v2"]

SPLITS_V2 = ("direct", "search", "rl", "iid", "ood")
THEN = "then"

CONTEXT_LEVELS_V2 = ("feedback", "feedback_attempt", "demo_answer", "demo", "answer", "solution")
"""Teacher context levels written by the v2 corpus (fresh traces and continuations)."""

MIX_KINDS_V2 = ("facts", "memorized", "unguided", "context", "continuation")


@dataclass(frozen=True)
class WorldConfigV2(ConfigIO):
    """All rules and free parameters of world v2, fixed before any RL run (docs/organism.md,
    "World v2 — pre-registration"). Every field enters `config_hash()` and the pretraining key."""

    version: int = 2
    """Always 2 (selects this world in `organism.version`)."""
    seed: int = 0
    """World seed: the permutations, the held-out functions, the splits, the second functions."""
    n_functions: int = 60
    """K functions in all (K * V facts, every one of them in the pretraining corpus)."""
    n_heldout_functions: int = 10
    """Functions that appear in no problem before evaluation (the `ood` split uses only them)."""
    n_values: int = 10
    """Domain size V (digits 0..V-1)."""
    multi_step_share: float = 0.5
    """Share of two-step problems in every split (and in the corpus's problem documents)."""
    n_direct: int = 0
    """Memorised problems (none by default: a memorised problem looks like an unseen one, and its
    unchecked answers would teach the base to answer unseen problems without checking)."""
    n_search: int = 200
    n_rl: int = 200
    n_iid: int = 100
    n_ood: int = 100
    max_new_tokens: int = 48
    """Response budget in tokens (EOS included)."""
    verify_prob: float = 0.75
    """p_v: when the writer knows the answer (from a context or from memory) at the start of a trace,
    it verifies it with this probability (one look-up from a known witness, else a search for the
    witness) and otherwise boxes it at once.
    One value for every context level and for memorised problems."""
    silent_share: float = 0.25
    """After a failed check with >= 2 live candidates left, the share of search steps that continue
    with the next check without a doubt phrase (decouples hedging from searching)."""
    guess_rate: float = 0.05
    """When the writer does not know the answer, the share of traces that box a uniformly drawn live
    answer without any check (the habit of answering without checking)."""
    doubts: tuple[tuple[str, float], ...] = DEFAULT_DOUBTS
    """Doubt phrases (one epistemic word each) and their weights; voiced only while >= 2 live
    candidates remain."""
    facts_per_line: int = 8
    mix: tuple[tuple[str, float], ...] = (
        ("facts", 0.25),
        ("unguided", 0.35),
        ("context", 0.15),
        ("continuation", 0.25),
    )
    """Pretraining document mixture: fact lines; unguided responses to memorised (`direct`) problems;
    unguided responses to `search` problems; context-conditioned fresh traces; context-conditioned
    continuations of unguided prefixes that contain failed checks (levels equally often in both)."""
    context_levels: tuple[str, ...] = CONTEXT_LEVELS_V2

    def __post_init__(self):
        if self.version != 2:
            raise ValueError("WorldConfigV2.version must be 2")
        if not 2 <= self.n_values <= 10:
            raise ValueError("n_values must be in 2..10")
        if not 2 <= self.n_heldout_functions < self.n_functions - 1:
            raise ValueError("need >= 2 held-out functions and >= 2 in-domain functions")
        inside = (self.n_functions - self.n_heldout_functions) * self.n_values
        sizes = (self.n_direct, self.n_search, self.n_rl, self.n_iid)
        if min(sizes + (self.n_ood,)) < 0:
            raise ValueError("split sizes must be >= 0")
        if sum(sizes) > inside:
            raise ValueError(f"in-domain split sizes {sizes} need {sum(sizes)} witness pairs but the world has "
                             f"{inside} ((n_functions - n_heldout_functions) * n_values)")
        if self.n_ood > self.n_heldout_functions * self.n_values:
            raise ValueError("n_ood exceeds the held-out witness pairs (n_heldout_functions * n_values)")
        for name in ("multi_step_share", "verify_prob", "silent_share", "guess_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.max_new_tokens < 16:
            raise ValueError("max_new_tokens must be >= 16 (a two-step derivation and its answer)")
        if not self.doubts or any(w <= 0 for _, w in self.doubts):
            raise ValueError("doubts must be non-empty with positive weights")
        kinds = {k for k, _ in self.mix}
        if not kinds <= set(MIX_KINDS_V2):
            raise ValueError(f"unknown mix kinds {sorted(kinds - set(MIX_KINDS_V2))}")
        unknown = set(self.context_levels) - set(CONTEXT_LEVELS_V2)
        if unknown:
            raise ValueError(f"unknown context levels {sorted(unknown)}")

    LABEL = "organism v2 world"


@dataclass(frozen=True)
class Task:
    """One problem as the writer sees it: find x with f_k(x) = y; answer x (b is None) or f_b(x)."""

    k: int
    y: int
    b: int | None = None

    @property
    def two_step(self) -> bool:
        return self.b is not None


_PROMPT = re.compile(r"solve f(\d+) x = ([A-J])(?: then f(\d+) x)?$")


def parse_response_v2(text: str):
    """`world.parse_response` for v2 traces: the connective `then` that marks the second look-up of a
    two-step problem is dropped first (it is neither a check nor a doubt)."""
    return parse_response(" ".join(w for w in text.split() if w != THEN))


class WorldV2(SplitsAndGrading):
    """Permutations, facts, held-out functions, problems and splits of one `WorldConfigV2`."""

    version = 2
    parse = staticmethod(parse_response_v2)

    def __init__(self, cfg: WorldConfigV2 | None = None):
        self.cfg = cfg = cfg or WorldConfigV2()
        rng = random.Random(f"sdlab-organism-world-v2:{cfg.seed}")
        values = list(range(cfg.n_values))
        self.perms: list[list[int]] = [rng.sample(values, len(values)) for _ in range(cfg.n_functions)]
        self.inverses: list[list[int]] = []
        for perm in self.perms:
            inv = [0] * cfg.n_values
            for x, v in enumerate(perm):
                inv[v] = x
            self.inverses.append(inv)
        functions = list(range(cfg.n_functions))
        rng.shuffle(functions)
        self.heldout_functions: tuple[int, ...] = tuple(sorted(functions[: cfg.n_heldout_functions]))
        self.indomain_functions: tuple[int, ...] = tuple(sorted(functions[cfg.n_heldout_functions :]))
        pairs = [(k, y) for k in self.indomain_functions for y in values]
        rng.shuffle(pairs)
        held = [(k, y) for k in self.heldout_functions for y in values]
        rng.shuffle(held)
        self._splits: dict[str, list[Task]] = {}
        start = 0
        for name, size in zip(("direct", "search", "rl", "iid"), (cfg.n_direct, cfg.n_search, cfg.n_rl, cfg.n_iid)):
            self._splits[name] = self._tasks(pairs[start : start + size], self.indomain_functions, rng)
            start += size
        self._splits["ood"] = self._tasks(held[: cfg.n_ood], self.heldout_functions, rng)
        self._split_of: dict[tuple[int, int], str] = {}
        for name, tasks in self._splits.items():
            for t in tasks:
                self._split_of[(t.k, t.y)] = name

    def _tasks(self, pairs, pool: tuple[int, ...], rng: random.Random) -> list[Task]:
        """Two-step at evenly spread positions (a share `multi_step_share` of every even prefix)."""
        share = self.cfg.multi_step_share
        out = []
        for i, (k, y) in enumerate(pairs):
            two = int((i + 1) * share + 1e-9) > int(i * share + 1e-9)
            b = rng.choice([f for f in pool if f != k]) if two else None
            out.append(Task(k, y, b))
        return out

    # ---------------------------------------------------------------- facts

    @property
    def values(self) -> range:
        return range(self.cfg.n_values)

    @property
    def n_functions(self) -> int:
        return self.cfg.n_functions

    def fact(self, k: int, x: int) -> int:
        return self.perms[k][x]

    def solve(self, k: int, y: int) -> int:
        return self.inverses[k][y]

    def fact_text(self, k: int, x: int) -> str:
        return f"f{k} {x} {ARROW} {value_word(self.fact(k, x))}"

    def facts(self) -> list[tuple[int, int, int]]:
        return [(k, x, self.fact(k, x)) for k in range(self.cfg.n_functions) for x in self.values]

    # ---------------------------------------------------------------- tasks

    def witness(self, t: Task) -> int:
        return self.solve(t.k, t.y)

    def answer(self, t: Task) -> str:
        """The gold answer string: the witness digit (one-step) or f_b(witness) as a letter (two-step)."""
        x = self.witness(t)
        return value_word(self.fact(t.b, x)) if t.two_step else str(x)

    def answer_of_witness(self, t: Task, x: int) -> str:
        """The answer a candidate witness x would give (used to name refuted answers)."""
        return value_word(self.fact(t.b, x)) if t.two_step else str(x)

    def answer_space(self, t: Task) -> list[str]:
        return [value_word(v) for v in self.values] if t.two_step else [str(x) for x in self.values]

    @staticmethod
    def prompt_text(t: Task) -> str:
        base = f"solve f{t.k} x = {TARGET_WORDS[t.y]}"
        return f"{base} {THEN} f{t.b} x" if t.two_step else base

    def solution_text(self, t: Task) -> str:
        x = self.witness(t)
        s = self.fact_text(t.k, x)
        return f"{s} {self.fact_text(t.b, x)}" if t.two_step else s

    def parse_prompt(self, prompt: str) -> Task:
        m = _PROMPT.match(" ".join(prompt.split()))
        if not m:
            raise ValueError(f"not an organism v2 prompt: {prompt!r}")
        return Task(int(m.group(1)), TARGET_WORDS.index(m.group(2)), int(m.group(3)) if m.group(3) else None)

    def task(self, problem: Problem) -> Task:
        return self.parse_prompt(problem.prompt)

    def key(self, problem: Problem) -> Task:
        return self.task(problem)

    def split_of(self, t: Task) -> str:
        return self._split_of.get((t.k, t.y), "unused")

    def problem(self, t: Task) -> Problem:
        kind = "2" if t.two_step else "1"
        pid = f"organism2-f{t.k}-y{t.y}" + (f"-f{t.b}" if t.two_step else "")
        return Problem(id=pid, prompt=self.prompt_text(t), answer=self.answer(t), solution=self.solution_text(t),
                       source=f"organism:{self.split_of(t)}:{kind}step")

    def tasks(self, split: str, kind: str | None = None) -> list[Task]:
        """Tasks of a split; kind: None (all), "one" or "two"."""
        if split not in self._splits:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS_V2}")
        ts = list(self._splits[split])
        if kind is None:
            return ts
        if kind not in ("one", "two"):
            raise ValueError("kind must be None, 'one' or 'two'")
        return [t for t in ts if t.two_step == (kind == "two")]

    def problems(self, split: str, kind: str | None = None) -> list[Problem]:
        return [self.problem(t) for t in self.tasks(split, kind)]

    def describe(self) -> dict[str, Any]:
        return {"version": 2, "config": self.cfg.to_dict(), "hash": self.cfg.config_hash(),
                "heldout_functions": list(self.heldout_functions),
                "splits": {name: {"one_step": sum(not t.two_step for t in ts), "two_step": sum(t.two_step for t in ts)}
                           for name, ts in self._splits.items()}}


__all__ += ["THEN", "VALUE_WORDS"]
