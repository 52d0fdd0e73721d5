"""World v2's pretraining corpus: every problem document is written by the one rational writer
(`sdlab.organism.writer`), with the engine's teacher templates for context levels.

Document kinds (mixture weights: `WorldConfigV2.mix`):

  facts         a line of `facts_per_line` random facts of all K functions (held-out ones included)
  memorized     a `direct` problem; the writer knows its solution from memory (verify or box)
  unguided      a `search` problem without context (search, or a guess at `guess_rate`)
  ctx:LEVEL     a teacher prompt of one level over a `search` problem, then the writer's fresh trace
                given what the context reveals
  cont:LEVEL    a teacher prompt of one level, then an unguided prefix of the same problem that
                already contains failed checks (not trained on), then the writer's continuation
                from the state that prefix leaves, given the context (trained on)

Contexts are filled as the trainer fills them: `demo` / `demo_answer` show a correct unguided
response of the problem that fits the budget (a sibling), `feedback` one of the grader's three
texts, `feedback_attempt` a wrong boxed answer of an unguided response ("Your answer 7 is
incorrect."), `answer` the gold answer, `solution` the reference derivation. On `search` problems
the second function of a two-step problem is drawn afresh for every document.
"""

from __future__ import annotations

import random
from typing import Iterator

from .contexts import FEEDBACK_TEXTS, strip_think, teacher_prompt_v2
from .corpus import Doc
from .world import THINK
from .world2 import Task, WorldV2
from .writer import Knowledge, Writer, draw, knowledge_for

__all__ = ["context_fields", "corpus_lines_v2", "iter_docs_v2", "sample_doc_v2", "sibling", "unguided_prefix",
           "wrong_attempt"]


def _weighted(rng: random.Random, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


def _text(words) -> str:
    return " ".join(words)


def sibling(world: WorldV2, writer: Writer, task: Task, rng: random.Random, max_tries: int = 1000) -> str:
    """A correct unguided response that fits the budget: what SDPO shows as a demonstration."""
    know = knowledge_for(world, task, "none")
    gold = world.answer(task)
    for _ in range(max_tries):
        words, ended = writer.sample_response(task, know, rng)
        if ended and words[-2] == gold:
            return _text(words)
    raise RuntimeError(f"no correct sibling for {task} within the budget")


def wrong_attempt(world: WorldV2, task: Task, rng: random.Random) -> str:
    """The boxed answer of a failed unguided response: under the writer only a wrong guess boxes a
    wrong answer, so a uniformly drawn wrong answer."""
    gold = world.answer(task)
    return rng.choice([a for a in world.answer_space(task) if a != gold])


def context_fields(world: WorldV2, writer: Writer, level: str, task: Task, rng: random.Random) -> tuple[str, Knowledge]:
    """(teacher prompt, writer's knowledge) of one sampled context of `level` for `task`."""
    prompt = world.prompt_text(task)
    fields = {"answer": world.answer(task), "solution": world.solution_text(task), "demo": "", "feedback": "",
              "attempt": ""}
    kw: dict = {}
    if level in ("demo", "demo_answer"):
        fields["demo"] = sibling(world, writer, task, rng)
        kw["demo"] = fields["demo"]
        if level == "demo_answer":
            # s\think reveals exactly what its text shows: the boxed answer
            kw = {}
    elif level == "feedback":
        fields["feedback"] = rng.choice(FEEDBACK_TEXTS)
    elif level == "feedback_attempt":
        fields["attempt"] = wrong_attempt(world, task, rng)
        kw["attempt"] = fields["attempt"]
    text = teacher_prompt_v2(level, prompt, answer=fields["answer"], demo=fields["demo"],
                             demo_answer=strip_think(fields["demo"]), feedback=fields["feedback"],
                             solution=fields["solution"], attempt=fields["attempt"])
    return text, knowledge_for(world, task, level, **kw)


def unguided_prefix(world: WorldV2, writer: Writer, task: Task, rng: random.Random) -> list[str]:
    """A prefix of an unguided search (no guess) with >= 1 failed check and no hit, cut at a chunk
    boundary (after a failed check or after a doubt) inside the response budget, uniformly among
    such cuts."""
    know = knowledge_for(world, task, "none")
    budget = world.cfg.max_new_tokens
    for _ in range(1000):
        state = writer.initial_state(know)
        words: list[str] = []
        cuts: list[int] = []
        while True:
            opts = writer.options(task, know, state)
            if state[0] == "start":  # a search: drop the guesses
                opts = [o for o in opts if o[2][0] != "end"]
            _, chunk, nxt = draw(opts, rng)
            if nxt[0] in ("found", "end", "done"):
                break
            words.extend(chunk)
            state = nxt
            if state[0] in ("fail", "doubt") and len(words) + 5 <= budget:
                cuts.append(len(words))
        if cuts:
            return words[: rng.choice(cuts)]
    raise RuntimeError(f"no prefix with a failed check for {task}")


def _search_task(world: WorldV2, rng: random.Random) -> Task:
    t = rng.choice(world.tasks("search"))
    if t.two_step:
        t = Task(t.k, t.y, rng.choice([f for f in world.indomain_functions if f != t.k]))
    return t


def sample_doc_v2(world: WorldV2, writer: Writer, rng: random.Random) -> Doc:
    cfg = world.cfg
    kind = _weighted(rng, [k for k, _ in cfg.mix], [w for _, w in cfg.mix])
    if kind == "facts":
        facts = [world.fact_text(rng.randrange(cfg.n_functions), rng.randrange(cfg.n_values))
                 for _ in range(cfg.facts_per_line)]
        return Doc("facts", "", " ".join(facts))
    if kind == "memorized":
        if not world.tasks("direct"):
            raise ValueError("mix has memorized documents but the world has no direct problems (n_direct = 0)")
        task = rng.choice(world.tasks("direct"))
        know = knowledge_for(world, task, memorized=True)
        return Doc("memorized", world.prompt_text(task), _text(writer.sample(task, know, rng)), task)
    task = _search_task(world, rng)
    if kind == "unguided":
        know = knowledge_for(world, task, "none")
        return Doc("unguided", world.prompt_text(task), _text(writer.sample(task, know, rng)), task)
    level = rng.choice(cfg.context_levels)
    prompt, know = context_fields(world, writer, level, task, rng)
    if kind == "context":
        return Doc(f"ctx:{level}", prompt, _text(writer.sample(task, know, rng)), task)
    prefix = unguided_prefix(world, writer, task, rng)
    state = writer.state_after_prefix(task, know, prefix)
    rest = writer.sample(task, know, rng, state=state)
    return Doc(f"cont:{level}", f"{prompt} {_text(prefix)}", _text(rest), task)


def iter_docs_v2(world: WorldV2, seed: int = 0) -> Iterator[Doc]:
    """An endless, deterministic stream of v2 pretraining documents."""
    rng = random.Random(f"sdlab-organism-corpus-v2:{world.cfg.config_hash()}:{seed}")
    writer = Writer(world)
    while True:
        yield sample_doc_v2(world, writer, rng)


def corpus_lines_v2(world: WorldV2, n: int, seed: int = 0) -> list[str]:
    it = iter_docs_v2(world, seed)
    return [" ".join(next(it).text.split()) for _ in range(n)]


__all__ += ["THINK"]
