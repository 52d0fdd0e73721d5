"""Group-relative (GRPO) advantages from scalar sequence rewards.

A_i = (r_i - mean_g) / (std_g + eps)   (norm_by_std=True, verl `norm_adv_by_std_in_grpo`)
A_i =  r_i - mean_g                     (norm_by_std=False, Dr. GRPO)

std is the *unbiased* (Bessel-corrected) group standard deviation, as in verl and TRL. A group of
size 1 gets mean 0 and std 1 (verl), so its advantage is r / (1 + eps) (or r without std
scaling). A group whose rewards are all equal gets exactly 0. Default eps = 1e-6 (verl); TRL
uses 1e-4.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_index(groups: Tensor | int | list, n: int, device=None) -> tuple[Tensor, int]:
    """(dense group index [N] in 0..G-1, G) from a group size or per-sample group ids."""
    if isinstance(groups, int):
        if groups < 1:
            raise ValueError(f"group size must be >= 1, got {groups}")
        if n % groups != 0:
            raise ValueError(f"{n} rewards cannot be split into groups of {groups}")
        return torch.arange(n, device=device) // groups, n // groups
    ids = torch.as_tensor(groups, device=device)
    if ids.shape != (n,):
        raise ValueError(f"group ids must have shape ({n},), got {tuple(ids.shape)}")
    uniq, inverse = torch.unique(ids, return_inverse=True)
    return inverse, int(uniq.numel())


def _group_stats(rewards: Tensor, index: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (group mean, unbiased group std, group size); size-1 groups: mean 0, std 1."""
    zeros = torch.zeros(num_groups, dtype=rewards.dtype, device=rewards.device)
    count = zeros.index_add(0, index, torch.ones_like(rewards))
    mean = zeros.index_add(0, index, rewards) / count
    centred = rewards - mean[index]
    sq = zeros.index_add(0, index, centred * centred)
    std = torch.sqrt(sq / (count - 1).clamp_min(1))
    single = count[index] == 1
    mean_i = torch.where(single, torch.zeros_like(rewards), mean[index])
    std_i = torch.where(single, torch.ones_like(rewards), std[index])
    return mean_i, std_i, count[index]


def group_advantages(
    rewards: Tensor,
    groups: Tensor | int | list,
    *,
    norm_by_std: bool = True,
    epsilon: float = 1e-6,
) -> Tensor:
    """Advantages [N] for rewards [N]; `groups` is a group size (consecutive samples) or ids [N]."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    index, num_groups = group_index(groups, rewards.shape[0], rewards.device)
    mean, std, count = _group_stats(rewards, index, num_groups)
    adv = rewards - mean
    if norm_by_std:
        adv = adv / (std + epsilon)
    # all-equal groups (size >= 2): exactly 0, whatever the rounding of the mean
    grp_min = torch.full((num_groups,), float("inf"), dtype=rewards.dtype, device=rewards.device)
    grp_max = torch.full((num_groups,), float("-inf"), dtype=rewards.dtype, device=rewards.device)
    grp_min = grp_min.scatter_reduce(0, index, rewards, "amin")
    grp_max = grp_max.scatter_reduce(0, index, rewards, "amax")
    flat = (grp_max == grp_min)[index] & (count > 1)
    return torch.where(flat, torch.zeros_like(adv), adv)


def frac_zero_std_groups(rewards: Tensor, groups: Tensor | int | list) -> float:
    """Fraction of groups whose rewards are all equal (no learning signal; DAPO filters them).

    A group of size 1 counts as zero-std.
    """
    index, num_groups = group_index(groups, rewards.shape[0], rewards.device)
    if num_groups == 0:
        return 0.0
    r = rewards.to(torch.float64)
    grp_min = torch.full((num_groups,), float("inf"), dtype=r.dtype, device=r.device).scatter_reduce(
        0, index, r, "amin")
    grp_max = torch.full((num_groups,), float("-inf"), dtype=r.dtype, device=r.device).scatter_reduce(
        0, index, r, "amax")
    return float((grp_max == grp_min).double().mean())
