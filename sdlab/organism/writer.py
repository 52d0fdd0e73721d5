"""The rational writer of world v2: every document of the v2 corpus, with and without a teacher
context, is written by this one policy, and its exact probabilities are available.

What the writer knows (`Knowledge`) follows from what a context literally reveals:

  none, feedback     nothing ("Your answer is incorrect." without the attempt names no candidate)
  feedback_attempt   the attempt is not the answer: refuted answers {a}; on one-step problems the
                     answer is the witness, so the candidate a is no longer live
  demo_answer, answer  the answer; on one-step problems that is the witness
  demo               the sibling's literal content: its boxed answer and, when it shows a check
                     `fk x > Y` that hits the target, the witness x
  solution           the witness and the answer
  memorised problem  the witness and the answer (the `direct` split)

The live candidates are the witnesses still possible: one (the witness) when it is known, else
every value not refuted. The policy, from the start of a trace (`<think>`):

  * answer known: box it at once with probability 1 - verify_prob, else verify it. With the witness
    known, verification is the one look-up that ties the answer to it (`fk x > Y` on a one-step
    problem, `then fb x > v` on a two-step one); with only the answer known (s\\think, answer on a two-step
    problem) the witness must first be found: a search as below;
  * answer unknown: with probability guess_rate box a uniformly drawn answer that is not refuted
    (one-step: a live candidate), else search;
  * a search checks live candidates in uniformly random order, never repeats one and stops at the
    first hit; after a failed check it voices a doubt phrase only while >= 2 live candidates remain,
    and even then continues silently with probability silent_share;
  * after the hit a one-step trace boxes the witness; a two-step trace looks up the second function
    at the witness, marked as in the prompt (`then fb x > v`), and boxes v.

A trace that has started checking continues until it hits (the verify decision is taken once, at the
start); a writer that knows the witness and finds itself after failed checks (someone else's
prefix) checks the witness next, without a doubt phrase (its one live candidate), and finishes as
after any hit. So the second look-up (`then fb x > v`) only ever follows a hit or `<think>`.
A continuation of someone else's prefix (failed checks, as in the student's own responses) starts
from the state the prefix leaves: live candidates minus the ones it checked, after a failed check
or after a doubt phrase. Nothing ever checks a refuted or already-checked candidate, boxes a
refuted answer, or ignores a check's result.

`sample` draws a trace; `logprob` is the exact log-probability of any word sequence (a complete
response or a budget-truncated prefix), from which `sdlab.organism.information` computes each
context level's exact information.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

from .world import ARROW, BOXED, CLOSE, END_THINK, THINK, value_word
from .world2 import THEN, Task, WorldV2
from .world2 import parse_response_v2 as parse_response

__all__ = ["EOS_WORD", "Knowledge", "Writer", "draw", "knowledge_for", "read_demo"]

EOS_WORD = "<eos>"


def draw(options: Sequence[tuple], rng: random.Random) -> tuple:
    """One of the writer's options `(p, words, next_state)`, drawn with probability proportional to
    p from a single `rng.random()` (so a corpus is a deterministic function of its seed)."""
    r = rng.random() * sum(o[0] for o in options)
    acc = 0.0
    for option in options:
        acc += option[0]
        if r < acc:
            return option
    return options[-1]


@dataclass(frozen=True)
class Knowledge:
    witness: int | None = None
    answer: str | None = None
    live: frozenset[int] = field(default_factory=frozenset)
    refuted: frozenset[str] = field(default_factory=frozenset)

    @property
    def knows_answer(self) -> bool:
        return self.answer is not None


def read_demo(world: WorldV2, task: Task, demo: str) -> tuple[int | None, str | None]:
    """(witness, answer) that a demonstration literally shows: a check of the problem's function that
    hits the target names the witness; the last box names the answer."""
    parsed = parse_response(demo)
    witness = next((x for k, x, v in parsed.checks if k == task.k and v == task.y), None)
    return witness, parsed.answer


def knowledge_for(world: WorldV2, task: Task, level: str = "none", *, demo: str | None = None,
                  attempt: str | None = None, memorized: bool = False) -> Knowledge:
    """What the writer knows about `task` under a context level (see the module doc)."""
    witness: int | None = None
    answer: str | None = None
    refuted: set[str] = set()
    if memorized or level == "solution":
        witness, answer = world.witness(task), world.answer(task)
    elif level in ("answer", "demo_answer"):
        answer = world.answer(task)
    elif level == "demo":
        if demo is None:
            raise ValueError("level demo needs the demonstration text")
        witness, answer = read_demo(world, task, demo)
    elif level == "feedback_attempt":
        if attempt is None:
            raise ValueError("level feedback_attempt needs the attempt")
        refuted.add(attempt)
    elif level not in ("none", "feedback"):
        raise ValueError(f"unknown context level {level!r}")
    if not task.two_step:
        if witness is None and answer is not None and answer.isdigit() and int(answer) < world.cfg.n_values:
            witness = int(answer)
        if witness is not None and answer is None:
            answer = str(witness)
    if witness is not None:
        answer = answer if answer is not None else world.answer_of_witness(task, witness)
        live = frozenset([witness])
    else:
        # two-step: a refuted answer names no candidate literally (finding it would take look-ups)
        live = frozenset(x for x in world.values if task.two_step or str(x) not in refuted)
    return Knowledge(witness, answer, live, frozenset(refuted))


# A state: (phase, live candidates, found witness). Phases:
#   begin  before <think>;  start  after <think>;  fail  after a failed check;  doubt  after a doubt
#   phrase;  found  after the hit;  second  after the second look-up (two-step);  end  after the box.
State = tuple


class Writer:
    """The v2 policy for one world (parameters from its config)."""

    def __init__(self, world: WorldV2):
        self.world = world
        cfg = world.cfg
        self.p_verify = cfg.verify_prob
        self.p_silent = cfg.silent_share
        self.p_guess = cfg.guess_rate
        total = sum(w for _, w in cfg.doubts)
        self.doubts = [(tuple(p.split()), w / total) for p, w in cfg.doubts]

    # ------------------------------------------------------------------ the policy

    def _box(self, ans: str) -> tuple[str, ...]:
        return (END_THINK, BOXED, ans, CLOSE)

    def _checks(self, task: Task, live: frozenset[int], mass: float) -> list[tuple[float, tuple, State]]:
        if not live:
            return []
        out = []
        p = mass / len(live)
        for c in sorted(live):
            v = self.world.fact(task.k, c)
            words = (f"f{task.k}", str(c), ARROW, value_word(v))
            nxt = ("found", live, c) if v == task.y else ("fail", live - {c}, None)
            out.append((p, words, nxt))
        return out

    def _verify(self, task: Task, know: Knowledge, live: frozenset[int]) -> list[tuple[float, tuple, State]]:
        """With the witness known, verification is the one look-up that ties the answer to it:
        `fk x > Y` on a one-step problem, `then fb x > v` on a two-step problem."""
        x = know.witness
        if not task.two_step:
            return self._checks(task, frozenset([x]), 1.0)
        return [(1.0, self._second(task, x), ("second", live, x))]

    def _second(self, task: Task, x: int) -> tuple[str, ...]:
        """The second look-up of a two-step problem, marked `then` as in the prompt."""
        return (THEN, f"f{task.b}", str(x), ARROW, value_word(self.world.fact(task.b, x)))

    def options(self, task: Task, know: Knowledge, state: State) -> list[tuple[float, tuple, State]]:
        """(probability, words, next state) of every next chunk."""
        phase, live, found = state
        w = self.world
        if phase == "begin":
            return [(1.0, (THINK,), ("start", live, None))]
        if phase == "start":
            if know.knows_answer:
                verify = self._verify(task, know, live) if know.witness is not None else self._checks(task, live, 1.0)
                return ([(1.0 - self.p_verify, self._box(know.answer), ("end", live, None))]
                        + [(self.p_verify * p, words, nxt) for p, words, nxt in verify])
            if task.two_step:
                guesses = [a for a in w.answer_space(task) if a not in know.refuted]
            else:
                guesses = [str(c) for c in sorted(live)]
            out = [(self.p_guess / len(guesses), self._box(a), ("end", live, None)) for a in guesses] if guesses else []
            return out + self._checks(task, live, 1.0 - self.p_guess if guesses else 1.0)
        if phase == "fail":
            if len(live) >= 2:
                return ([((1.0 - self.p_silent) * q, words, ("doubt", live, None)) for words, q in self.doubts]
                        + self._checks(task, live, self.p_silent))
            return self._checks(task, live, 1.0)
        if phase == "doubt":
            return self._checks(task, live, 1.0)
        if phase == "found":
            if task.two_step:
                return [(1.0, self._second(task, found), ("second", live, found))]
            return [(1.0, self._box(str(found)), ("end", live, found))]
        if phase == "second":
            return [(1.0, self._box(value_word(w.fact(task.b, found))), ("end", live, found))]
        if phase == "end":
            return [(1.0, (EOS_WORD,), ("done", live, found))]
        return []

    def initial_state(self, know: Knowledge) -> State:
        return ("begin", know.live, None)

    def state_after_prefix(self, task: Task, know: Knowledge, prefix: Sequence[str]) -> State:
        """The state a prefix of failed checks (and doubts) leaves, read literally: `<think>` then
        checks of the problem's first function that miss the target, with any words between them."""
        words = list(prefix)
        if not words or words[0] != THINK:
            raise ValueError("a prefix starts with <think>")
        live = set(know.live)
        phase = "start"
        i = 1
        while i < len(words):
            if words[i] == f"f{task.k}" and i + 3 < len(words) and words[i + 2] == ARROW:
                c = int(words[i + 1])
                if self.world.fact(task.k, c) == task.y:
                    raise ValueError("the prefix already hits the target")
                live.discard(c)
                phase = "fail"
                i += 4
            else:
                phase = "doubt" if phase in ("fail", "doubt") else phase
                i += 1
        if phase == "start" and len(words) > 1:
            raise ValueError("unreadable prefix")
        return (phase, frozenset(live), None)

    # ------------------------------------------------------------------ sampling

    def sample(self, task: Task, know: Knowledge, rng: random.Random, state: State | None = None,
               max_words: int = 400) -> list[str]:
        """Words of one trace from `state` (default: the beginning) to the end, EOS not included."""
        state = state or self.initial_state(know)
        out: list[str] = []
        while True:
            opts = self.options(task, know, state)
            if not opts:
                raise ValueError(f"the writer is stuck in state {state} (no live candidate)")
            _, words, nxt = draw(opts, rng)
            if words == (EOS_WORD,):
                return out
            out.extend(words)
            state = nxt
            if len(out) > max_words:
                raise RuntimeError("runaway trace")

    def sample_response(self, task: Task, know: Knowledge, rng: random.Random, budget: int | None = None
                        ) -> tuple[list[str], bool]:
        """(words, ended): a trace cut to the response budget in tokens (EOS counts as one)."""
        budget = budget or self.world.cfg.max_new_tokens
        words = self.sample(task, know, rng)
        if len(words) + 1 <= budget:
            return words, True
        return words[:budget], False

    # ------------------------------------------------------------------ exact probabilities

    def logprob(self, task: Task, know: Knowledge, words: Sequence[str], ended: bool, state: State | None = None
                ) -> float:
        """log q(words) under the policy: a complete response when `ended` (EOS follows), else the
        probability of the prefix (every continuation summed). -inf when impossible."""
        seq = list(words) + ([EOS_WORD] if ended else [])
        p = self._prob(task, know, state or self.initial_state(know), seq, 0)
        return math.log(p) if p > 0 else float("-inf")

    def _prob(self, task: Task, know: Knowledge, state: State, seq: list[str], i: int) -> float:
        if i == len(seq):
            return 1.0
        total = 0.0
        for p, words, nxt in self.options(task, know, state):
            n = len(words)
            rest = len(seq) - i
            if rest < n:
                if tuple(seq[i:]) == words[:rest]:
                    total += p
            elif tuple(seq[i : i + n]) == words:
                total += p * self._prob(task, know, nxt, seq, i + n)
        return total

    def support(self, task: Task, know: Knowledge, budget: int | None = None, limit: int = 200_000
                ) -> list[tuple[tuple[str, ...], bool, float]]:
        """Every budget-truncated response with its probability (exact enumeration; raises past
        `limit` items). Used by the tests and by small exact computations."""
        budget = budget or self.world.cfg.max_new_tokens
        out: list[tuple[tuple[str, ...], bool, float]] = []
        stack = [((), self.initial_state(know), 1.0)]
        while stack:
            words, state, p = stack.pop()
            for q, chunk, nxt in self.options(task, know, state):
                if chunk == (EOS_WORD,):
                    out.append((words, True, p * q))
                    continue
                new = words + chunk
                if len(new) + 1 > budget:
                    out.append((new[:budget], False, p * q))
                else:
                    stack.append((new, nxt, p * q))
            if len(out) > limit:
                raise RuntimeError("support too large")
        merged: dict[tuple[tuple[str, ...], bool], float] = {}
        for w, e, p in out:
            merged[(w, e)] = merged.get((w, e), 0.0) + p
        return [(w, e, p) for (w, e), p in merged.items()]
