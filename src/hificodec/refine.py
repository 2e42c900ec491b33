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

from hificodec.nn.entropy import HyperpriorLatentModel, round_ste
from hificodec.nn.models import HiFiC
from hificodec.tiling import Tile, tiles

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


def windows(height: int, width: int) -> list[Tile]:
    """Windows over a ``height`` x ``width`` latent, in latent pixels, lined up with the side
    latents (z has 1/4 the resolution of y) so that each window's z is the whole image's."""
    step = HyperpriorLatentModel.stride
    return [tile.scaled(step) for tile in tiles(height // step, width // step, TILE // step, MARGIN // step)]


def refine_latent(model: HiFiC, x: torch.Tensor, y: torch.Tensor, quality: float, steps: int,
                  height: int, width: int,
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """E's latent ``y`` of the padded image ``x`` (1, 3, H, W) in [0, 1], refined by ``steps``
    Adam steps for ``quality``; ``height`` x ``width`` is the image without its padding, and
    ``memory_format`` the layout the generator's weights are in."""
    s = HiFiC.latent_stride
    gain, inverse_gain = (g.to(x.device) for g in model.gains(torch.tensor([float(quality)])))
    # The coding copy of the entropy model stays on the CPU (entropy.py); on a GPU a copy follows x.
    rate_bits = model.rate_bits if x.device.type == "cpu" else copy.deepcopy(model.latent_model).to(x.device).rate_bits
    lam = rate_weight(quality, model.rate_levels)
    beta = torch.zeros(1, device=x.device)
    scaled = (y.float() * gain).detach()
    for tile in windows(*y.shape[-2:]):  # later windows see the refined latents of earlier ones
        window = scaled[(..., *tile.window())].clone().requires_grad_(True)
        core = torch.zeros_like(window[:, :1])
        core[(..., *tile.core_in_window())] = 1
        # Padding is under one side-latent cell, so every core holds some image pixels.
        rows, cols = tile.core(s)
        top, bottom = rows.start, min(rows.stop, height)
        left, right = cols.start, min(cols.stop, width)
        target = x[..., top:bottom, left:right].float()
        pixels = (bottom - top) * (right - left)
        origin_y, origin_x = tile.window_rows[0] * s, tile.window_cols[0] * s
        optimizer = torch.optim.Adam([window], lr=LEARNING_RATE)
        for _ in range(steps):
            bits, means = rate_bits(window, core)
            y_hat = round_ste(window - means) + means
            x_hat = model.synthesize((y_hat * inverse_gain).contiguous(memory_format=memory_format), beta)
            x_hat = x_hat[..., top - origin_y : bottom - origin_y, left - origin_x : right - origin_x]
            loss = MSE_WEIGHT * 255.0**2 * F.mse_loss(x_hat.float(), target) + lam * bits / pixels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            window.grad.mul_(core)  # only the core moves; the margin is context
            optimizer.step()
        scaled[(..., *tile.core())] = window.detach()[(..., *tile.core_in_window())]
    return scaled / gain
