"""sdlab's decoding loop (rollout/decode.py) against the transformers.generate path.

Both draw every token with the counter-based sampler from (sample seed, position), so for the
same seeds they must return the same tokens, truncation flags and (up to float rounding that
depends on the batch size of the matrix multiplications) the same log-probs, whatever the
batch size, order and mix of prompt lengths (left padding) and wherever EOS falls.
"""

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sdlab.rollout import SamplingParams, make_backend, sample_seed
from sdlab.rollout.decode import GQA_SDPA, decode

ATOL = 1e-5


def _eos_biased(path, delta: float):
    """The tiny model with EOS made likely: a shared offset on one embedding dimension (which
    cancels in the softmax) plus `delta` more on EOS's row of the tied head."""
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[:, 0] = 0.4
        emb[tok.eos_token_id, 0] = 0.4 + delta
    return model, tok


@pytest.fixture(scope="module")
def eos_model(tiny_qwen3):
    return _eos_biased(tiny_qwen3, 0.05)


def _prompts(n: int, seed: int = 0, lo: int = 1, hi: int = 24) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(10, 90) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def _assert_same(a, b, atol=ATOL):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.prompt_ids == y.prompt_ids
        assert x.response_ids == y.response_ids
        assert x.truncated == y.truncated
        assert len(x.logprobs) == len(x.response_ids) == len(y.logprobs)
        if x.logprobs:
            assert torch.allclose(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=atol), \
                (x.logprobs, y.logprobs)


PARAMS = [
    SamplingParams(temperature=1.0, max_new_tokens=40),
    SamplingParams(temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=40),
    SamplingParams(temperature=1.3, top_k=5, max_new_tokens=40),
    SamplingParams(temperature=0.9, top_p=0.5, max_new_tokens=40),
    SamplingParams(temperature=0.0, max_new_tokens=12),
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"T{p.temperature}-p{p.top_p}-k{p.top_k}")
def test_loop_matches_generate(eos_model, params):
    model, tok = eos_model
    prompts = _prompts(12) + [p for p in _prompts(4, seed=9) for _ in range(3)]  # distinct and GRPO-repeated
    seeds = [sample_seed(7, 0, i) for i in range(len(prompts))]
    ref = make_backend("hf", model, tok, hf_engine="generate").generate(prompts, seeds, params)
    new = make_backend("hf", model, tok, hf_engine="loop").generate(prompts, seeds, params)
    _assert_same(ref, new)
    lengths = [len(r.response_ids) for r in ref]
    if params.temperature > 0:  # EOS at varied positions (and, at T=1, some rows truncated)
        assert len(set(lengths)) >= 5 and any(not r.truncated for r in ref)
        assert any(r.truncated for r in ref) or params.temperature != 1.0


def test_loop_is_invariant_to_batch_composition(eos_model):
    model, tok = eos_model
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=40)
    prompts = _prompts(20, seed=1)
    seeds = [sample_seed(3, 1, i) for i in range(len(prompts))]
    backend = make_backend("hf", model, tok)
    together = backend.generate(prompts, seeds, params)
    # reversed order, different batch sizes, single rows, and mixed with other prompts
    order = list(reversed(range(len(prompts))))
    rev = backend.generate([prompts[i] for i in order], [seeds[i] for i in order], params)
    _assert_same(together, [rev[order.index(i)] for i in range(len(prompts))])
    chunked = make_backend("hf", model, tok, batch_size=3).generate(prompts, seeds, params)
    _assert_same(together, chunked)
    for i in (0, 7, 19):
        _assert_same([together[i]], backend.generate([prompts[i]], [seeds[i]], params))
    others = _prompts(9, seed=2, lo=30, hi=40)  # longer prompts widen the left padding of everyone
    mixed = backend.generate(others + prompts, [sample_seed(9, i) for i in range(9)] + seeds, params)[9:]
    _assert_same(together, mixed)
    again = backend.generate(prompts, [s + 1 for s in seeds], params)
    assert any(a.response_ids != b.response_ids for a, b in zip(together, again))


@pytest.mark.parametrize("options", [
    dict(compact_fraction=0.0), dict(compact_fraction=0.5), dict(compact_fraction=1.01),
    dict(chunked_cache=False), dict(gqa_attention=False), dict(shared_prefill=False),
])
def test_loop_options_do_not_change_samples(eos_model, options):
    model, tok = eos_model
    params = SamplingParams(temperature=1.0, max_new_tokens=40)
    prompts = [p for p in _prompts(6, seed=4) for _ in range(3)]  # repeated prompts, as in GRPO
    seeds = [sample_seed(5, i) for i in range(len(prompts))]
    eos, pad = [tok.eos_token_id], tok.pad_token_id
    base = decode(model, prompts, seeds, params, eos=eos, pad=pad)
    _assert_same(base, decode(model, prompts, seeds, params, eos=eos, pad=pad, **options))


def test_loop_without_padding_and_with_llama(tiny_llama, eos_model):
    # equal prompt lengths: no attention mask at all (is_causal prefill), as generate does
    model, tok = eos_model
    params = SamplingParams(temperature=1.0, max_new_tokens=30)
    prompts = _prompts(8, seed=5, lo=6, hi=6)
    seeds = list(range(8))
    _assert_same(make_backend("hf", model, tok, hf_engine="generate").generate(prompts, seeds, params),
                 make_backend("hf", model, tok).generate(prompts, seeds, params))
    model, tok = _eos_biased(tiny_llama, 0.05)
    prompts = _prompts(12, seed=6)
    _assert_same(make_backend("hf", model, tok, hf_engine="generate").generate(prompts, list(range(12)), params),
                 make_backend("hf", model, tok).generate(prompts, list(range(12)), params))


def test_loop_logprobs_match_a_forward_pass(eos_model):
    model, tok = eos_model
    prompts = _prompts(6, seed=8)
    rollouts = make_backend("hf", model, tok).generate(prompts, list(range(6)), SamplingParams(0.7, max_new_tokens=25))
    for r in rollouts:
        ids = torch.tensor([r.prompt_ids + r.response_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(r.prompt_ids) - 1 : -1] / 0.7
        expected = logits.log_softmax(-1).gather(-1, torch.tensor(r.response_ids)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(r.logprobs), atol=1e-4)
        assert r.truncated == (tok.eos_token_id not in r.response_ids)
        if not r.truncated:
            assert r.response_ids.index(tok.eos_token_id) == len(r.response_ids) - 1


def test_loop_restores_model_state(eos_model):
    model, tok = eos_model
    model.train()
    assert model.config._attn_implementation == "sdpa"
    make_backend("hf", model, tok).generate([[5, 6, 7], [8]], [1, 2], SamplingParams(max_new_tokens=5))
    assert model.training and model.config._attn_implementation == "sdpa"

    class Boom(RuntimeError):
        pass

    def explode(*a, **k):
        assert model.config._attn_implementation == GQA_SDPA
        raise Boom

    original = model.forward
    model.forward = explode
    try:
        with pytest.raises(Boom):
            decode(model, [[5, 6]], [1], SamplingParams(max_new_tokens=3), eos=[tok.eos_token_id], pad=0)
    finally:
        model.forward = original
    assert model.training and model.config._attn_implementation == "sdpa"
    model.eval()


def test_unknown_engine_is_an_error(eos_model):
    model, tok = eos_model
    with pytest.raises(ValueError, match="hf_engine"):
        make_backend("hf", model, tok, hf_engine="fast")


def test_trainer_runs_are_identical_with_either_engine(tiny_qwen3, tmp_path, monkeypatch):
    """Two GRPO steps with rollout.hf_engine=loop (the default) and =generate: same samples, same weights."""
    import json

    from safetensors.torch import load_file

    from sdlab.config import load_config
    from sdlab.engine import trainer as trainer_mod
    from sdlab.engine.metrics import read_metrics
    from sdlab.rewards import GradeResult

    def grade_many(responses, golds, grader="strict", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct="1" in r, pred=None, reason="x", feedback="") for r in responses]

    monkeypatch.setattr(trainer_mod, "grade_many", grade_many)
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "problem": "What is " + "1+" * i + "1?",
                                        "answer": str(i + 1)}) + "\n"
                            for i in range(8)))
    runs = {}
    for engine in ("loop", "generate"):
        out = tmp_path / engine
        cfg = load_config(None, [
            f"model.name_or_path={tiny_qwen3}", f"data.train={data}", f"output_dir={out}", "model.device=cpu",
            "rollout.n=4", "rollout.max_new_tokens=24", "data.train_batch_size=4", "steps=2", "actor.lr=1e-3",
            "actor.micro_batch_size=8", "logging.progress=false", f"rollout.hf_engine={engine}",
        ])
        assert cfg.rollout.hf_engine == engine
        trainer_mod.train(cfg)
        runs[engine] = (load_file(str(out / "final" / "model.safetensors")), read_metrics(out / "metrics.jsonl"))
    (wa, ma), (wb, mb) = runs["loop"], runs["generate"]
    for key in ("response_length/mean", "response_length/max", "reward/mean"):
        assert [r[key] for r in ma] == [r[key] for r in mb], key
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
