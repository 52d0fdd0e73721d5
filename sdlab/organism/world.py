"""The organism's world: hidden functions, problems, splits and grading.

A world holds K hidden functions f0 .. f{K-1}, each a random permutation of 0 .. V-1
(V = `n_values` <= 10). Arguments are digit words, values are written as the letters a..j and
targets in problems as the capitals A..J (value 4 is `e` in a fact, `E` in a problem): the model
learns `f7 3 > e` (f7(3) = 4) as a fact, and `solve f7 x = E` asks for the x with f7(x) = 4.
Checking a candidate is one fact look-up; answering directly needs the inverse, which exists in
the model only for problems whose answer it has memorised. Every (k, y) pair is one problem; the
pairs are shuffled once and cut into disjoint splits:

  direct  answered directly (memorised inverse) in pretraining
  search  seen in pretraining with search traces, confident guesses and context-conditioned traces
  rl      the RL pool; `rl_train(|D|)` is its first |D| problems, so smaller sets are nested
  ood     held out from everything (evaluation only)

Everything is a deterministic function of `WorldConfig` (seed included); `config_hash()` names a
world and keys the pretraining cache. The rules are documented in docs/organism.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..data.problems import Problem

__all__ = [
    "DEFAULT_DOUBTS",
    "SPLITS",
    "ConfigIO",
    "SplitsAndGrading",
    "World",
    "WorldConfig",
    "ParsedResponse",
    "extract_boxed",
    "parse_response",
]

SPLITS = ("direct", "search", "rl", "ood")

# Doubt phrases voiced after a failed check: (text, weight). Every phrase carries exactly one of
# the study's ten epistemic words and nothing else that contains one of them as a substring.
# "wait" is the most frequent, as in real reasoning traces; lengths are 1-4 words, so shorter
# doubts leave room for more checks inside the response budget.
DEFAULT_DOUBTS: tuple[tuple[str, float], ...] = (
    ("wait", 3.0),
    ("wait , no", 2.0),
    ("hmm", 1.0),
    ("hmm , not it", 1.0),
    ("perhaps another", 1.0),
    ("maybe another", 1.0),
    ("actually no", 1.0),
    ("alternatively", 1.0),
    ("seems wrong", 1.0),
    ("might be another", 1.0),
    ("likely another", 1.0),
    ("check another", 1.0),
)

THINK, END_THINK, BOXED, CLOSE = "<think>", "</think>", "\\boxed{", "}"
ARROW = ">"
VALUE_WORDS = tuple("abcdefghij")
"""How a function value is written in facts and checks (`f7 3 > e` means f7(3) = 4)."""
TARGET_WORDS = tuple("ABCDEFGHIJ")
"""How the target value is written in a problem (`solve f7 x = E` asks for the x with f7(x) = 4)."""


def value_word(v: int) -> str:
    return VALUE_WORDS[v]


def target_word(v: int) -> str:
    return TARGET_WORDS[v]


class ConfigIO:
    """Serialisation both world configs (`WorldConfig`, `WorldConfigV2`) share: a JSON-plain dict, a
    mapping back (unknown keys named; JSON lists back to the tuples the dataclass holds) and the
    hash that names a world in caches and run folders."""

    LABEL = "organism world"
    FLOAT_TUPLES: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.LABEL} keys {unknown}; known: {sorted(known)}")
        for key in ("doubts", "mix"):
            if key in d:
                d[key] = tuple((str(a), float(b)) for a, b in d[key])
        for key in cls.FLOAT_TUPLES:
            if key in d:
                d[key] = tuple(float(x) for x in d[key])
        if "context_levels" in d:
            d["context_levels"] = tuple(d["context_levels"])
        return cls(**d)

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WorldConfig(ConfigIO):
    """All rules and parameters of the organism world. Fixed before any comparison; the same for
    every algorithm. Field meanings and the reasons for the defaults: docs/organism.md."""

    seed: int = 0
    """Seed of the world: the permutations and the splits."""
    n_functions: int = 50
    """K hidden functions (K * n_values problems, K * n_values facts)."""
    n_values: int = 10
    """Domain size V; the digits 0..V-1 (at most 10, each digit is one word)."""
    n_direct: int = 100
    """Problems whose answer pretraining states directly (memorised inverse)."""
    n_search: int = 100
    """Problems with search traces / guesses / context-conditioned traces in pretraining."""
    n_rl: int = 200
    """RL pool size; coverage |D| takes its first |D| problems."""
    n_ood: int = 100
    """Held-out problems (never in pretraining, never trained on)."""
    max_new_tokens: int = 32
    """Response budget in tokens (EOS included): room for about four checks with average doubts."""
    guess_rate: float = 0.2
    """Share of the unconditioned responses to `search` problems that are confident guesses
    (a uniformly random answer, no check): the habit of answering without checking."""
    doubts: tuple[tuple[str, float], ...] = DEFAULT_DOUBTS
    """Doubt phrases voiced after each failed check, with sampling weights."""
    confident_forms: tuple[float, float, float] = (0.3, 0.4, 0.3)
    """Context-conditioned (teacher-format) traces: weights of (no check, one check of the believed
    answer, one check of another candidate). A failed check never raises doubt there."""
    facts_per_line: int = 8
    """Facts per fact line in the corpus."""
    mix: tuple[tuple[str, float], ...] = (
        ("facts", 0.30),
        ("direct", 0.12),
        ("search", 0.38),
        ("context", 0.20),
    )
    """Pretraining document mixture (by documents): fact lines, direct answers on `direct`
    problems, unconditioned responses (search traces or guesses) on `search` problems, and
    context-conditioned traces (levels equally often) on `direct` and `search` problems."""
    context_levels: tuple[str, ...] = ("answer", "solution", "demo", "demo_answer", "feedback")
    """Teacher context levels that have a trace format in pretraining."""

    def __post_init__(self):
        if not 2 <= self.n_values <= 10:
            raise ValueError("n_values must be in 2..10 (each value is one digit word)")
        if self.n_functions < 1:
            raise ValueError("n_functions must be >= 1")
        sizes = (self.n_direct, self.n_search, self.n_rl, self.n_ood)
        if min(sizes) < 0:
            raise ValueError("split sizes must be >= 0")
        total = self.n_functions * self.n_values
        if sum(sizes) > total:
            raise ValueError(f"split sizes {sizes} need {sum(sizes)} problems but the world has "
                             f"{total} (n_functions * n_values)")
        if not 0.0 <= self.guess_rate <= 1.0:
            raise ValueError("guess_rate must be in [0, 1]")
        if self.max_new_tokens < 10:
            raise ValueError("max_new_tokens must be >= 10 (one check and an answer)")
        if not self.doubts or any(w <= 0 for _, w in self.doubts):
            raise ValueError("doubts must be non-empty with positive weights")
        if len(self.confident_forms) != 3 or min(self.confident_forms) < 0 or sum(self.confident_forms) <= 0:
            raise ValueError("confident_forms must be three non-negative weights")
        kinds = {k for k, _ in self.mix}
        if not kinds <= {"facts", "direct", "search", "context"}:
            raise ValueError(f"unknown mix kinds {sorted(kinds - {'facts', 'direct', 'search', 'context'})}")
        unknown = set(self.context_levels) - {"answer", "solution", "demo", "demo_answer", "feedback"}
        if unknown:
            raise ValueError(f"unknown context levels {sorted(unknown)}")

    FLOAT_TUPLES = ("confident_forms",)


# -------------------------------------------------------------------- responses


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (no nesting in this world), spaces removed."""
    i = text.rfind(BOXED)
    if i < 0:
        return None
    j = text.find(CLOSE, i + len(BOXED))
    if j < 0:
        return None
    return re.sub(r"\s+", "", text[i + len(BOXED) : j])


@dataclass(frozen=True)
class ParsedResponse:
    """A response read against the organism grammar
    `<think> [CHECK (DOUBT CHECK)*] </think> \\boxed{ D }`, CHECK = `fK x > v` (v a value letter)."""

    well_formed: bool
    checks: tuple[tuple[int, int, int], ...]
    """(k, x, v) per check, in order (v as a number)."""
    doubts: tuple[str, ...]
    """The text between consecutive checks (and after the last one, before </think>)."""
    answer: str | None
    """The boxed answer (spaces removed), or None."""


_FN = re.compile(r"f(\d+)$")
_DIGIT = re.compile(r"\d$")
_VALUE = re.compile(r"[a-j]$")


def parse_response(text: str) -> ParsedResponse:
    """Tokenize on whitespace and read checks, doubts and the answer; `well_formed` says whether the
    whole text follows the grammar (doubt text may be any words that are not checks)."""
    words = text.split()
    answer = extract_boxed(text)
    checks: list[tuple[int, int, int]] = []
    doubts: list[str] = []
    ok = len(words) >= 5 and words[0] == THINK
    i = 1
    current: list[str] = []
    while ok and i < len(words) and words[i] != END_THINK:
        m = _FN.match(words[i])
        is_check = (m and i + 3 < len(words) and _DIGIT.match(words[i + 1]) and words[i + 2] == ARROW
                    and _VALUE.match(words[i + 3]))
        if is_check:
            if checks or current:
                doubts.append(" ".join(current))
            current = []
            checks.append((int(m.group(1)), int(words[i + 1]), VALUE_WORDS.index(words[i + 3])))
            i += 4
        else:
            if not checks:
                ok = False  # text before the first check
            current.append(words[i])
            i += 1
    if current:
        doubts.append(" ".join(current))
    tail = words[i:]
    ok = ok and len(tail) == 4 and tail[0] == END_THINK and tail[1] == BOXED and tail[3] == CLOSE
    return ParsedResponse(ok, tuple(checks), tuple(doubts), answer)


# -------------------------------------------------------------------- the world


class SplitsAndGrading:
    """What the worlds (v1 `World`, v2 `WorldV2`) share: the RL pool and its nested training sets,
    the OOD split, strict grading and the trace check. A world provides `problems(split)`, `fact`,
    `cfg` and its response parser `parse`."""

    parse = staticmethod(parse_response)

    def rl_pool(self) -> list[Problem]:
        return self.problems("rl")

    def rl_train(self, coverage: int | None = None) -> list[Problem]:
        """The RL training set of size |D| = coverage: the first |D| problems of the (shuffled)
        RL pool, so every smaller set is contained in every larger one."""
        pool = self.problems("rl")
        if coverage is None:
            return pool
        if not 1 <= coverage <= len(pool):
            raise ValueError(f"coverage must be in 1..{len(pool)} (the RL pool size), got {coverage}")
        return pool[:coverage]

    def ood(self) -> list[Problem]:
        return self.problems("ood")

    def check(self, problem: Problem, response_text: str) -> bool:
        """Strict grading: the last `\\boxed{...}` equals the answer after removing spaces."""
        pred = extract_boxed(response_text)
        return pred is not None and pred == problem.answer.strip()

    def trace_is_consistent(self, response_text: str) -> bool:
        """Every check in the response states the true fact value."""
        return all(self.fact(k, x) == v for k, x, v in self.parse(response_text).checks
                   if k < self.cfg.n_functions and x < self.cfg.n_values)


class World(SplitsAndGrading):
    """Permutations, facts, problems and splits of one `WorldConfig`."""

    def __init__(self, cfg: WorldConfig | None = None):
        self.cfg = cfg = cfg or WorldConfig()
        rng = random.Random(f"sdlab-organism-world:{cfg.seed}")
        values = list(range(cfg.n_values))
        self.perms: list[list[int]] = [rng.sample(values, len(values)) for _ in range(cfg.n_functions)]
        self.inverses: list[list[int]] = []
        for perm in self.perms:
            inv = [0] * cfg.n_values
            for x, y in enumerate(perm):
                inv[y] = x
            self.inverses.append(inv)
        pairs = [(k, y) for k in range(cfg.n_functions) for y in range(cfg.n_values)]
        rng.shuffle(pairs)
        self._splits: dict[str, list[tuple[int, int]]] = {}
        start = 0
        for name, size in zip(SPLITS, (cfg.n_direct, cfg.n_search, cfg.n_rl, cfg.n_ood)):
            self._splits[name] = pairs[start : start + size]
            start += size
        self._split_of = {p: name for name, ps in self._splits.items() for p in ps}

    # ---------------------------------------------------------------- facts

    @property
    def n_functions(self) -> int:
        return self.cfg.n_functions

    @property
    def values(self) -> range:
        return range(self.cfg.n_values)

    @staticmethod
    def fname(k: int) -> str:
        return f"f{k}"

    def fact(self, k: int, x: int) -> int:
        """f_k(x)."""
        return self.perms[k][x]

    def solve(self, k: int, y: int) -> int:
        """The x with f_k(x) = y."""
        return self.inverses[k][y]

    def fact_text(self, k: int, x: int) -> str:
        return f"{self.fname(k)} {x} {ARROW} {value_word(self.fact(k, x))}"

    def facts(self) -> list[tuple[int, int, int]]:
        return [(k, x, self.fact(k, x)) for k in range(self.cfg.n_functions) for x in self.values]

    # ---------------------------------------------------------------- problems

    @staticmethod
    def prompt_text(k: int, y: int) -> str:
        return f"solve f{k} x = {target_word(y)}"

    _PROMPT = re.compile(r"solve f(\d+) x = ([A-J])$")

    def parse_prompt(self, prompt: str) -> tuple[int, int]:
        m = self._PROMPT.match(prompt.strip())
        if not m:
            raise ValueError(f"not an organism prompt: {prompt!r}")
        return int(m.group(1)), TARGET_WORDS.index(m.group(2))

    def key(self, problem: Problem) -> tuple[int, int]:
        return self.parse_prompt(problem.prompt)

    def problem(self, k: int, y: int) -> Problem:
        x = self.solve(k, y)
        split = self._split_of.get((k, y), "unused")
        return Problem(id=f"organism-f{k}-y{y}", prompt=self.prompt_text(k, y), answer=str(x),
                       solution=self.fact_text(k, x), source=f"organism:{split}")

    def pairs(self, split: str) -> list[tuple[int, int]]:
        if split not in self._splits:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        return list(self._splits[split])

    def split_of(self, k: int, y: int) -> str:
        return self._split_of.get((k, y), "unused")

    def problems(self, split: str) -> list[Problem]:
        return [self.problem(k, y) for k, y in self.pairs(split)]

    def describe(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "hash": self.cfg.config_hash(),
                "splits": {name: len(ps) for name, ps in self._splits.items()}}


def as_world(world: World | WorldConfig | dict | None) -> World:
    if isinstance(world, World):
        return world
    if isinstance(world, WorldConfig) or world is None:
        return World(world)
    return World(WorldConfig.from_dict(world))


def iter_split_problems(world: World, splits: Iterable[str]) -> list[Problem]:
    out: list[Problem] = []
    for s in splits:
        out += world.problems(s)
    return out
