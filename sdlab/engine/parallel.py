"""Data parallelism: the choice of strategy, FSDP2 sharding, and the few operations that differ
between a sharded and a whole model (full state dicts, gradient clipping, the EMA update).

`parallel.strategy`:
  none  one process, the model as it is;
  ddp   a full replica per process (accelerate's DistributedDataParallel); refused over ~1B
        parameters with several processes (weights, gradients, buckets and Adam states of a 7-8B
        model alone exceed an 80 GB GPU);
  fsdp  PyTorch FSDP2: `fully_shard` on every decoder layer and on the root, fp32 master shards,
        compute in `model.dtype`, gradients reduced in fp32. sdlab applies it itself — under
        `torchrun` or `accelerate launch` alike, on GPUs (NCCL) and on CPUs (gloo), where
        accelerate would silently fall back to DDP.
DeepSpeed is refused: `prepare` without a dataloader needs its micro-batch size in the config,
and every backward outside `accelerator.accumulate` is an optimizer step, both silently wrong here.

The root module keeps its parameters unsharded between forward and backward (FSDP2's default for
the root): the engine applies the LM head (a root parameter) chunk by chunk *after* the model's
forward returns (`sdlab.engine.head`). Frozen modules are resharded explicitly after use.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist

from ..config import ConfigError

DDP_MAX_PARAMS = 1.0e9


def check_strategy(strategy: str, accelerator, num_params: int) -> None:
    """Refuse the launch configurations that would fail or silently train wrong."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        raise ConfigError("DeepSpeed is not supported (its micro-batch size and gradient accumulation would be "
                          "silently wrong here); launch with configs/accelerate/multi_gpu.yaml or torchrun and set "
                          "parallel.strategy=fsdp")
    if kind in (DistributedType.FSDP,) and strategy != "fsdp":
        raise ConfigError("accelerate's FSDP plugin is not used: sdlab shards the model itself; launch with "
                          "configs/accelerate/multi_gpu.yaml (or torchrun) and set parallel.strategy=fsdp")
    world = accelerator.num_processes
    if strategy == "none" and world > 1:
        raise ConfigError(f"parallel.strategy=none runs one process, but {world} were launched; "
                          "use parallel.strategy=fsdp (or ddp for models under 1B parameters)")
    if strategy == "ddp" and world > 1 and num_params > DDP_MAX_PARAMS:
        raise ConfigError(f"parallel.strategy=ddp keeps a full replica of this {num_params / 1e9:.1f}B-parameter "
                          "model, its gradients and Adam states on every process; use parallel.strategy=fsdp")


def init_single_process_group(device: torch.device) -> None:
    """FSDP2 needs a process group even for one process (e.g. `sdlab train` on one GPU)."""
    if dist.is_initialized():
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=0, world_size=1)


def decoder_layers(model) -> list[torch.nn.Module]:
    """The model's repeated blocks: modules whose class is one of the model's `_no_split_modules`
    (Qwen3DecoderLayer, LlamaDecoderLayer, ...)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(f"parallel.strategy=fsdp: {type(model).__name__} names no decoder layer class "
                          "(_no_split_modules); use parallel.strategy=ddp")
    return layers


def shard(model, *, compute_dtype: torch.dtype | None = None):
    """FSDP2: one unit per decoder layer and one at the root. compute_dtype (when it differs from the
    stored dtype): parameters are all-gathered in it and gradients reduce-scattered in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    stored = next(model.parameters()).dtype
    mp = None
    if compute_dtype is not None and compute_dtype != stored:
        mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    kw = {"mp_policy": mp} if mp is not None else {}
    for layer in decoder_layers(model):
        fully_shard(layer, **kw)
    fully_shard(model, **kw)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (a plain tensor is returned as is)."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


@contextlib.contextmanager
def gathered(model):
    """Every FSDP unit's full parameters gathered once for the block, and kept until it ends.

    For generation with the model itself: otherwise each decoding step would all-gather every
    layer again (one collective per layer per token) and every rank would have to step in lockstep.
    Inside the block forwards run without any collective. Afterwards the parameters are resharded
    and each unit's reshard-after-forward setting is restored (the root keeps its own)."""
    if not is_sharded(model):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for m in units:
        m.set_reshard_after_forward(False, recurse=False)
        m.unshard()
    try:
        yield
    finally:
        for m in units:
            m.reshard()
            m.set_reshard_after_forward(m is not model, recurse=False)


def reshard(model) -> None:
    """Free a frozen sharded module's gathered parameters after its forward passes (a root module
    keeps them after forward, and without a backward nothing else releases them)."""
    if is_sharded(model):
        model.reshard()


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Clip by the global norm; with DTensor gradients the norm is reduced over all shards."""
    from torch.distributed.tensor import DTensor

    norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)


def full_state_dict(model) -> dict[str, torch.Tensor]:
    """The whole model's state dict as plain CPU tensors on rank 0 (empty on other ranks).
    A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not is_sharded(model):
        inner = model.module if hasattr(model, "module") else model
        return {k: v.detach().cpu() for k, v in inner.state_dict().items()} if rank() == 0 else {}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def iter_full_tensors(model):
    """(name, full tensor on this rank's device) one parameter or buffer at a time, on *every* rank
    (each shard all-gathered in turn): what a colocated inference engine needs after an update."""
    from torch.distributed.tensor import DTensor

    inner = model.module if hasattr(model, "module") else model
    for name, t in inner.state_dict().items():
        yield name, (t.full_tensor() if isinstance(t, DTensor) else t).detach()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_max(value: int, device: torch.device) -> int:
    """The largest value over all ranks (e.g. the number of micro-batches every rank must run)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def gather_objects(obj) -> list:
    """Every rank's object, in rank order (JSON-able lists and dicts of our own; a collective)."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
