"""World v2 of the organism: world and splits, the rational writer, exact information, the corpus,
the `feedback_attempt` level, version selection and v1 left unchanged (fast; no pretraining)."""

from __future__ import annotations

import collections
import hashlib
import json
import math
import random

import pytest

from sdlab.analysis.epistemic import count_epistemic
from sdlab.organism.contexts import CONTEXT_TEMPLATES, CONTEXT_TEMPLATES_V2, FEEDBACK_TEXTS, teacher_prompt_v2
from sdlab.organism.corpus2 import context_fields, iter_docs_v2, sibling, unguided_prefix
from sdlab.organism.information import exact_information, refuted_answers
from sdlab.organism.tokenizer import build_tokenizer
from sdlab.organism.world import TARGET_WORDS
from sdlab.organism.world2 import SPLITS_V2, WorldConfigV2, WorldV2
from sdlab.organism.world2 import parse_response_v2 as parse_response
from sdlab.organism.writer import EOS_WORD, Writer, knowledge_for, read_demo

SMALL = dict(n_values=5, n_functions=12, n_heldout_functions=2, n_direct=0, n_search=10, n_rl=20, n_iid=10,
             n_ood=10, max_new_tokens=30)
LEVELS = ("none", "feedback", "feedback_attempt", "demo_answer", "demo", "answer", "solution")


@pytest.fixture(scope="module")
def world() -> WorldV2:
    return WorldV2()


@pytest.fixture(scope="module")
def small() -> WorldV2:
    return WorldV2(WorldConfigV2(**SMALL))


def epistemic(text: str) -> int:
    return sum(count_epistemic(text, mode="paper").values())


def contexts_for(world, writer, task, rng):
    """(level, knowledge, attempt) for every level, with sampled demos and attempts."""
    out = []
    for level in LEVELS:
        attempt = None
        if level == "demo":
            know = knowledge_for(world, task, level, demo=sibling(world, writer, task, rng))
        elif level == "feedback_attempt":
            attempt = rng.choice([a for a in world.answer_space(task) if a != world.answer(task)])
            know = knowledge_for(world, task, level, attempt=attempt)
        else:
            know = knowledge_for(world, task, level)
        out.append((level, know, attempt))
    return out


# ------------------------------------------------------------------ world and splits


def test_splits_functions_and_kinds(world):
    cfg = world.cfg
    assert len(world.heldout_functions) == cfg.n_heldout_functions
    assert not set(world.heldout_functions) & set(world.indomain_functions)
    pairs = {}
    for split in SPLITS_V2:
        ts = world.tasks(split)
        assert len(ts) == getattr(cfg, f"n_{split}")
        for t in ts:
            assert (t.k, t.y) not in pairs, "a witness pair in two splits"
            pairs[(t.k, t.y)] = split
            fs = {t.k} | ({t.b} if t.two_step else set())
            if split == "ood":
                assert fs <= set(world.heldout_functions)
            else:
                assert not fs & set(world.heldout_functions)
            if t.two_step:
                assert t.b != t.k
    # the multi-step share is exact in every even prefix of the RL pool (nested coverage)
    rl = world.tasks("rl")
    for d in (2, 8, 32, 200):
        assert sum(t.two_step for t in rl[:d]) == d // 2
    assert sum(t.two_step for t in world.tasks("ood")) == cfg.n_ood // 2


def test_problems_answers_and_prompts(world):
    for split in SPLITS_V2:
        for p in world.problems(split):
            t = world.task(p)
            assert world.prompt_text(t) == p.prompt and world.parse_prompt(p.prompt) == t
            x = world.witness(t)
            assert world.fact(t.k, x) == t.y
            if t.two_step:
                assert p.prompt == f"solve f{t.k} x = {TARGET_WORDS[t.y]} then f{t.b} x"
                assert p.answer == "abcdefghij"[world.fact(t.b, x)]
                assert p.solution == f"{world.fact_text(t.k, x)} {world.fact_text(t.b, x)}"
            else:
                assert p.answer == str(x) and p.solution == world.fact_text(t.k, x)
            assert p.source == f"organism:{split}:{'2' if t.two_step else '1'}step"
    p = world.rl_pool()[0]
    assert world.check(p, f"<think> </think> \\boxed{{ {p.answer} }}")
    ids = [q.id for q in world.rl_train(32)]
    assert ids == [q.id for q in world.rl_pool()[:32]] and len(set(ids)) == 32


def test_world_seed_and_config():
    a, b, c = (WorldV2(WorldConfigV2(seed=s)) for s in (0, 0, 1))
    assert a.perms == b.perms and a.tasks("rl") == b.tasks("rl") and a.heldout_functions == b.heldout_functions
    assert a.perms != c.perms and a.tasks("rl") != c.tasks("rl")
    cfg = WorldConfigV2(verify_prob=0.5)
    assert WorldConfigV2.from_dict(cfg.to_dict()) == cfg
    assert WorldConfigV2().config_hash() != WorldConfigV2(seed=1).config_hash()
    with pytest.raises(ValueError, match="unknown organism v2 world keys"):
        WorldConfigV2.from_dict({"verify": 0.5})
    with pytest.raises(ValueError):
        WorldConfigV2(n_rl=10_000)
    with pytest.raises(ValueError):
        WorldConfigV2(guess_rate=2.0)


# ------------------------------------------------------------------ what each context reveals


def test_candidate_sets_per_level(world):
    rng = random.Random(0)
    writer = Writer(world)
    V = set(world.values)
    one = world.tasks("rl", "one")[0]
    two = world.tasks("rl", "two")[0]
    for t in (one, two):
        x, gold = world.witness(t), world.answer(t)
        for level in ("none", "feedback"):
            k = knowledge_for(world, t, level)
            assert k.live == V and k.answer is None and k.witness is None and not k.refuted
        for level in ("answer", "demo_answer"):
            k = knowledge_for(world, t, level)
            assert k.answer == gold
            # the answer of a one-step problem is its witness; of a two-step problem it names none
            assert (k.live == {x} and k.witness == x) if not t.two_step else (k.live == V and k.witness is None)
        k = knowledge_for(world, t, "solution")
        assert k.live == {x} and k.witness == x and k.answer == gold
        demo = sibling(world, writer, t, rng)
        k = knowledge_for(world, t, "demo", demo=demo)
        assert read_demo(world, t, demo) == (x, gold) and k.live == {x}
        wrong = next(a for a in world.answer_space(t) if a != gold)
        k = knowledge_for(world, t, "feedback_attempt", attempt=wrong)
        assert k.refuted == {wrong} and k.answer is None
        assert k.live == (V - {int(wrong)} if not t.two_step else V)
    # a demonstration that is a correct guess shows the answer but no witness
    guess = f"<think> </think> \\boxed{{ {world.answer(two)} }}"
    k = knowledge_for(world, two, "demo", demo=guess)
    assert k.answer == world.answer(two) and k.witness is None and k.live == V


# ------------------------------------------------------------------ the writer's traces


def _check_trace(world, t, know, words, attempt, prefix_len=0):
    """The writer's rules on one complete trace; with `prefix_len`, the first words are someone
    else's prefix (failed checks) and the rules on choices apply to the continuation only."""
    text = " ".join(words)
    parsed = parse_response(text)
    assert parsed.well_formed, text
    assert all(world.fact(k, x) == v for k, x, v in parsed.checks), "a false fact"
    first = [(x, v) for k, x, v in parsed.checks if k == t.k]
    xs = [x for x, _ in first]
    assert len(xs) == len(set(xs)), f"a repeated candidate: {text}"
    hits = [i for i, (_, v) in enumerate(first) if v == t.y]
    assert len(hits) <= 1 and (not hits or hits[0] == len(first) - 1), "went on after the hit"
    assert parsed.answer not in refuted_answers(world, t, text, attempt), "boxed a refuted candidate"
    x = know.witness
    if hits:
        assert parsed.answer == world.answer(t), "ignored the result of its checks"
        if t.two_step:
            assert parsed.checks[-1] == (t.b, xs[-1], world.fact(t.b, xs[-1]))
    elif t.two_step and x is not None and parsed.checks and parsed.checks[-1][0] == t.b:
        # a known witness is verified by the one look-up that ties the answer to it
        assert parsed.checks[-1] == (t.b, x, world.fact(t.b, x)) and parsed.answer == world.answer(t)
    elif first:
        raise AssertionError(f"stopped without a hit: {text}")
    # only live candidates; doubts only after a failed check that leaves >= 2 live candidates
    live = set(know.live)
    end = words.index("</think>")
    i = 1
    while i < end:
        if words[i] == f"f{t.k}" and words[i + 2] == ">":
            c = int(words[i + 1])
            if i >= prefix_len:
                assert c in live, f"checked a candidate that is not live: {text}"
            live.discard(c)
            i += 4
            if i < end and words[i] == "then":  # the marked second look-up follows the hit
                assert world.fact(t.k, c) == t.y, f"second look-up without a hit: {text}"
            elif i < end and not words[i].startswith("f"):
                if i >= prefix_len:
                    assert world.fact(t.k, c) != t.y and len(live) >= 2, f"doubt with < 2 live candidates: {text}"
                while i < end and not words[i].startswith("f"):
                    i += 1
        else:
            i += 1
    return parsed


def test_every_trace_follows_the_rules(small, world):
    for w in (small, world):
        writer = Writer(w)
        rng = random.Random(1)
        for t in w.tasks("rl")[:20]:
            for level, know, attempt in contexts_for(w, writer, t, rng):
                for _ in range(30):
                    words = writer.sample(t, know, rng)
                    _check_trace(w, t, know, words, attempt)


def test_continuations_of_failed_prefixes(world):
    writer = Writer(world)
    rng = random.Random(2)
    for t in world.tasks("rl")[:30]:
        for level, know, attempt in contexts_for(world, writer, t, rng):
            prefix = unguided_prefix(world, writer, t, rng)
            parsed = parse_response(" ".join(prefix) + " </think> \\boxed{ 0 }")
            checked = [x for _, x, _ in parsed.checks]
            assert checked and all(world.fact(t.k, x) != t.y for x in checked)
            state = writer.state_after_prefix(t, know, prefix)
            rest = writer.sample(t, know, rng, state=state)
            _check_trace(world, t, know, prefix + rest, attempt, prefix_len=len(prefix))
            if know.witness is not None:  # the context names the witness: check it next, no doubt
                x = know.witness
                assert rest[:4] == [f"f{t.k}", str(x), ">", "abcdefghij"[t.y]], (level, rest)


def test_rates_verify_silent_guess(world):
    writer = Writer(world)
    cfg = world.cfg
    rng = random.Random(3)
    direct = collections.Counter()
    silent = doubt = guesses = 0
    ts = world.tasks("rl")[:40]
    for t in ts:
        for level in ("answer", "solution"):
            know = knowledge_for(world, t, level)
            for _ in range(50):
                direct[level] += writer.sample(t, know, rng)[1] == "</think>"
        know = knowledge_for(world, t, "none")
        for _ in range(50):
            words = writer.sample(t, know, rng)
            guesses += words[1] == "</think>"
            body = words[1 : words.index("</think>")]
            for i in range(0, len(body) - 4):
                if body[i].startswith("f") and body[i + 2] == ">" and "abcdefghij".index(body[i + 3]) != t.y:
                    if body[i + 4].startswith("f"):
                        silent += body[i + 4] == f"f{t.k}"
                    else:
                        doubt += 1
    n = len(ts) * 50
    for level in direct:  # one verify probability for every level that knows the answer
        assert abs(direct[level] / n - (1 - cfg.verify_prob)) < 0.04, (level, direct[level] / n)
    assert abs(guesses / n - cfg.guess_rate) < 0.025
    # silent continuations among failed checks with >= 2 live candidates left (the last miss before
    # a single live candidate is always silent, so the measured share is a little above the parameter)
    share = silent / (silent + doubt)
    assert cfg.silent_share - 0.03 < share < cfg.silent_share + 0.08, share


def test_exact_probabilities_sum_to_one_and_match_logprob():
    small = WorldV2(WorldConfigV2(**{**SMALL, "max_new_tokens": 22}))
    writer = Writer(small)
    rng = random.Random(4)
    for t in (small.tasks("rl", "one")[0], small.tasks("rl", "two")[0]):
        for level, know, attempt in contexts_for(small, writer, t, rng):
            support = writer.support(t, know)
            assert abs(sum(p for *_, p in support) - 1) < 1e-9, level
            for words, ended, p in support[:: max(1, len(support) // 300)]:
                assert abs(writer.logprob(t, know, words, ended) - math.log(p)) < 1e-9
            words, ended = writer.sample_response(t, know, rng)
            assert len(words) + ended <= small.cfg.max_new_tokens
            assert writer.logprob(t, know, words, ended) > float("-inf")
    t = small.tasks("rl", "one")[0]
    bad = ["<think>", f"f{t.k}", "0", ">", "a", "</think>", "\\boxed{", "0", "}"]
    know = knowledge_for(small, t, "none")
    if small.fact(t.k, 0) != 0:  # a trace that boxes a candidate its own check refuted: impossible
        assert writer.logprob(t, know, bad, True) == float("-inf")
    assert EOS_WORD == "<eos>"


def test_exact_information_per_level(world):
    ts_two = world.tasks("rl", "two")[:10]
    ts_one = world.tasks("rl", "one")[:10]
    V = world.cfg.n_values
    ex = {(k, lv): exact_information(world, lv, ts, samples=60, seed=0)
          for k, ts in (("two", ts_two), ("one", ts_one))
          for lv in ("none", "feedback", "feedback_attempt", "demo_answer", "demo", "answer")}
    for kind in ("two", "one"):
        e = {lv: ex[(kind, lv)] for _, lv in ex if _ == kind}
        assert e["none"]["I_trace"] == 0.0 and e["feedback"]["I_trace"] == 0.0  # nothing revealed: exactly 0
        assert e["none"]["I_answer"] == 0.0 and e["feedback"]["I_answer"] == 0.0
        assert e["feedback_attempt"]["I_answer"] == pytest.approx(math.log(V / (V - 1)))
        for lv in ("demo_answer", "demo", "answer"):
            assert e[lv]["I_answer"] == pytest.approx(math.log(V))
        for lv in e:
            assert e[lv]["refuted_boxed"] == 0.0
        assert e["feedback_attempt"]["I_trace"] > 0
    two = {lv: ex[("two", lv)] for _, lv in ex if _ == "two"}
    one = {lv: ex[("one", lv)] for _, lv in ex if _ == "one"}
    # multi-step: s reveals the witness, s\think and answer only the answer
    # (a few siblings are correct guesses, which show no witness)
    assert two["demo"]["I_witness"] > 0.95 * math.log(V) and two["demo_answer"]["I_witness"] == 0.0
    se = lambda a, b: 4 * math.hypot(a["I_trace_se"], b["I_trace_se"])  # noqa: E731
    fa, da = two["feedback_attempt"], two["demo_answer"]
    assert fa["I_trace"] < da["I_trace"] - se(fa, da)
    assert abs(two["demo_answer"]["I_trace"] - two["answer"]["I_trace"]) < se(two["demo_answer"], two["answer"])
    # s verifies a known witness by looking up f_b first, which no unguided trace does: I = inf
    assert two["demo"]["I_trace"] == math.inf and two["demo"]["unsupported"] > 0.5
    assert two["answer"]["unsupported"] == 0.0 and two["answer"]["I_trace"] < 3
    assert two["demo"]["length"] < 0.45 * two["none"]["length"] < two["demo_answer"]["length"]
    assert two["demo_answer"]["epistemic"] > 0.5 * two["none"]["epistemic"] and two["demo"]["epistemic"] < 0.1
    # one-step: the answer is the witness, so s = s\think = answer (the negative control)
    for a, b in (("demo", "demo_answer"), ("demo", "answer")):
        assert abs(one[a]["I_trace"] - one[b]["I_trace"]) < se(one[a], one[b]) + 0.1
        assert abs(one[a]["length"] - one[b]["length"]) < 1.0


# ------------------------------------------------------------------ corpus and tokenizer


@pytest.fixture(scope="module")
def docs(world):
    it = iter_docs_v2(world, seed=0)
    return [next(it) for _ in range(3000)]


def test_corpus_kinds_and_documents(world, docs):
    kinds = collections.Counter(d.kind.split(":")[0] for d in docs)
    mix = dict(world.cfg.mix)
    for kind in ("facts", "unguided", "ctx", "cont"):
        want = mix[{"ctx": "context", "cont": "continuation"}.get(kind, kind)]
        assert abs(kinds[kind] / len(docs) - want) < 0.03, (kind, kinds)
    levels = {d.kind.split(":")[1] for d in docs if ":" in d.kind}
    assert levels == set(world.cfg.context_levels)
    pre = {(t.k, t.y) for t in world.tasks("search")}
    for d in docs:
        if d.problem is None:
            continue
        t = d.problem
        assert (t.k, t.y) in pre, "a problem outside the pretraining split"
        assert d.prompt.startswith(world.prompt_text(t))
        if d.kind.startswith("cont:"):
            head = d.prompt.split("<think>")[-1]  # (a demo context holds a <think> too)
            assert parse_response("<think>" + head + " </think> \\boxed{ 0 }").checks
    tok = build_tokenizer(world.cfg)
    unk = tok.unk_token_id
    for d in docs[:800]:
        assert unk not in tok(d.text, add_special_tokens=False)["input_ids"], d.text


def test_teacher_prompts_are_the_engines(world):
    from sdlab.algorithms.context import DEFAULT_TEMPLATES, build_teacher_contexts

    assert DEFAULT_TEMPLATES == CONTEXT_TEMPLATES_V2
    assert {k: v for k, v in CONTEXT_TEMPLATES_V2.items() if k != "feedback_attempt"} == CONTEXT_TEMPLATES
    writer = Writer(world)
    rng = random.Random(5)
    t = world.tasks("search", "two")[0]
    p = world.problem(t)
    for level in world.cfg.context_levels:
        text, know = context_fields(world, writer, level, t, random.Random(7))
        demo = sibling(world, writer, t, random.Random(7)) if level.startswith("demo") else ""
        fb = text.split("attempt:")[1].split("Correctly")[0].strip() if level.startswith("feedback") else ""
        attempt = fb.split()[2] if level == "feedback_attempt" else None
        engine = build_teacher_contexts(level, prompts=[p.prompt] * 2, responses=["x", demo or "x"], rewards=[0.0, 1.0],
                                        group_ids=[0, 0], answers=[p.answer] * 2, solutions=[p.solution] * 2,
                                        feedbacks=[fb or FEEDBACK_TEXTS[2], ""], attempts=[attempt, None])[0]
        assert engine.distilled and engine.text == text, level
    # feedback_attempt: only failures with an extracted answer are distilled
    ctx = build_teacher_contexts("feedback_attempt", prompts=["q"] * 3, responses=["a", "b", "c"],
                                 rewards=[0.0, 0.0, 1.0], group_ids=[0] * 3, answers=["5"] * 3, solutions=[None] * 3,
                                 feedbacks=[FEEDBACK_TEXTS[2], FEEDBACK_TEXTS[1], ""], attempts=["7", None, "5"])
    assert [c.distilled for c in ctx] == [True, False, False]
    assert "Your answer 7 is incorrect." in ctx[0].text
    assert teacher_prompt_v2("feedback_attempt", "q", attempt="7") == ctx[0].text
    assert rng  # seeded above


# ------------------------------------------------------------------ versions, registry, v1 unchanged


def test_version_selection_and_registry(world):
    from sdlab.organism.registry import organism_problems, organism_world
    from sdlab.organism.versions import DEFAULT_VERSION
    from sdlab.organism.world import World

    assert DEFAULT_VERSION == 1
    assert isinstance(organism_world({}), World) and isinstance(organism_world({"version": 1}), World)
    w2 = organism_world({"version": 2, "seed": 1})
    assert isinstance(w2, WorldV2) and w2.cfg.seed == 1
    assert [p.id for p in organism_problems("rl", coverage=8, overrides={"version": 2})] == \
        [p.id for p in world.rl_train(8)]
    two = organism_problems("ood:two", overrides={"version": 2})
    assert len(two) == 50 and all(world.task(p).two_step for p in two)
    assert len(organism_problems("iid", overrides={"version": 2})) == world.cfg.n_iid
    with pytest.raises(ValueError):
        organism_problems("ood:two", overrides={})


def test_v1_is_bit_for_bit_unchanged():
    """Golden values recorded on main before world v2 existed: the v1 vocabulary, corpus stream and
    pretraining cache key (so the v1 base model, its weights and every v1 number are unchanged)."""
    from sdlab.organism.corpus import corpus_lines
    from sdlab.organism.pretrain import organism_key, resolve_configs
    from sdlab.organism.tokenizer import vocabulary
    from sdlab.organism.world import World, WorldConfig

    h = lambda s: hashlib.sha256(s.encode()).hexdigest()[:16]  # noqa: E731
    assert h(json.dumps(vocabulary())) == "851d7c6ef59d7c5d"
    assert h("\n".join(corpus_lines(World(), 3000))) == "8950fbc60b369613"
    assert organism_key(*resolve_configs(None, None, None)) == "9ad829e720957298"
    assert organism_key(*resolve_configs({"version": 1}, {}, {})) == "9ad829e720957298"
    assert WorldConfig().config_hash() == "efc61b573f57fd4e"
    vocab = build_tokenizer(WorldConfig()).get_vocab()
    assert sorted(vocab, key=vocab.get) == vocabulary()


# ------------------------------------------------------------------ P0 criteria (synthetic numbers)


def _fake_result(values: dict, n: int = 60, noise: float = 0.01, seed: int = 0):
    import numpy as np

    from sdlab.organism.manipulation import METRICS

    rng = np.random.default_rng(seed)
    kinds = {}
    for kind, levels in values.items():
        per = {lv: {m: np.full(n, float(v.get(m, 0.0))) + (rng.normal(0, noise, n) if m != "I" or lv != "none" else 0)
                    for m in METRICS} for lv, v in levels.items()}
        kinds[kind] = {"problems": n, "levels": {}, "_per_problem": per, "_boots": rng.integers(0, n, size=(500, n))}
    return {"kinds": kinds}


def test_p0_criteria_and_spearman():
    from sdlab.organism.manipulation import p0_criteria, spearman

    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0, 0, 1, 2], [5, 5, 3, 1]) == pytest.approx(-1.0)
    try:
        from scipy.stats import spearmanr

        a, b = [0, 0.1, 0.1, 1, 1.2, 3], [34, 35, 33, 27, 25, 10]
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    except ImportError:
        pass
    good_two = {"none": {"I": 0, "length": 34, "epistemic": 3},
                "feedback": {"I": 0.1, "length": 34.2, "epistemic": 3.01},
                "feedback_attempt": {"I": 0.2, "length": 33.9, "epistemic": 3.0},
                "demo_answer": {"I": 1.0, "length": 27, "epistemic": 2.3}, "demo": {"I": 3.0, "length": 10},
                "answer": {"I": 1.02, "length": 26.5, "epistemic": 2.2}}
    good_one = {lv: {"I": 2.5, "length": 9} for lv in ("demo", "demo_answer", "answer")}
    good_one.update({"none": {"length": 30}, "feedback": {"length": 30}, "feedback_attempt": {"I": 0.8, "length": 29}})
    crits = p0_criteria(_fake_result({"two": good_two, "one": good_one}))
    assert len(crits) == 20 and all(c["holds"] for c in crits), [c for c in crits if not c["holds"]]
    bad = {**good_two, "demo": {"I": 3.0, "length": 14}, "feedback": {"I": 0.1, "length": 40, "epistemic": 3}}
    bad_one = {**good_one, "answer": {"I": 2.0, "length": 9}}
    crits = {c["criterion"]: c["holds"] for c in p0_criteria(_fake_result({"two": bad, "one": bad_one}))}
    assert not crits["two-step: length(demo) <= 0.35 x none"]
    assert not crits["two-step: length(feedback) within 10% of none"]
    assert not crits["one-step: I(demo) ~ I(answer) (within 10%)"]
    assert crits["two-step: length(demo_answer) >= 0.7 x none"]
