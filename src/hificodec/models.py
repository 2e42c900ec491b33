"""HiFiC encoder E, beta-conditional generator G, and the conditional patch discriminator D.

Architecture after Mentzer et al. 2020 (HiFiC), with the residual blocks of G replaced by the
beta-conditional blocks of Agustsson et al. 2023 (multi-realism). Sizes are configuration:
``CONFIGS["hific"]`` is the paper's, the others are sized for CPU training and decoding.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .entropy import EntropyBottleneck, GaussianConditional, HyperpriorLatentModel, resize_registered_buffers
from .layers import GDN, BetaEmbedding, ChannelNorm2d, ConditionalResidualBlock, ResidualBlock, RowSplitConv2d, conv, upconv

BETA_MAX_TRAIN = 5.12  # beta is sampled in [0, 5.12] during training
BETA_MAX = 2.56  # the receiver may choose beta in [0, 2.56]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of one architecture. ``channels`` are the widths from full resolution (index 0)
    down to 1/16 resolution (index 4); G mirrors them."""

    channels: tuple[int, ...] = (60, 120, 240, 480, 960)
    latent_channels: int = 220
    hyper_channels: int = 320
    residual_blocks: int = 9
    beta_embed_width: int = 512
    disc_channels: tuple[int, ...] = (64, 128, 256, 512)
    disc_latent_channels: int = 12
    # >1: one variable-rate model. Each rate level has learned per-channel gains on y (and
    # inverse gains before G), as in Cui et al. 2021 "asymmetric gained" VAEs; fractional
    # qualities interpolate the gains geometrically between neighbouring levels.
    rate_levels: int = 1
    # Residual blocks in E at 1/16 resolution, before the latent layer (HiFiC has none). The
    # decoder does not see them: files and G are the same with or without.
    encoder_blocks: int = 0
    # "channel": HiFiC's ChannelNorm + ReLU after each convolution of E and of G's upsampling,
    # and on G's input. "gdn": GDN in E and inverse GDN in G's upsampling (as in Ballé's
    # hyperprior codecs) and no normalisation of G's input, which keeps the latent's amplitude.
    norm: str = "channel"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


CONFIGS: dict[str, ModelConfig] = {
    # The paper's sizes (~180M parameters with D): builds and runs, far too slow to train here.
    "hific": ModelConfig(),
    # What the shipped weights use: see docs/architecture.md for the measurements behind it.
    "hific-cpu": ModelConfig(
        channels=(24, 48, 96, 192, 256),
        latent_channels=192,
        hyper_channels=128,
        residual_blocks=5,
        beta_embed_width=256,
        disc_channels=(32, 64, 128, 256),
    ),
    # Tiny, for tests only.
    "tiny": ModelConfig(
        channels=(4, 8, 8, 16, 16),
        latent_channels=8,
        hyper_channels=8,
        residual_blocks=1,
        beta_embed_width=16,
        disc_channels=(4, 8, 8, 8),
        disc_latent_channels=2,
    ),
}
# Variable-rate versions with three rate levels (lo, mi, hi).
CONFIGS["hific-cpu-vbr"] = replace(CONFIGS["hific-cpu"], rate_levels=3)
CONFIGS["tiny-vbr"] = replace(CONFIGS["tiny"], rate_levels=3)
# hific-cpu-vbr with twice the channels at full resolution (the generator's last upsampling and
# the encoder's first layer): started from hific-cpu-vbr's weights by widen.py; what the shipped
# hific-cpu-vbr weights use since phases H and I. 1.14x the training step time (docs/training.md).
CONFIGS["hific-cpu-vbr-wide"] = replace(CONFIGS["hific-cpu-vbr"], channels=(48, 48, 96, 192, 256))
# hific-cpu-vbr-wide with twice the channels at 1/2, 1/4 and 1/8 resolution (the upsampling path
# where texture is drawn), started from phase T's weights by widen.py. No shipped weights use it:
# phases V and W (12000 steps) measured as phase T does (docs/lab-notebook.md). 1.12x the training
# step, 1.8x the generator's time on a Kodak-size latent.
CONFIGS["hific-cpu-vbr-wide2"] = replace(CONFIGS["hific-cpu-vbr"], channels=(48, 96, 192, 384, 256))
# hific-cpu-vbr-wide with three residual blocks in E at 1/16 resolution: a stronger encoder for
# the same decoder (latent refinement showed G can decode better latents than E finds). Started
# from hific-cpu-vbr-wide's weights, the new blocks as the identity (docs/lab-notebook.md).
CONFIGS["hific-cpu-vbr-wide-e3"] = replace(CONFIGS["hific-cpu-vbr-wide"], encoder_blocks=3)
# hific-cpu with GDN in place of ChannelNorm + ReLU (ModelConfig.norm): the core pilots
# (docs/lab-notebook.md) compare how fast each learns rate + MSE.
CONFIGS["hific-cpu-gdn"] = replace(CONFIGS["hific-cpu"], norm="gdn")
# hific-cpu-gdn with 128 channels at 1/2, 1/4 and 1/8 resolution, as wide there as CompressAI's
# bmshj2018 (N=128), whose synthesis spends most of its work at 1/2 resolution: 1.26x the
# generator's multiply-adds per pixel (core pilots, docs/lab-notebook.md).
CONFIGS["hific-cpu-gdn-wide"] = replace(CONFIGS["hific-cpu-gdn"], channels=(24, 128, 128, 128, 256))
CONFIGS["tiny-gdn"] = replace(CONFIGS["tiny"], norm="gdn")
# tiny-vbr with twice the channels at full and half resolution: tests of widen.py.
CONFIGS["tiny-vbr-wide"] = replace(CONFIGS["tiny-vbr"], channels=(8, 16, 8, 16, 16))
# tiny-vbr with two encoder blocks: tests of growing the encoder.
CONFIGS["tiny-vbr-e2"] = replace(CONFIGS["tiny-vbr"], encoder_blocks=2)


def _activation(cfg: ModelConfig, channels: int, inverse: bool = False) -> list[nn.Module]:
    """What follows each convolution of E and of G's upsampling path (ModelConfig.norm)."""
    if cfg.norm == "gdn":
        return [GDN(channels, inverse=inverse)]
    if cfg.norm != "channel":
        raise ValueError(f"norm must be 'channel' or 'gdn', not {cfg.norm!r}")
    return [ChannelNorm2d(channels), nn.ReLU(inplace=True)]


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [conv(3, ch[0], 7), *_activation(cfg, ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [conv(c_in, c_out, 3, stride=2), *_activation(cfg, c_out)]
        layers.append(conv(ch[-1], cfg.latent_channels, 3))
        self.net = nn.Sequential(*layers)
        self.blocks = nn.Sequential(*(ResidualBlock(ch[-1]) for _ in range(cfg.encoder_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net[:-1](x * 2.0 - 1.0)  # [0, 1] images -> [-1, 1]
        return self.net[-1](self.blocks(h))  # blocks (if any) before the latent layer


class Generator(nn.Module):
    """G(y_hat, beta): one decoder for every realism weight beta."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.channels
        if cfg.norm == "gdn":
            self.head = nn.Sequential(conv(cfg.latent_channels, ch[-1], 3))
        else:
            self.head = nn.Sequential(
                ChannelNorm2d(cfg.latent_channels), conv(cfg.latent_channels, ch[-1], 3), ChannelNorm2d(ch[-1])
            )
        self.beta_embedding = BetaEmbedding(cfg.beta_embed_width, beta_max=BETA_MAX_TRAIN)
        self.blocks = nn.ModuleList(
            ConditionalResidualBlock(ch[-1], cfg.beta_embed_width) for _ in range(cfg.residual_blocks)
        )
        ups: list[nn.Module] = []
        for c_in, c_out in zip(ch[:0:-1], ch[-2::-1]):
            ups += [upconv(c_in, c_out), *_activation(cfg, c_out, inverse=True)]
        ups.append(conv(ch[0], 3, 7))
        self.tail = nn.Sequential(*ups)

    def forward(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.trunk(y_hat, beta))

    def trunk(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """The part at latent resolution: head and beta-conditional residual blocks (most of
        G's receptive field, ~11 latent pixels, on small maps)."""
        h = self.head(y_hat)
        f_beta = self.beta_embedding(beta.to(h.device))
        skip = h
        for block in self.blocks:
            h = block(h, f_beta.to(h.dtype))
        return h + skip

    def synthesize(self, h: torch.Tensor) -> torch.Tensor:
        """The upsampling path from the trunk's output to pixels (~2 latent pixels of reach, but
        the full-resolution maps that hold most of G's memory)."""
        return (self.tail(h) + 1.0) / 2.0  # [-1, 1] -> [0, 1]

    def use_cpu_inference_forms(self) -> None:
        """Puts the RGB layer in the form oneDNN runs fast (RowSplitConv2d: the same function,
        its weights fixed at this call), for a loaded model that decodes and never trains."""
        self.tail[-1] = RowSplitConv2d(self.tail[-1])


class HiFiC(nn.Module):
    """Encoder + hyperprior + generator. ``stride`` is what input sizes must be padded to."""

    latent_stride = 16  # image pixels per latent (y) pixel
    stride = latent_stride * HyperpriorLatentModel.stride  # image pixels per side-latent (z) pixel

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.latent_model = HyperpriorLatentModel(cfg.latent_channels, cfg.hyper_channels)
        self.generator = Generator(cfg)
        if cfg.rate_levels > 1:
            # log gains; initialised to spread the levels around the middle one (level
            # spacing x1.6 in quantiser step), which training then adjusts.
            spread = torch.linspace(-1.0, 1.0, cfg.rate_levels).mul(math.log(1.6) * (cfg.rate_levels - 1) / 2)
            self.log_gain = nn.Parameter(spread[:, None].repeat(1, cfg.latent_channels))
            self.log_inverse_gain = nn.Parameter(-spread[:, None].repeat(1, cfg.latent_channels))

    @property
    def rate_levels(self) -> int:
        return self.config.rate_levels

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (N, C, 1, 1) gain and inverse gain for qualities in [0, rate_levels - 1]
        (integers are the trained levels; fractions interpolate in the log domain)."""
        quality = quality.float().reshape(-1)
        if self.rate_levels == 1:
            ones = torch.ones(quality.numel(), self.config.latent_channels, 1, 1, device=quality.device)
            return ones, ones
        return (interpolate_levels(self.log_gain, quality).exp()[:, :, None, None],
                interpolate_levels(self.log_inverse_gain, quality).exp()[:, :, None, None])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for name, module in self.named_modules():
            if isinstance(module, (EntropyBottleneck, GaussianConditional)):
                buffers = ["_quantized_cdf", "_offset", "_cdf_length"]
                if isinstance(module, GaussianConditional):
                    buffers.append("scale_table")
                present = [b for b in buffers if f"{name}.{b}" in state_dict]
                resize_registered_buffers(module, name, present, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor, beta: torch.Tensor, quality: torch.Tensor | None = None) -> dict:
        quality = torch.zeros(x.shape[0]) if quality is None else quality
        gain, inverse_gain = self.gains(quality.to(x.device))
        y = self.encoder(x)
        y_hat, likelihoods, coded = self.latent_model(y.float() * gain)
        x_hat = self.generator(y_hat * inverse_gain, beta)
        return {"x_hat": x_hat, "y_hat": y_hat, "likelihoods": likelihoods, "coded_likelihoods": coded}


class Discriminator(nn.Module):
    """Conditional patch discriminator: sees the image and (upsampled) y_hat; spectral norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        lc = cfg.disc_latent_channels
        self.latent_proj = nn.Sequential(
            spectral_norm(nn.Conv2d(cfg.latent_channels, lc, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=16, mode="nearest"),
        )
        layers: list[nn.Module] = []
        c_in = 3 + lc
        for i, c_out in enumerate(cfg.disc_channels):
            stride = 2 if i < len(cfg.disc_channels) - 1 else 1
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=stride, padding=2)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        layers.append(spectral_norm(nn.Conv2d(c_in, 1, 4, padding=2)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        cond = self.latent_proj(y_hat)
        return self.net(torch.cat([image * 2.0 - 1.0, cond], dim=1))  # logits per patch


def interpolate_levels(table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """(N, C) rows of a per-level (levels, C) log-gain table at qualities in [0, levels - 1]:
    the trained levels at integers, linear in between (so gains are geometric)."""
    quality = quality.float().reshape(-1)
    q = quality.clamp(0, table.shape[0] - 1)
    low = q.floor().clamp(max=table.shape[0] - 2).long()
    t = (q - low)[:, None]
    table = table.to(quality.device)
    return (1 - t) * table[low] + t * table[low + 1]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
