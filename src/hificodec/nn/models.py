"""HiFiC encoder E, beta-conditional generator G, and the conditional patch discriminator D.

Architecture after Mentzer et al. 2020 (HiFiC), with the residual blocks of G replaced by the
beta-conditional blocks of Agustsson et al. 2023 (multi-realism). Sizes are configuration:
``CONFIGS["hific"]`` is the paper's, the others are sized for CPU training and decoding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from hificodec.nn.entropy import (
    EntropyBottleneck,
    GaussianConditional,
    HyperpriorLatentModel,
    resize_registered_buffers,
)
from hificodec.nn.layers import (
    GDN,
    BetaEmbedding,
    ChannelNorm2d,
    ConditionalResidualBlock,
    ResidualBlock,
    RowSplitConv2d,
    conv,
    upconv,
)

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
    # Kernel size of E's strided convolutions and G's upsampling convolutions (HiFiC: 3;
    # Balle's hyperprior codecs: 5, which sees 2-3 coarser pixels per output pixel, not 1-2).
    kernel: int = 3
    # How G reaches RGB: "conv7" (HiFiC: upsample to channels[0] at full resolution, then a 7x7
    # convolution) or "upconv5" (Balle's hyperprior codecs: the last upsampling is a 5x5
    # transposed convolution straight to RGB, so G holds no full-resolution feature maps).
    rgb_layer: str = "conv7"
    # E's layout: "hific" (a 7x7 convolution at full resolution, strided convolutions of
    # ``kernel`` to 1/16, then a 3x3 convolution to the latent) or "balle" (CompressAI's
    # bmshj2018 analysis as it is: four 5x5 stride-2 convolutions with zero padding and
    # CompressAI's GDN between, the last straight to the latent, on [0, 1] pixels; it uses
    # channels[1:4] and holds no full-resolution feature maps).
    encoder: str = "hific"
    # Whether G's trunk blocks scale their residual by a learned per-channel scale that starts
    # at zero (the trunk starts as the identity; ConditionalResidualBlock).
    trunk_layer_scale: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# Architectures by name (a training config's `architecture`; a weights file carries its own
# config, so decoding never needs this table). Tests add tiny ones (tests/conftest.py).
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
}
# Variable-rate versions with three rate levels (lo, mi, hi).
CONFIGS["hific-cpu-vbr"] = replace(CONFIGS["hific-cpu"], rate_levels=3)
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
# hific-cpu-gdn with 5x5 kernels at every stride (ModelConfig.kernel), as bmshj2018 has: 1.9x
# the multiply-adds of E's and G's resampling layers (core pilots, docs/lab-notebook.md).
CONFIGS["hific-cpu-gdn5"] = replace(CONFIGS["hific-cpu-gdn"], kernel=5)
# hific-cpu-gdn5 without G's residual trunk (a pilot of what the trunk costs the core; no beta
# input reaches such a G).
CONFIGS["hific-cpu-gdn5-notrunk"] = replace(CONFIGS["hific-cpu-gdn5"], residual_blocks=0)
# hific-cpu-gdn whose G ends like bmshj2018's synthesis, a 5x5 transposed convolution to RGB
# from 1/2 resolution, with no full-resolution feature maps (the core pilots' bisection found
# G's last stage to be what separates the cores, docs/lab-notebook.md).
CONFIGS["hific-cpu-gdn-rgbup"] = replace(CONFIGS["hific-cpu-gdn"], rgb_layer="upconv5")
# hific-cpu-gdn-rgbup with 128 channels at 1/2, 1/4 and 1/8 resolution: bmshj2018's synthesis
# (N=128) behind the beta-conditional trunk (core pilots, docs/lab-notebook.md).
CONFIGS["hific-cpu-gdn-rgbup-wide"] = replace(CONFIGS["hific-cpu-gdn-rgbup"], channels=(24, 128, 128, 128, 256))
# hific-cpu-gdn-rgbup-wide whose trunk starts as the identity (ModelConfig.trunk_layer_scale):
# G at initialisation is then bmshj2018's synthesis behind one head convolution.
CONFIGS["hific-cpu-gdn-rgbup-wide-ls"] = replace(CONFIGS["hific-cpu-gdn-rgbup-wide"], trunk_layer_scale=True)
# The architecture of hific-cpu2 (issue 42's two-stage model): the core that the pilots found to
# learn as fast as bmshj2018 (docs/lab-notebook.md) -- bmshj2018's analysis as E, and G with
# bmshj2018's synthesis widths and ending behind the beta-conditional trunk -- with three rate
# levels.
CONFIGS["hific-cpu2"] = replace(CONFIGS["hific-cpu-gdn-rgbup-wide"], encoder="balle", rate_levels=3)


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
        self.centred_input = cfg.encoder != "balle"
        if cfg.encoder == "balle":
            from compressai.layers import GDN as CompressAIGDN

            if cfg.encoder_blocks:
                raise ValueError("encoder = 'balle' has no 1/16-resolution features for encoder_blocks")
            layers: list[nn.Module] = []
            for c_in, c_out in zip((3, *ch[1:3]), ch[1:4]):
                layers += [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), CompressAIGDN(c_out)]
            layers.append(nn.Conv2d(ch[3], cfg.latent_channels, 5, stride=2, padding=2))
        elif cfg.encoder == "hific":
            layers = [conv(3, ch[0], 7), *_activation(cfg, ch[0])]
            for c_in, c_out in zip(ch[:-1], ch[1:]):
                layers += [conv(c_in, c_out, cfg.kernel, stride=2), *_activation(cfg, c_out)]
            layers.append(conv(ch[-1], cfg.latent_channels, 3))
        else:
            raise ValueError(f"encoder must be 'hific' or 'balle', not {cfg.encoder!r}")
        self.net = nn.Sequential(*layers)
        self.blocks = nn.Sequential(*(ResidualBlock(ch[-1]) for _ in range(cfg.encoder_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net[:-1](x * 2.0 - 1.0 if self.centred_input else x)  # HiFiC: [0, 1] images -> [-1, 1]
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
            ConditionalResidualBlock(ch[-1], cfg.beta_embed_width, scaled=cfg.trunk_layer_scale)
            for _ in range(cfg.residual_blocks)
        )
        ups: list[nn.Module] = []
        pairs = list(zip(ch[:0:-1], ch[-2::-1]))
        if cfg.rgb_layer == "upconv5":
            for c_in, c_out in pairs[:-1]:
                ups += [upconv(c_in, c_out, cfg.kernel), *_activation(cfg, c_out, inverse=True)]
            ups.append(upconv(ch[1], 3, 5))
        elif cfg.rgb_layer == "conv7":
            for c_in, c_out in pairs:
                ups += [upconv(c_in, c_out, cfg.kernel), *_activation(cfg, c_out, inverse=True)]
            ups.append(conv(ch[0], 3, 7))
        else:
            raise ValueError(f"rgb_layer must be 'conv7' or 'upconv5', not {cfg.rgb_layer!r}")
        self.tail = nn.Sequential(*ups)

    def forward(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.render(self.trunk(y_hat, beta))

    def trunk(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """The part at latent resolution: head and beta-conditional residual blocks (most of
        G's receptive field, ~11 latent pixels, on small maps)."""
        h = self.head(y_hat)
        f_beta = self.beta_embedding(beta.to(h.device))
        skip = h
        for block in self.blocks:
            h = block(h, f_beta.to(h.dtype))
        return h + skip

    def render(self, h: torch.Tensor) -> torch.Tensor:
        """The upsampling path from the trunk's output to pixels (~2 latent pixels of reach, but
        the full-resolution maps that hold most of G's memory)."""
        return (self.tail(h) + 1.0) / 2.0  # [-1, 1] -> [0, 1]

    def use_cpu_inference_forms(self) -> None:
        """Puts the RGB layer in the form oneDNN runs fast (RowSplitConv2d: the same function,
        its weights fixed at this call), for a loaded model that decodes and never trains."""
        if isinstance(self.tail[-1], nn.Conv2d):  # the 7x7 RGB layer (not a transposed one)
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

    @classmethod
    def pad(cls, x: torch.Tensor) -> torch.Tensor:
        """Images padded on the right and bottom to a multiple of ``stride`` (replicate padding
        works for any size, where reflect needs more pixels than the pad; decoders crop it)."""
        height, width = x.shape[-2:]
        return F.pad(x, (0, (-width) % cls.stride, 0, (-height) % cls.stride), mode="replicate")

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

    # -- the pipeline, part by part: training, validation, refinement and the codec all use these
    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """E: the latent y of images ``x`` in [0, 1], before any rate level's gain."""
        return self.encoder(x)

    def quantize(self, y: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
        """y through the rate level's gain, the hyperprior and the inverse gain (training and
        validation): y_hat as G sees it, and the likelihoods of y and z relaxed (for the rate
        loss) and as coded (HyperpriorLatentModel.forward). Runs in fp32."""
        gain, inverse_gain = self.gains(quality.to(y.device))
        y_hat, likelihoods, coded = self.latent_model(y.float() * gain)
        return y_hat * inverse_gain, likelihoods, coded

    def synthesize(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """G(y_hat, beta): images in [0, 1]; the same as ``render(trunk(y_hat, beta))``."""
        return self.generator(y_hat, beta)

    def trunk(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """G's part at latent resolution (most of its reach, little memory)."""
        return self.generator.trunk(y_hat, beta)

    def render(self, h: torch.Tensor) -> torch.Tensor:
        """G's upsampling path from ``trunk``'s output to pixels (little reach, most memory):
        split from ``trunk`` so that large images can tile each part at its own size."""
        return self.generator.render(h)

    def forward(self, x: torch.Tensor, beta: torch.Tensor, quality: torch.Tensor | None = None) -> dict:
        quality = torch.zeros(x.shape[0]) if quality is None else quality
        y_hat, likelihoods, coded = self.quantize(self.analyse(x), quality)
        return {"x_hat": self.synthesize(y_hat, beta), "y_hat": y_hat, "likelihoods": likelihoods,
                "coded_likelihoods": coded}

    # -- coding (one image; the entropy model runs on the CPU, see entropy.py) ------------------
    def compress(self, y: torch.Tensor, quality: float) -> tuple[bytes, bytes]:
        """The range-coded (z, y) strings of latent ``y`` (from ``analyse``) at ``quality``."""
        gain, _ = self.gains(torch.tensor([float(quality)], device=y.device))
        (z_string, y_string), _, _ = self.latent_model.compress(y * gain)
        return z_string, y_string

    def decompress(self, z_string: bytes, y_string: bytes, z_shape: tuple[int, int], quality: float) -> torch.Tensor:
        """G's input y_hat from the strings of ``compress`` (raises ValueError on damaged data)."""
        y_hat = self.latent_model.decompress(z_string, y_string, z_shape)
        _, inverse_gain = self.gains(torch.tensor([float(quality)]))
        return y_hat * inverse_gain

    def rate_bits(self, scaled: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable bits of a gain-scaled latent where ``weight`` is 1, and y's predicted
        means (encoder-side refinement; HyperpriorLatentModel.rate_bits)."""
        return self.latent_model.rate_bits(scaled, weight)

    def prepare_for_inference(self, device: torch.device, channels_last: bool) -> "HiFiC":
        """E and G on ``device`` (in the channels-last layout oneDNN runs fastest, if asked),
        frozen; the entropy model stays on the CPU in its own layout, which is what makes files
        portable between machines (entropy.py)."""
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.encoder.to(device, memory_format=layout)
        self.generator.to(device, memory_format=layout)
        self.requires_grad_(False)
        if channels_last:
            self.generator.use_cpu_inference_forms()
        return self


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
