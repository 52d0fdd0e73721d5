import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sdlab.rollout import SamplingParams, make_backend, sample_seed
from sdlab.rollout.sampling import filter_logits, sample_tokens, uniforms


def _backend(path):
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    return make_backend("hf", model, tok), model, tok


def test_uniforms_are_uniform_and_deterministic():
    seeds = torch.arange(20000)
    u = uniforms(seeds, 0)
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01
    assert torch.equal(u, uniforms(seeds, 0))
    assert not torch.equal(u, uniforms(seeds, 1))


def test_sampler_matches_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(40000, 1)
    tokens, logp = sample_tokens(logits, torch.arange(40000), 0, 1.0, 0, 1.0)
    freq = torch.bincount(tokens, minlength=4).float() / 40000
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.01)
    assert torch.allclose(logp, logits.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1))


def test_top_k_top_p_filtering():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, 1.0, 2, 1.0)[0, 2:]).all()
    probs = logits.softmax(-1)[0]  # 0.644, 0.237, 0.087, 0.032
    kept = ~torch.isinf(filter_logits(logits, 1.0, 0, 0.7)[0])
    assert kept.tolist() == [True, True, False, False]
    tokens, _ = sample_tokens(logits.repeat(1000, 1), torch.arange(1000), 0, 1.0, 0, 0.7)
    assert set(tokens.tolist()) <= {0, 1}
    assert probs.sum() > 0.99


def test_greedy():
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    tokens, logp = sample_tokens(logits, torch.tensor([1]), 0, 0.0, 0, 1.0)
    assert tokens.tolist() == [1] and logp.tolist() == [0.0]


def test_generation_is_batch_invariant_and_seeded(tiny_qwen3):
    backend, model, tok = _backend(tiny_qwen3)
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    seeds = [sample_seed(0, 1, i) for i in range(3)]
    together = backend.generate(prompts, seeds, params)
    alone = [backend.generate([p], [s], params)[0] for p, s in zip(prompts, seeds)]
    for a, b in zip(together, alone):
        assert a.response_ids == b.response_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)
    other = backend.generate(prompts, [s + 1 for s in seeds], params)
    assert any(a.response_ids != b.response_ids for a, b in zip(together, other))


def test_logprobs_match_a_forward_pass(tiny_qwen3):
    backend, model, tok = _backend(tiny_qwen3)
    r = backend.generate([[5, 6, 7]], [3], SamplingParams(temperature=0.7, max_new_tokens=8))[0]
    ids = torch.tensor([r.prompt_ids + r.response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(r.prompt_ids) - 1 : -1] / 0.7
    expected = logits.log_softmax(-1).gather(-1, torch.tensor(r.response_ids)[:, None]).squeeze(-1)
    assert torch.allclose(expected, torch.tensor(r.logprobs), atol=1e-4)


def test_eos_stops_and_truncation_flag(tiny_qwen3):
    backend, model, tok = _backend(tiny_qwen3)
    # make EOS overwhelmingly likely
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.eos_token_id] *= 0
        model.get_output_embeddings().weight[tok.eos_token_id] += 0
    r = backend.generate([[5, 6]], [1], SamplingParams(temperature=1.0, max_new_tokens=5))[0]
    assert len(r.response_ids) <= 5
    assert r.truncated == (tok.eos_token_id not in r.response_ids)
    if not r.truncated:
        assert r.response_ids[-1] == tok.eos_token_id
