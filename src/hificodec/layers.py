"""Building blocks shared by the encoder, generator and discriminator."""

from __future__ import annotations

import math

import torch
from torch import nn


class ChannelNorm2d(nn.Module):
    """HiFiC's ChannelNorm: normalise each pixel across channels (not across space).

    Unlike InstanceNorm/BatchNorm it does not depend on image size or batch content, so a
    model trained on 256px crops behaves the same on a full photo.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """'Same' convolution; reflect padding avoids dark borders in reconstructions."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, padding_mode="reflect")


def upconv(in_ch: int, out_ch: int, kernel: int = 3) -> nn.ConvTranspose2d:
    """Exact x2 upsampling transposed convolution."""
    return nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=2, padding=kernel // 2, output_padding=1)


class FourierFeatures(nn.Module):
    """NeRF positional encoding of a scalar: [b, sin(2^k pi b), cos(2^k pi b)] for k < L."""

    def __init__(self, num_frequencies: int = 10, scale: float = 1.0):
        super().__init__()
        self.scale = scale  # maps beta to roughly [0, 1] so the frequencies are meaningful
        self.register_buffer(
            "frequencies", (2.0 ** torch.arange(num_frequencies)) * math.pi, persistent=False
        )
        self.out_features = 1 + 2 * num_frequencies

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        b = beta.reshape(-1, 1).float() * self.scale
        angles = b * self.frequencies
        return torch.cat([b, torch.sin(angles), torch.cos(angles)], dim=1)


class BetaEmbedding(nn.Module):
    """f(beta) = MLP(Fourier(beta)), shared by all conditional residual blocks (FourierCond)."""

    def __init__(self, width: int = 512, num_frequencies: int = 10, beta_max: float = 5.12):
        super().__init__()
        self.fourier = FourierFeatures(num_frequencies, scale=1.0 / beta_max)
        self.mlp = nn.Sequential(
            nn.Linear(self.fourier.out_features, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
        )
        self.out_features = width

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.fourier(beta))


class ConditionalResidualBlock(nn.Module):
    """conv-CN-ReLU-conv-CN with a learned projection of f(beta) added after each conv."""

    def __init__(self, channels: int, embed_features: int):
        super().__init__()
        self.conv1 = conv(channels, channels, 3)
        self.norm1 = ChannelNorm2d(channels)
        self.conv2 = conv(channels, channels, 3)
        self.norm2 = ChannelNorm2d(channels)
        self.proj1 = nn.Linear(embed_features, channels)
        self.proj2 = nn.Linear(embed_features, channels)
        # Start as an unconditional block; the projections learn how beta should shift it.
        for proj in (self.proj1, self.proj2):
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, x: torch.Tensor, f_beta: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.proj1(f_beta)[:, :, None, None]
        h = torch.relu(self.norm1(h))
        h = self.conv2(h) + self.proj2(f_beta)[:, :, None, None]
        return x + self.norm2(h)
