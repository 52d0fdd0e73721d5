"""The organism's world, corpus generator, teacher-context formats and word-level tokenizer."""

from __future__ import annotations

import random

import pytest

from sdlab.analysis.epistemic import EPISTEMIC_WORDS, count_epistemic
from sdlab.organism.contexts import CONTEXT_TEMPLATES, FEEDBACK_TEXTS, LEVELS, strip_think, teacher_prompt
from sdlab.organism.corpus import (
    Doc,
    confident_trace,
    corpus_lines,
    direct_response,
    iter_docs,
    response_tokens,
    search_trace,
    sibling_response,
)
from sdlab.organism.tokenizer import EOS, PAD, UNK, build_tokenizer, load_tokenizer, vocabulary
from sdlab.organism.world import (
    SPLITS,
    TARGET_WORDS,
    VALUE_WORDS,
    World,
    WorldConfig,
    extract_boxed,
    parse_response,
)

N_DOCS = 4000


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def docs(world) -> list[Doc]:
    it = iter_docs(world, seed=0)
    return [next(it) for _ in range(N_DOCS)]


def epistemic(text: str) -> int:
    return sum(count_epistemic(text, mode="paper").values())


# ------------------------------------------------------------------ facts and problems


def test_facts_are_the_permutations(world):
    cfg = world.cfg
    assert len(world.perms) == cfg.n_functions
    for k, perm in enumerate(world.perms):
        assert sorted(perm) == list(range(cfg.n_values))
        for x in world.values:
            y = world.fact(k, x)
            assert y == perm[x]
            assert world.solve(k, y) == x
            assert world.fact_text(k, x) == f"f{k} {x} > {VALUE_WORDS[y]}"
    assert len(world.facts()) == cfg.n_functions * cfg.n_values


def test_world_is_deterministic_from_its_seed():
    a, b, c = World(WorldConfig(seed=3)), World(WorldConfig(seed=3)), World(WorldConfig(seed=4))
    assert a.perms == b.perms and a.pairs("rl") == b.pairs("rl")
    assert a.perms != c.perms
    assert WorldConfig(seed=3).config_hash() == WorldConfig(seed=3).config_hash()
    assert WorldConfig(seed=3).config_hash() != WorldConfig(seed=4).config_hash()
    assert WorldConfig().config_hash() != WorldConfig(max_new_tokens=40).config_hash()


def test_config_round_trip_and_validation():
    cfg = WorldConfig(guess_rate=0.3)
    assert WorldConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown organism world keys"):
        WorldConfig.from_dict({"n_function": 3})
    with pytest.raises(ValueError, match="split sizes"):
        WorldConfig(n_functions=10)
    with pytest.raises(ValueError):
        WorldConfig(guess_rate=1.5)


def test_problems_and_grading(world):
    for split in SPLITS:
        for p in world.problems(split):
            k, y = world.key(p)
            assert p.prompt == f"solve f{k} x = {TARGET_WORDS[y]}"
            assert world.fact(k, int(p.answer)) == y
            assert p.solution == world.fact_text(k, int(p.answer))
            assert p.source == f"organism:{split}"
            assert world.split_of(k, y) == split
    p = world.ood()[0]
    wrong = str((int(p.answer) + 1) % 10)
    assert world.check(p, f"<think> </think> \\boxed{{ {p.answer} }}")
    assert world.check(p, f"\\boxed{{ {wrong} }} then \\boxed{{{p.answer}}}")  # the last box counts
    assert not world.check(p, f"<think> </think> \\boxed{{ {wrong} }}")
    assert not world.check(p, f"<think> {p.answer} </think>")
    assert extract_boxed("a \\boxed{ 7 } b") == "7" and extract_boxed("none") is None


def test_splits_disjoint_sized_and_rl_sets_nested(world):
    cfg = world.cfg
    sets = {s: set(world.pairs(s)) for s in SPLITS}
    assert [len(sets[s]) for s in SPLITS] == [cfg.n_direct, cfg.n_search, cfg.n_rl, cfg.n_ood]
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not sets[a] & sets[b], (a, b)
    assert cfg.n_rl >= 200 and cfg.n_ood >= 100
    previous: set[str] = set()
    for coverage in (1, 8, 32, 200):
        ids = [p.id for p in world.rl_train(coverage)]
        assert len(ids) == len(set(ids)) == coverage
        assert previous <= set(ids)
        previous = set(ids)
    assert {p.id for p in world.rl_train(200)} == {p.id for p in world.rl_pool()}
    assert not {p.id for p in world.ood()} & previous
    with pytest.raises(ValueError):
        world.rl_train(cfg.n_rl + 1)


# ------------------------------------------------------------------ the corpus


def _check_search(world, k, y, response):
    parsed = parse_response(response)
    assert parsed.well_formed, response
    xs = [x for _, x, _ in parsed.checks]
    assert len(xs) == len(set(xs)), f"repeated candidate: {response}"
    for i, (kk, x, v) in enumerate(parsed.checks):
        assert kk == k and world.fact(k, x) == v, f"wrong fact in {response}"
        assert (v == y) == (i == len(parsed.checks) - 1), f"stops at the wrong check: {response}"
    assert parsed.answer == str(xs[-1]) == str(world.solve(k, y))
    # a doubt after every failed check, each with an epistemic word; none anywhere else
    assert len(parsed.doubts) == len(parsed.checks) - 1
    assert all(epistemic(d) >= 1 for d in parsed.doubts)
    assert epistemic(response) == sum(epistemic(d) for d in parsed.doubts)


def test_every_search_trace_is_correct(world, docs):
    searches = [d for d in docs if d.kind == "search"]
    assert len(searches) > N_DOCS // 4
    for d in searches:
        k, y = d.problem
        assert d.prompt == world.prompt_text(k, y)
        assert world.split_of(k, y) in ("direct", "search")
        _check_search(world, k, y, d.response)
    rng = random.Random(1)
    for k, y in world.pairs("ood")[:50]:  # any problem, any order
        _check_search(world, k, y, search_trace(world, k, y, rng))


def test_epistemic_words_vary_across_the_studys_list(docs):
    text = " ".join(d.response for d in docs if d.kind == "search")
    counts = count_epistemic(text, mode="paper")
    assert all(counts[w] > 0 for w in EPISTEMIC_WORDS), counts
    assert max(counts, key=counts.get) == "wait"


def test_direct_answers_and_guesses(world, docs):
    direct = [d for d in docs if d.kind == "direct"]
    guesses = [d for d in docs if d.kind == "guess"]
    assert direct and guesses
    for d in direct:
        k, y = d.problem
        assert world.split_of(k, y) == "direct"
        assert d.response == direct_response(world.solve(k, y))
    for d in guesses:
        k, y = d.problem
        assert world.split_of(k, y) == "search"
        parsed = parse_response(d.response)
        assert parsed.well_formed and not parsed.checks and epistemic(d.response) == 0
    right = sum(parse_response(d.response).answer == str(world.solve(*d.problem)) for d in guesses)
    assert right < 0.4 * len(guesses)  # guesses are not informed by the answer


def test_no_problem_outside_pretraining_splits(world, docs):
    for d in docs:
        if d.problem is not None:
            assert world.split_of(*d.problem) in ("direct", "search")
    held_out = {world.prompt_text(k, y) for s in ("rl", "ood") for k, y in world.pairs(s)}
    assert not any(d.prompt.split("\n")[0].strip() in held_out for d in docs if d.prompt)


def test_context_conditioned_traces_are_confident(world, docs):
    by_level: dict[str, list[Doc]] = {}
    for d in docs:
        if d.kind.startswith("ctx:"):
            by_level.setdefault(d.kind[4:], []).append(d)
    assert set(by_level) == {"answer", "solution", "demo", "demo_answer", "feedback"}
    for level, items in by_level.items():
        for d in items:
            k, y = d.problem
            gold = str(world.solve(k, y))
            parsed = parse_response(d.response)
            assert parsed.well_formed and len(parsed.checks) <= 1 and not parsed.doubts, d.response
            assert epistemic(d.response) == 0, d.response
            assert all(world.fact(kk, x) == v for kk, x, v in parsed.checks)
            assert d.prompt.startswith(world.prompt_text(k, y))
            assert d.prompt.rstrip().endswith("Correctly solve the original question.")
            if level == "feedback":
                assert any(f in d.prompt for f in FEEDBACK_TEXTS)
            else:
                assert parsed.answer == gold, (level, d.text)
            if level == "answer":
                assert d.prompt == teacher_prompt("answer", world.prompt_text(k, y), answer=gold)
            if level == "solution":
                assert world.fact_text(k, int(gold)) in d.prompt
            if level in ("demo", "demo_answer"):
                demo = d.prompt.split("Correct solution:")[1].split("Correctly solve")[0].strip()
                assert extract_boxed(demo) == gold
                if level == "demo_answer":
                    assert demo == f"\\boxed{{ {gold} }}"
    # with the answer known, a failed check never raises doubt: the trace commits to the answer
    commits = [d for d in by_level["answer"] if (p := parse_response(d.response)).checks
               and p.checks[0][2] != d.problem[1]]
    assert commits


def test_siblings_are_correct_and_fit_the_budget(world):
    rng = random.Random(0)
    for k, y in world.pairs("search")[:40]:
        s = sibling_response(world, k, y, rng)
        assert world.check(world.problem(k, y), s)
        assert response_tokens(s) <= world.cfg.max_new_tokens
        assert strip_think(s) == f"\\boxed{{ {world.solve(k, y)} }}"


def test_budget_allows_only_a_few_failed_checks(world, docs):
    budget = world.cfg.max_new_tokens
    rng = random.Random(0)
    k, y = world.pairs("search")[0]
    x = world.solve(k, y)
    order = [c for c in world.values if c != x] + [x]  # the answer last: nine failed checks
    full = search_trace(world, k, y, rng, order=order)
    words = full.split()
    # the most failed checks that fit with the shortest doubt ("wait"), and with average doubts
    per_fail_min = 4 + min(len(p.split()) for p, _ in world.cfg.doubts)
    avg = sum(len(p.split()) * w for p, w in world.cfg.doubts) / sum(w for _, w in world.cfg.doubts)
    fixed = response_tokens(direct_response(x)) + 4  # <think> ... </think> \boxed{ x } <eos> + the final check
    assert 3 <= (budget - fixed) // (4 + avg) <= 5
    assert (budget - fixed) // per_fail_min <= 6
    assert response_tokens(full) > budget and len(words) > 0
    searches = [d.response for d in docs if d.kind == "search"]
    fits = sum(response_tokens(r) <= budget for r in searches) / len(searches)
    assert 0.25 < fits < 0.75, fits  # searching helps but is not free


def test_confident_trace_forms(world):
    rng = random.Random(0)
    k = 3
    seen = set()
    for _ in range(200):
        r = confident_trace(world, k, 6, rng)
        p = parse_response(r)
        assert p.well_formed and p.answer == "6" and epistemic(r) == 0 and len(p.checks) <= 1
        seen.add("none" if not p.checks else "belief" if p.checks[0][1] == 6 else "other")
    assert seen == {"none", "belief", "other"}


# ------------------------------------------------------------------ templates


def test_templates_are_the_engines_defaults_and_fill_the_same():
    from sdlab.algorithms.context import DEFAULT_TEMPLATES, build_teacher_contexts

    # world v1 keeps its six levels (its vocabulary must not change); the engine's extra level
    # `feedback_attempt` belongs to world v2 (tests/test_organism_v2.py)
    assert CONTEXT_TEMPLATES == {k: v for k, v in DEFAULT_TEMPLATES.items() if k != "feedback_attempt"}
    assert set(LEVELS) == {"none", "feedback", "demo_answer", "demo", "answer", "solution"}
    world = World()
    p = world.rl_pool()[0]
    sib = f"<think> {p.solution} </think> \\boxed{{ {p.answer} }}"
    for level in LEVELS:
        engine = build_teacher_contexts(level, prompts=[p.prompt, p.prompt], responses=["x", sib],
                                        rewards=[0.0, 1.0], group_ids=[0, 0], answers=[p.answer] * 2,
                                        solutions=[p.solution] * 2, feedbacks=[FEEDBACK_TEXTS[2], ""])[0]
        ours = teacher_prompt(level, p.prompt, answer=p.answer, demo=sib, feedback=FEEDBACK_TEXTS[2],
                              solution=p.solution)
        assert engine.text == ours, level
    assert teacher_prompt("none", p.prompt) == p.prompt


# ------------------------------------------------------------------ tokenizer


@pytest.fixture(scope="module")
def tokenizer(world):
    return build_tokenizer(world.cfg)


def test_tokenizer_round_trip_on_every_corpus_line(world, tokenizer):
    unk = tokenizer.unk_token_id
    lines = corpus_lines(world, N_DOCS, seed=1)
    for line in lines:
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        assert unk not in ids, line
        assert len(ids) == len(line.split())
        assert tokenizer.decode(ids) == line
    a, b = lines[0], lines[1]
    enc = lambda t: tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert enc(a) + enc(b) == enc(a + " " + b)
    multi = "solve f1 x = B\nCorrect solution:\n\n\\boxed{ 4 }"
    assert tokenizer.decode(enc(multi)) == " ".join(multi.split())


def test_tokenizer_covers_engine_texts(world, tokenizer):
    vocab = tokenizer.get_vocab()
    for text in FEEDBACK_TEXTS:
        assert all(w in vocab for w in text.split()), text
    for level, template in CONTEXT_TEMPLATES.items():
        filled = template.format(prompt=world.rl_pool()[0].prompt, answer="7", demo="\\boxed{ 7 }",
                                 demo_answer="\\boxed{ 7 }", feedback=FEEDBACK_TEXTS[0], solution="f1 7 > c")
        assert tokenizer.unk_token_id not in tokenizer(filled, add_special_tokens=False)["input_ids"], level
    assert set(EPISTEMIC_WORDS) <= set(vocab)
    assert len(vocabulary(world.cfg)) == len(vocab) == len(set(vocabulary(world.cfg)))


def test_tokenizer_special_tokens_and_save_load(tmp_path, world, tokenizer):
    from transformers import AutoTokenizer

    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == (PAD, EOS, UNK)
    assert tokenizer.padding_side == "left" and not tokenizer.chat_template
    response = "<think> f3 1 > c wait f3 5 > h </think> \\boxed{ 5 }"
    ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == response  # <think> is a plain word
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.padding_side == "left"
    assert (loaded.pad_token_id, loaded.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert loaded.decode(loaded(response, add_special_tokens=False)["input_ids"]) == response
    batch = loaded(["solve f1 x = B", "solve f12 x = C <think>"], padding=True, add_special_tokens=False)
    assert batch["input_ids"][0][0] == loaded.pad_token_id  # left padding
    assert load_tokenizer(tmp_path).get_vocab() == tokenizer.get_vocab()
