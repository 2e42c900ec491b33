"""Training objectives: rate, the HiFiC rate controller and the non-saturating GAN (LPIPS is in
metrics/quality.py, shared with evaluation).

The generator loss follows the multi-realism paper (Eq. 4) with HiFiC's rate controller:

    L = mse_weight * MSE_255 + lambda' * bpp + beta * (c_p * LPIPS + c_gan * GAN)

with beta drawn per example. lambda' switches between lambda_a (batch bpp above the target)
and lambda_b (below), so a model settles near its target rate without a lambda sweep. A
variable-rate model has one target and one controller state per rate level. Where the
two-level switch is far too coarse (encoder-only training, whose rate-distortion slope is far
below lambda_a), lambda' is instead one value per level, optionally steered smoothly to the
target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def bits_per_pixel(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Per-example bpp (N,) from the entropy model's likelihoods."""
    total = 0.0
    for lik in likelihoods.values():
        total = total + torch.log(lik).flatten(1).sum(dim=1)
    return total / (-math.log(2) * num_pixels)


@dataclass
class RateController:
    """HiFiC's two-level lambda, one controller per rate level of a variable-rate model.

    Each level compares the bpp of its examples with its own target: the batch mean when
    ``ema`` is 0 (HiFiC), or an exponential moving average over batches (a variable-rate batch
    holds only a few examples per level, too few for a steady switch). During warm-up lambda
    is scaled up and the targets relaxed.

    With ``fixed`` (one lambda per level) the switch is off and each level's lambda is its
    own; ``fixed_control`` > 0 then scales them all by one factor, every step, toward the
    rates that meet the targets: log factor = fixed_control * mean over levels of
    log(smoothed bpp / target)."""

    targets: list[float]
    lambda_a: float
    lambda_b: float
    warmup_steps: int = 0
    ema: float = 0.0
    warmup_lambda_factor: float = 2.0
    warmup_target_factor: float = 0.20 / 0.14
    fixed: list[float] | None = None
    fixed_control: float = 0.0

    def __post_init__(self):
        self.targets = [float(t) for t in self.targets]
        self.smoothed: list[float | None] = [None] * len(self.targets)
        if self.fixed is not None:
            self.fixed = [float(v) for v in self.fixed]

    def target(self, step: int, level: int = 0) -> float:
        return self.targets[level] * (self.warmup_target_factor if step < self.warmup_steps else 1.0)

    def weights(self, step: int, bpp: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Per-example lambda for per-example ``bpp`` (N,) at integer rate ``levels`` (N,)."""
        bpp = bpp.detach().float().cpu()
        levels = levels.cpu()
        scale = self.warmup_lambda_factor if step < self.warmup_steps else 1.0
        present = levels.unique().tolist()
        for level in present:
            mean = float(bpp[levels == level].mean())
            previous = self.smoothed[level]
            self.smoothed[level] = mean if previous is None else self.ema * previous + (1 - self.ema) * mean
        if self.fixed is not None and self.fixed_control:
            self._steer_fixed(step)
        out = torch.empty_like(bpp)
        for level in present:
            if self.fixed is None:
                lam = self.lambda_a if self.smoothed[level] > self.target(step, level) else self.lambda_b
            else:
                lam = self.fixed[level]
            out[levels == level] = lam * scale
        return out

    def _steer_fixed(self, step: int) -> None:
        """One common factor for every level's fixed lambda, from the mean log rate/target of the
        levels seen so far. Common, because every level codes the same encoder's output: lambdas
        steered per level pulled apart (6x in a first run) chasing a split of the rate between
        levels that the fixed gains do not allow, and the images degraded."""
        ratios = [math.log(s / self.target(step, level)) for level, s in enumerate(self.smoothed) if s]
        nudge = self.fixed_control * sum(ratios) / len(ratios)
        factor = math.exp(max(-0.05, min(0.05, nudge)))  # at most ~5% a step: one odd batch moves it little
        self.fixed = [value * factor for value in self.fixed]

    def state_dict(self) -> dict:
        return {"smoothed": list(self.smoothed), "fixed": None if self.fixed is None else list(self.fixed)}

    def load_state_dict(self, state: dict) -> None:
        self.smoothed = list(state["smoothed"])
        if state.get("fixed") is not None:  # checkpoints before the steered lambda have none
            self.fixed = list(state["fixed"])



def generator_gan_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -log D(fake), per example."""
    return F.softplus(-fake_logits).flatten(1).mean(dim=1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
