"""Building blocks shared by the encoder, generator and discriminator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
        if x.requires_grad or not x.is_contiguous(memory_format=torch.channels_last):
            mean = x.mean(dim=1, keepdim=True)
            var = x.var(dim=1, keepdim=True, unbiased=True)
            return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        # Inference on channels-last tensors (the codec on CPU): each pixel's channels are
        # contiguous, so this is LayerNorm over the last axis of the NHWC view, one fused kernel
        # instead of five passes over the map (5x faster on a full-resolution Kodak map). LayerNorm
        # divides the variance by C, not C - 1: eps and the weight are rescaled to match.
        channels = x.shape[1]
        ratio = (channels - 1) / channels
        weight = self.weight.reshape(-1) * math.sqrt(ratio)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (channels,), weight, self.bias.reshape(-1), self.eps * ratio)
        return y.permute(0, 3, 1, 2)


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
    """conv-CN-ReLU-conv-CN with a learned projection of f(beta) added after each conv.

    ``scaled``: the residual is multiplied by a per-channel scale that starts at zero
    (LayerScale, as ResidualBlock), so a new trunk starts as the identity instead of adding five
    unit-variance residuals to the head's output."""

    def __init__(self, channels: int, embed_features: int, scaled: bool = False):
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
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1)) if scaled else None

    def forward(self, x: torch.Tensor, f_beta: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.proj1(f_beta)[:, :, None, None]
        h = torch.relu(self.norm1(h))
        h = self.norm2(self.conv2(h) + self.proj2(f_beta)[:, :, None, None])
        return x + (h if self.scale is None else self.scale * h)


class ResidualBlock(nn.Module):
    """x + s * conv(ReLU(CN(conv(ReLU(CN(x)))))): extra depth for the encoder at 1/16 resolution.
    The per-channel scale s starts at zero (LayerScale), so a new block is the identity: an
    encoder given more blocks computes what it did before, and training continues it from its
    weights. (A zero-initialised last convolution would too, but Adam then moves all its weights
    at once and wrecked the latents within 20 steps: docs/architecture.md.)"""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = ChannelNorm2d(channels)
        self.conv1 = conv(channels, channels, 3)
        self.norm2 = ChannelNorm2d(channels)
        self.conv2 = conv(channels, channels, 3)
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(self.norm1(x)))
        return x + self.scale * self.conv2(torch.relu(self.norm2(h)))


class RowSplitConv2d(nn.Module):
    """Inference form of a reflect-padded k x k convolution with few outputs (the generator's
    RGB layer), same result up to float rounding. oneDNN computes output channels in blocks of
    8 (AVX2), so 3 outputs leave most of each block idle: the RGB layer alone took a quarter of
    the generator's time on an AVX2 CPU. Here one convolution computes all k row kernels (1 x k,
    k * 3 outputs, padded to a multiple of 8) and the k row results are added, each shifted by
    its row: 1.8x faster there (docs/architecture.md)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        out_ch, in_ch, k, k_w = conv.weight.shape
        if k != k_w or conv.stride != (1, 1) or conv.padding != (k // 2, k // 2) or conv.groups != 1:
            raise ValueError("RowSplitConv2d takes a square, stride-1, 'same' convolution")
        self.kernel, self.out_channels = k, out_ch
        self.padding_mode = conv.padding_mode if conv.padding_mode != "zeros" else "constant"
        rows = conv.weight.detach().permute(2, 0, 1, 3).reshape(k * out_ch, in_ch, 1, k)  # [row, out]
        rows = F.pad(rows, (0, 0, 0, 0, 0, 0, 0, -(k * out_ch) % 8))
        self.register_buffer("row_weight", rows.contiguous(memory_format=torch.channels_last))
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(out_ch)
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad, out_ch = self.kernel // 2, self.out_channels
        x = F.pad(x, (pad, pad, pad, pad), mode=self.padding_mode)
        rows = F.conv2d(x, self.row_weight).permute(0, 2, 3, 1)  # N, H + 2 pad, W, channels
        height = rows.shape[1] - 2 * pad
        out = rows[:, :height, :, :out_ch] + self.bias
        for r in range(1, self.kernel):
            out += rows[:, r : r + height, :, r * out_ch : (r + 1) * out_ch]
        return out.permute(0, 3, 1, 2)


class _NonNegative(torch.autograd.Function):
    """max(x, 0) whose gradient still reaches entries held at 0 when it would raise them (else
    a GDN weight that hits 0 could never come back)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= 0) | (grad < 0)).to(grad.dtype)


class GDN(nn.Module):
    """Generalized divisive normalization in its simplified form (Johnston et al. 2019):
    y_i = x_i / (beta_i + sum_j gamma_ij |x_j|), or x_i * (...) when ``inverse`` (IGDN, for
    synthesis). The normalisation of Ballé's hyperprior codecs: unlike ChannelNorm it keeps each
    pixel's amplitude, which carries contrast, and it trained MSE codecs faster here
    (docs/lab-notebook.md, core pilots)."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = _NonNegative.apply(self.gamma)[:, :, None, None].to(x.dtype)
        beta = _NonNegative.apply(self.beta).to(x.dtype) + 1e-6
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm
