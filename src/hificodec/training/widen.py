"""Function-preserving widening: start a wider architecture from a narrower one's weights.

Net2Net (Chen et al. 2016) for this network: every channel of a widened layer is copied k
times (k = new width / old width, an integer), and each layer that reads the copies gets the
old weights split among them (summing to the old weight, so its output is unchanged). The
split is uneven at random: copies whose outgoing weights were equal would get equal
gradients and stay copies forever. ChannelNorm normalises across channels with the unbiased
variance, which copying changes by k(C-1)/(kC-1); its gain is corrected by the inverse.
The widened model computes what the narrow one did up to float rounding and ChannelNorm's
epsilon, and training takes it on from there instead of from scratch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hificodec.nn.layers import ChannelNorm2d


def _copies(old: int, new: int, what: str) -> int:
    if new % old:
        raise ValueError(f"{what}: {old} -> {new} channels is not a whole multiple, cannot widen")
    return new // old


def _uneven_split(k: int, shape: tuple[int, ...], generator: torch.Generator, jitter: float) -> torch.Tensor:
    """(k, *shape) factors summing to 1 over the first dimension, each near 1/k."""
    noise = (torch.rand((k, *shape), generator=generator) * 2 - 1) * jitter / k
    return 1.0 / k + noise - noise.mean(0, keepdim=True)


def _widen(tensor: torch.Tensor, dim: int, new: int, split: bool, generator: torch.Generator,
           jitter: float) -> torch.Tensor:
    """Copies channel c to c, c + C, c + 2C, ... along ``dim``; ``split``: the copies share the
    old value (the dimension a layer reads its input channels on) instead of repeating it."""
    old = tensor.shape[dim]
    if old == new:
        return tensor
    k = _copies(old, new, f"dimension {dim} of a {tuple(tensor.shape)} tensor")
    moved = tensor.movedim(dim, 0)
    wide = moved.repeat(k, *([1] * (moved.dim() - 1)))
    if split:
        factors = _uneven_split(k, tuple(moved.shape), generator, jitter)
        wide = wide * factors.reshape(k * old, *moved.shape[1:])
    return wide.movedim(0, dim).contiguous()


def widen_state_dict(target: nn.Module, source: dict[str, torch.Tensor], seed: int = 0,
                     jitter: float = 0.1) -> dict[str, torch.Tensor]:
    """A state for ``target`` (a wider version of the source's architecture: the same layers,
    some with a whole multiple of the channels) that computes what ``source`` does."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    roles: dict[str, tuple[int | None, int | None]] = {}  # parameter -> (output dim, input dim)
    norms: set[str] = set()  # ChannelNorm gains
    for name, module in target.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            roles[prefix + "weight"] = (0, 1)
            roles[prefix + "bias"] = (0, None)
        elif isinstance(module, nn.ConvTranspose2d):
            roles[prefix + "weight"] = (1, 0)
            roles[prefix + "bias"] = (0, None)
        elif isinstance(module, ChannelNorm2d):
            roles[prefix + "weight"] = (1, None)
            roles[prefix + "bias"] = (1, None)
            norms.add(prefix + "weight")
    wanted = target.state_dict()
    for key, value in source.items():
        want = wanted.get(key)
        # Tensors the target lacks, and buffers of other sizes (the entropy coder's tables, which
        # HiFiC.load_state_dict resizes), pass through for load_state_dict to judge.
        if want is None or value.shape == want.shape or key not in roles:
            out[key] = value.clone()
            continue
        if value.dim() != want.dim():
            raise ValueError(f"{key}: {tuple(value.shape)} -> {tuple(want.shape)} is not a widening")
        out_dim, in_dim = roles[key]
        for dim in range(value.dim()):
            if value.shape[dim] != want.shape[dim] and dim not in (out_dim, in_dim):
                raise ValueError(f"{key}: dimension {dim} changed, only channels can be widened")
        wide = value.float()
        if out_dim is not None:
            wide = _widen(wide, out_dim, want.shape[out_dim], False, generator, jitter)
        if in_dim is not None:
            wide = _widen(wide, in_dim, want.shape[in_dim], True, generator, jitter)
        if key in norms:  # same mean, smaller unbiased variance across the copies
            k = want.shape[1] // value.shape[1]
            wide = wide * math.sqrt(k * (value.shape[1] - 1) / (want.shape[1] - 1))
        out[key] = wide.to(want.dtype)
    return out


def needs_widening(target: nn.Module, source: dict[str, torch.Tensor]) -> bool:
    """Whether some parameter of ``target`` is wider than the source's."""
    params = dict(target.named_parameters())
    return any(k in params and v.shape != params[k].shape for k, v in source.items())
