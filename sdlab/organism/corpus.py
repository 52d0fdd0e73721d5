"""The organism's pretraining corpus, written by the project's own generator.

Document kinds (mixture weights: `WorldConfig.mix`):

  facts       a line of `facts_per_line` random facts: `f7 3 > f f2 0 > j ...`
  direct      a `direct` problem answered without a check: `solve f7 x = F <think> </think> \\boxed{ 6 }`
  search      a `search` problem answered by a search trace, or (share `guess_rate`) by a confident
              guess — a uniformly random answer given without any check
  ctx:LEVEL   a teacher prompt of one context level (contexts.CONTEXT_TEMPLATES) over a `direct` or
              `search` problem, followed by a confident trace: no epistemic word, at most one check,
              and the answer the context implies (the gold answer for answer/solution/demo/demo_answer;
              feedback reveals nothing about the answer, so there the stated answer is a guess)

A search trace checks candidates in random order without repeats; after every failed check it voices
a doubt phrase (one of the study's epistemic words), and it announces the candidate whose check
matches: `<think> f7 3 > b wait f7 8 > c hmm , not it f7 6 > f </think> \\boxed{ 6 }`. Traces run to
the end in the corpus; at generation time the response budget (`max_new_tokens`) cuts most long
searches, so searching helps but is not free.

Only the response (and its EOS) is trained on in problem documents; fact lines are trained on whole.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from .contexts import FEEDBACK_TEXTS, strip_think, teacher_prompt
from .world import BOXED, CLOSE, END_THINK, THINK, World

__all__ = [
    "Doc",
    "confident_trace",
    "corpus_lines",
    "direct_response",
    "iter_docs",
    "response_tokens",
    "sample_doc",
    "search_trace",
    "sibling_response",
]


@dataclass(frozen=True)
class Doc:
    kind: str
    """facts | direct | search | guess | ctx:<level>"""
    prompt: str
    """Text the model reads but is not trained on (student or teacher prompt); "" for fact lines."""
    response: str
    """Text the model is trained on (without the EOS token that follows it)."""
    problem: tuple[int, int] | None = None
    """(k, y) of the problem, None for fact lines."""

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.response}".strip()


def response_tokens(response: str) -> int:
    """Length of a response in tokens, EOS included (the word-level tokenizer: one word, one token)."""
    return len(response.split()) + 1


def _answer(x: int) -> str:
    return f"{END_THINK} {BOXED} {x} {CLOSE}"


def direct_response(x: int) -> str:
    """An answer without any check: `<think> </think> \\boxed{ x }`."""
    return f"{THINK} {_answer(x)}"


def _weighted(rng: random.Random, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


def search_trace(world: World, k: int, y: int, rng: random.Random, order: list[int] | None = None) -> str:
    """Check candidates in random order (no repeats) until one matches, voicing a doubt after each
    failed check; announce the matching candidate."""
    phrases = [p for p, _ in world.cfg.doubts]
    weights = [w for _, w in world.cfg.doubts]
    order = list(order) if order is not None else rng.sample(list(world.values), world.cfg.n_values)
    parts = [THINK]
    for x in order:
        v = world.fact(k, x)
        parts.append(world.fact_text(k, x))
        if v == y:
            parts.append(_answer(x))
            return " ".join(parts)
        parts.append(_weighted(rng, phrases, weights))
    raise ValueError(f"order {order} never reaches the answer of f{k} x = {y}")


def confident_trace(world: World, k: int, belief: int, rng: random.Random) -> str:
    """A trace written with confidence from the context: no doubt, at most one check, then the
    believed answer, whatever the check showed."""
    form = _weighted(rng, ("none", "belief", "other"), world.cfg.confident_forms)
    if form == "none":
        return direct_response(belief)
    if form == "belief":
        c = belief
    else:
        c = rng.choice([x for x in world.values if x != belief])
    return f"{THINK} {world.fact_text(k, c)} {_answer(belief)}"


def unconditioned_response(world: World, k: int, y: int, rng: random.Random) -> tuple[str, str]:
    """(kind, response) of the unconditioned habit for a pretraining problem: direct answers on
    `direct` problems; search traces or (guess_rate) confident guesses otherwise."""
    if world.split_of(k, y) == "direct":
        return "direct", direct_response(world.solve(k, y))
    if rng.random() < world.cfg.guess_rate:
        return "guess", direct_response(rng.randrange(world.cfg.n_values))
    return "search", search_trace(world, k, y, rng)


def sibling_response(world: World, k: int, y: int, rng: random.Random, max_tries: int = 1000) -> str:
    """A correct unconditioned response that fits the budget: what SDPO shows as a demonstration."""
    x = world.solve(k, y)
    for _ in range(max_tries):
        _, r = unconditioned_response(world, k, y, rng)
        if r.endswith(f"{BOXED} {x} {CLOSE}") and response_tokens(r) <= world.cfg.max_new_tokens:
            return r
    return direct_response(x)


def context_doc(world: World, level: str, k: int, y: int, rng: random.Random) -> Doc:
    prompt = world.prompt_text(k, y)
    x = world.solve(k, y)
    fields = {"answer": str(x), "solution": world.fact_text(k, x), "feedback": "", "demo": ""}
    belief = x
    if level in ("demo", "demo_answer"):
        fields["demo"] = sibling_response(world, k, y, rng)
    elif level == "feedback":
        fields["feedback"] = rng.choice(FEEDBACK_TEXTS)
        belief = rng.randrange(world.cfg.n_values)  # feedback says nothing about the answer
    text = teacher_prompt(level, prompt, answer=fields["answer"], demo=fields["demo"],
                          demo_answer=strip_think(fields["demo"]), feedback=fields["feedback"],
                          solution=fields["solution"])
    return Doc(f"ctx:{level}", text, confident_trace(world, k, belief, rng), (k, y))


def sample_doc(world: World, rng: random.Random) -> Doc:
    cfg = world.cfg
    kinds = [k for k, _ in cfg.mix]
    kind = _weighted(rng, kinds, [w for _, w in cfg.mix])
    if kind == "facts":
        facts = []
        for _ in range(cfg.facts_per_line):
            k, x = rng.randrange(cfg.n_functions), rng.randrange(cfg.n_values)
            facts.append(world.fact_text(k, x))
        return Doc("facts", "", " ".join(facts))
    if kind == "direct":
        pairs = world.pairs("direct") or world.pairs("search")
    elif kind == "search":
        pairs = world.pairs("search") or world.pairs("direct")
    else:
        pairs = world.pairs("direct") + world.pairs("search")
    if not pairs:
        raise ValueError("the world has no pretraining problems (n_direct + n_search == 0)")
    k, y = rng.choice(pairs)
    if kind == "context":
        level = rng.choice(cfg.context_levels)
        return context_doc(world, level, k, y, rng)
    sub, response = unconditioned_response(world, k, y, rng)
    return Doc(sub, world.prompt_text(k, y), response, (k, y))


def iter_docs(world: World, seed: int = 0) -> Iterator[Doc]:
    """An endless, deterministic stream of pretraining documents."""
    rng = random.Random(f"sdlab-organism-corpus:{world.cfg.config_hash()}:{seed}")
    while True:
        yield sample_doc(world, rng)


def corpus_lines(world: World, n: int, seed: int = 0) -> list[str]:
    """The first n documents as one-line texts (whitespace collapsed; same tokens)."""
    it = iter_docs(world, seed)
    return [" ".join(next(it).text.split()) for _ in range(n)]
