"""Encoder-side latent refinement: a slower encode that codes a better latent for the same decoder.

The encoder E is amortized: one network maps every image to a latent, and for any one image
that latent is not the best the generator could be given. Refinement starts from E's latent
and takes a few Adam steps on that image's own rate-distortion loss, through the frozen
hyperprior and generator, then codes the result as usual. Decoder, file format and weights are
unchanged; only the encode costs more (one generator forward and backward pass per step).

The loss is the beta-0 end of the training loss (losses.py):

    mse_weight * MSE_255(G(y_hat, beta=0)) + rate_weight(quality) * bpp

with y_hat rounded straight-through around the predicted means and the rate taken from the
likelihood of the unrounded latent. Only the low-distortion end is optimized, so the realism
end (beta 2.56) is not tuned to LPIPS, the metric it is judged by; docs/architecture.md has
what each beta gained on Kodak.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from .entropy import HyperpriorLatentModel, round_ste
from .models import HiFiC
from .tiles import tile_spans

MSE_WEIGHT = 0.01  # the training loss's weight on MSE in 0..255 units (configs/hific-cpu-mi.toml)
# Rate weights (per bpp) of the trained rate levels, interpolated in the log domain between
# them: about the slope of the plain encodes' MSE-rate curve at each level on Kodak, so bits and
# MSE are traded at the model's own exchange rate (docs/architecture.md, "Latent refinement").
RATE_WEIGHTS = (2.0, 1.0, 0.7)
# Adam moves every latent by about this much per step, whatever its gradient; larger values
# push latents across rounding boundaries that do not pay (measured in docs/architecture.md).
LEARNING_RATE = 0.01
# Images are refined in windows of at most TILE latent pixels (768 image pixels) plus MARGIN of
# context, which bounds the memory of the backward pass; both are multiples of the hyperprior's
# stride (4) so that each window's side latents line up with the whole image's.
TILE = 48
MARGIN = 8


def rate_weight(quality: float, levels: int) -> float:
    if levels == 1:
        return RATE_WEIGHTS[1]
    position = quality * (len(RATE_WEIGHTS) - 1) / (levels - 1)
    low = min(int(position), len(RATE_WEIGHTS) - 2)
    t = position - low
    return math.exp((1 - t) * math.log(RATE_WEIGHTS[low]) + t * math.log(RATE_WEIGHTS[low + 1]))


def _aligned_spans(length: int) -> list[tuple[int, int, int, int]]:
    step = HyperpriorLatentModel.stride  # side-latent stride in latent pixels
    return [tuple(v * step for v in span) for span in tile_spans(length // step, TILE // step, MARGIN // step)]


def rate_bits(latent_model, scaled: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable bits of a gain-scaled latent (y and z), counted where ``weight`` is 1, and
    the predicted means of y (``latent_model``: a HyperpriorLatentModel)."""
    bottleneck, conditional = latent_model.entropy_bottleneck, latent_model.gaussian_conditional
    z, z_hat, means, scales = latent_model.side_information(scaled)
    channels = z.shape[1]
    # EntropyBottleneck's likelihood wants (channels, 1, values).
    z_likelihood = bottleneck._likelihood(z_hat.permute(1, 0, 2, 3).reshape(channels, 1, -1))[0]
    z_weight = F.max_pool2d(weight[:, :1], latent_model.stride).expand_as(z).permute(1, 0, 2, 3).reshape(channels, 1, -1)
    y_likelihood = conditional.likelihood_lower_bound(conditional._likelihood(scaled, scales, means))
    z_bits = -(torch.log2(bottleneck.likelihood_lower_bound(z_likelihood)) * z_weight).sum()
    return z_bits - (torch.log2(y_likelihood) * weight).sum(), means


def refine_latent(model: HiFiC, x: torch.Tensor, y: torch.Tensor, quality: float, steps: int,
                  height: int, width: int,
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """E's latent ``y`` of the padded image ``x`` (1, 3, H, W) in [0, 1], refined by ``steps``
    Adam steps for ``quality``; ``height`` x ``width`` is the image without its padding, and
    ``memory_format`` the layout the generator's weights are in."""
    s = HiFiC.latent_stride
    gain, inverse_gain = (g.to(x.device) for g in model.gains(torch.tensor([float(quality)])))
    # The coding copy of the entropy model stays on the CPU (entropy.py); this one follows x.
    latent_model = model.latent_model if x.device.type == "cpu" else copy.deepcopy(model.latent_model).to(x.device)
    lam = rate_weight(quality, model.rate_levels)
    beta = torch.zeros(1, device=x.device)
    scaled = (y.float() * gain).detach()
    for wy0, wy1, cy0, cy1 in _aligned_spans(y.shape[-2]):
        for wx0, wx1, cx0, cx1 in _aligned_spans(y.shape[-1]):
            # Later windows see the refined latents of earlier ones as their context.
            window = scaled[..., wy0:wy1, wx0:wx1].clone().requires_grad_(True)
            core = torch.zeros_like(window[:, :1])
            core[..., cy0 - wy0 : cy1 - wy0, cx0 - wx0 : cx1 - wx0] = 1
            # Padding is under one side-latent cell, so every core holds some image pixels.
            top, bottom = cy0 * s, min(cy1 * s, height)
            left, right = cx0 * s, min(cx1 * s, width)
            target = x[..., top:bottom, left:right].float()
            pixels = (bottom - top) * (right - left)
            optimizer = torch.optim.Adam([window], lr=LEARNING_RATE)
            for _ in range(steps):
                bits, means = rate_bits(latent_model, window, core)
                y_hat = round_ste(window - means) + means
                x_hat = model.generator((y_hat * inverse_gain).contiguous(memory_format=memory_format), beta)
                x_hat = x_hat[..., top - wy0 * s : bottom - wy0 * s, left - wx0 * s : right - wx0 * s]
                loss = MSE_WEIGHT * 255.0**2 * F.mse_loss(x_hat.float(), target) + lam * bits / pixels
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                window.grad.mul_(core)  # only the core moves; the margin is context
                optimizer.step()
            scaled[..., cy0:cy1, cx0:cx1] = window.detach()[..., cy0 - wy0 : cy1 - wy0, cx0 - wx0 : cx1 - wx0]
    return scaled / gain
