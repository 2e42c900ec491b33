"""Mean-scale hyperprior on CompressAI's EntropyBottleneck and GaussianConditional.

Bit-exactness rule: everything that indexes the range coder (the CDF tables and the Gaussian
scale indexes) must be computed identically by every encoder and decoder. So

* the CDF tables are computed once, at export, and stored in the weights file (loading never
  calls ``update()`` again);
* the hyper-synthesis that predicts means and scales always runs on the CPU in float64, and
  its outputs are rounded to a 2^-8 grid before use. The residual float64 differences between
  machines or thread counts (~1e-15) would have to land exactly on a grid boundary to change
  anything, which makes a file encoded on a GPU decode on any CPU.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import sys
import types
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from hificodec.tiling import tiles


def _register_compressai_lazily() -> None:
    """CompressAI's package ``__init__`` imports all of CompressAI: its point-cloud datasets pull
    in torch_geometric and with it torch._dynamo, its zoo torchvision. That was 6 s of a 12 s
    ``hfc decode`` on a 2-core AVX2 CPU, for modules a codec never uses. So unless compressai is
    already imported, its package is registered without running ``__init__``, with the two
    functions its entropy models ask the package for. Submodules import as usual, and anything
    else asked of the package runs the real ``__init__`` first."""
    if "compressai" in sys.modules:
        return
    spec = importlib.util.find_spec("compressai")
    package = importlib.util.module_from_spec(spec)

    def complete(name: str):
        if name.startswith("__"):  # probes such as inspect's for __wrapped__
            raise AttributeError(name)
        del package.__getattr__
        spec.loader.exec_module(package)  # the real __init__, in the same module object
        return getattr(package, name)

    package.available_entropy_coders = lambda: ["ans"]
    package.get_entropy_coder = lambda: "ans"
    package.__getattr__ = complete
    sys.modules["compressai"] = package


@contextlib.contextmanager
def _scipy_stats_deferred():
    """CompressAI's entropy models import scipy.stats (about 1 s) for one call, the normal
    quantile in GaussianConditional.update(), which builds CDF tables at export and never runs
    when coding. While they are imported, an empty placeholder stands in for scipy.stats; it is
    removed again, so the real module loads on first use (scipy's package __getattr__ imports
    its submodules on demand)."""
    if "scipy.stats" in sys.modules or importlib.util.find_spec("scipy") is None:
        yield
        return
    import scipy  # noqa: F401  (the package alone is cheap)

    sys.modules["scipy.stats"] = types.ModuleType("scipy.stats")
    try:
        yield
    finally:
        del sys.modules["scipy.stats"]


_register_compressai_lazily()
with warnings.catch_warnings(), _scipy_stats_deferred():
    warnings.simplefilter("ignore", FutureWarning)  # compressai's use of torch.jit.script
    import compressai.ans  # noqa: F401  (so the entropy models' `from compressai import ans` finds it)
    from compressai.entropy_models import EntropyBottleneck
    from compressai.entropy_models import GaussianConditional as _CompressAIGaussianConditional

# 64 log-spaced scales over [0.11, 256], as in HiFiC's reference implementation.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
PARAM_GRID = 256.0  # means and scales are rounded to multiples of 1/PARAM_GRID
# The hyper-synthesis runs in tiles of PARAM_TILE side latents (1024 image pixels; an image up to
# 1024 px a side, Kodak's included, in one) with PARAM_MARGIN of context: its reach is under 3.
PARAM_TILE, PARAM_MARGIN = 16, 3
# Largest quantised value a file may hold. Real latents stay within a few hundred; forged
# data can decode to values near 2^31, which CompressAI's encoder (used to verify a decode)
# would loop on forever.
MAX_SYMBOL = 2**15


def scale_table() -> list[float]:
    return torch.exp(
        torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS, dtype=torch.float64)
    ).tolist()


def safe_rans_input(string: bytes, symbols: int) -> bytes:
    """Pads a range-coded string so CompressAI's rANS decoder cannot read past its end.

    The decoder does no bounds checks: on a hostile string it keeps renormalising from memory
    after the buffer and segfaults. Each decoded symbol reads at most one 32-bit word, and the
    escape ("bypass") path at most 15 words per word of input (4-bit chunks of value 15 extend
    the escape length), so this many zero bytes keep every read inside the buffer. Trailing
    zeros are never reached when decoding a valid string, so decoding is unchanged."""
    return string + bytes(4 * symbols + 16 * len(string) + 64)


def resize_registered_buffers(module: nn.Module, prefix: str, names: list[str], state_dict: dict) -> None:
    """CompressAI's CDF buffers have data-dependent sizes: give them the stored sizes so that
    ``load_state_dict`` can copy into them."""
    for name in names:
        getattr(module, name).resize_(state_dict[f"{prefix}.{name}"].shape)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _hyper_synthesis(latent_channels: int, hyper_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(hyper_channels, hyper_channels, 5, stride=2, padding=2, output_padding=1),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(hyper_channels, hyper_channels, 5, stride=2, padding=2, output_padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hyper_channels, latent_channels, 3, padding=1),
    )


class GaussianConditional(_CompressAIGaussianConditional):
    """CompressAI's GaussianConditional with a faster ``build_indexes``, which picks each
    element's CDF table from its scale. CompressAI's compares the whole scale map with each of
    the 63 table entries in turn (63 passes over ~300k values for a Kodak image); a binary
    search gives the same index, the number of entries below the scale, in one pass. Same
    float32 comparisons, so the same indexes, bit for bit (tests/test_bitstream.py)."""

    def build_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        scales = self.lower_bound_scale(scales)
        return torch.searchsorted(self.scale_table[:-1].to(scales.dtype), scales.contiguous(), out_int32=True)

    # CompressAI hands the range coder the whole latent as Python lists of ints (symbols, CDF
    # indexes, decoded values): for a 24 MP photo 18M elements each, hundreds of MB at a decode's
    # peak. Its coder takes the same stream in pieces (BufferedRansEncoder buffers the symbols and
    # writes the stream at flush; RansDecoder.decode_stream goes on where its last call stopped),
    # so the lists are cut into CHUNK elements: the same bytes and values, less memory.
    CHUNK = 1 << 20

    def _tables(self) -> tuple[list, list, list]:
        self._check_cdf_size()
        self._check_cdf_length()
        self._check_offsets_size()
        return (self._quantized_cdf.tolist(), self._cdf_length.reshape(-1).int().tolist(),
                self._offset.reshape(-1).int().tolist())

    def compress(self, inputs: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor | None = None) -> list[bytes]:
        """CompressAI's ``compress``, chunked (the same strings, tests/test_bitstream.py)."""
        from compressai.ans import BufferedRansEncoder

        if inputs.dim() < 2 or inputs.size() != indexes.size():
            raise ValueError("inputs and indexes must have the same size, with at least 2 dimensions")
        symbols = self.quantize(inputs, "symbols", means)
        cdfs, lengths, offsets = self._tables()
        strings = []
        for i in range(symbols.size(0)):
            flat_symbols, flat_indexes = symbols[i].reshape(-1).int(), indexes[i].reshape(-1).int()
            encoder = BufferedRansEncoder()
            for start in range(0, flat_symbols.numel(), self.CHUNK):
                piece = slice(start, start + self.CHUNK)
                encoder.encode_with_indexes(flat_symbols[piece].tolist(), flat_indexes[piece].tolist(),
                                            cdfs, lengths, offsets)
            strings.append(encoder.flush())
        return strings

    def decompress(self, strings: list[bytes], indexes: torch.Tensor, dtype: torch.dtype = torch.float,
                   means: torch.Tensor | None = None) -> torch.Tensor:
        """CompressAI's ``decompress``, chunked (the same values)."""
        from compressai.ans import RansDecoder

        if not isinstance(strings, (tuple, list)) or len(strings) != indexes.size(0) or indexes.dim() < 2:
            raise ValueError("one string per batch element, with indexes of at least 2 dimensions")
        if means is not None and means.size() != indexes.size():
            raise ValueError("means must have the size of the indexes")
        cdfs, lengths, offsets = self._tables()
        outputs = self._quantized_cdf.new_empty(indexes.size())
        for i, string in enumerate(strings):
            flat_indexes, flat_out = indexes[i].reshape(-1).int(), outputs[i].view(-1)
            decoder = RansDecoder()
            decoder.set_stream(string)
            for start in range(0, flat_indexes.numel(), self.CHUNK):
                piece = slice(start, start + self.CHUNK)
                values = decoder.decode_stream(flat_indexes[piece].tolist(), cdfs, lengths, offsets)
                flat_out[piece] = torch.tensor(values, dtype=outputs.dtype)
        return self.dequantize(outputs, means, dtype)


class HyperpriorLatentModel(nn.Module):
    """Entropy model for the latent y: z = h_a(y) is coded with a factorized prior, and
    separate synthesis branches predict the mean and scale of each element of y from z."""

    stride = 4  # z has 1/4 the resolution of y

    def __init__(self, latent_channels: int, hyper_channels: int):
        super().__init__()
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(latent_channels, hyper_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hyper_channels, hyper_channels, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(hyper_channels, hyper_channels, 5, stride=2, padding=2),
        )
        self.mean_synthesis = _hyper_synthesis(latent_channels, hyper_channels)
        self.scale_synthesis = _hyper_synthesis(latent_channels, hyper_channels)
        self.entropy_bottleneck = EntropyBottleneck(hyper_channels)
        self.gaussian_conditional = GaussianConditional(scale_table(), scale_bound=SCALES_MIN)
        self.latent_channels = latent_channels

    # -- training -------------------------------------------------------------------------
    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Returns y_hat (y rounded around its predicted mean, straight-through), the
        likelihoods of y and z under additive-noise relaxation in training (differentiable,
        for the rate loss), and the likelihoods of the rounded values the coder will actually
        code (no gradient; what the rate controller steers, because at low rates the noise
        relaxation overstates the real rate by half or more)."""
        z, z_hat, means, scales = self.side_information(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = round_ste(y - means) + means
        with torch.no_grad():
            _, z_coded = self.entropy_bottleneck(z, training=False)
            y_coded = self.gaussian_conditional._likelihood(y_hat, scales, means)
            y_coded = self.gaussian_conditional.likelihood_lower_bound(y_coded)
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}, {"y": y_coded, "z": z_coded}

    def side_information(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z = h_a(y), z rounded straight-through around the prior's medians, and the means and
        scales of y predicted from it (differentiable; training and encoder-side refinement)."""
        z = self.hyper_analysis(y)
        medians = self.entropy_bottleneck._get_medians()
        z_hat = round_ste(z - medians) + medians
        return z, z_hat, self.mean_synthesis(z_hat), self.scale_synthesis(z_hat)

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def rate_bits(self, scaled: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable bits of a latent (y and z, both rounded straight-through as the coder
        will round them), counted where ``weight`` (N, 1, H, W) is 1, and the predicted means of
        y: the rate term of encoder-side refinement (refine.py)."""
        bottleneck, conditional = self.entropy_bottleneck, self.gaussian_conditional
        z, z_hat, means, scales = self.side_information(scaled)
        channels = z.shape[1]
        # EntropyBottleneck's likelihood wants (channels, 1, values).
        z_likelihood = bottleneck._likelihood(z_hat.permute(1, 0, 2, 3).reshape(channels, 1, -1))[0]
        z_weight = F.max_pool2d(weight[:, :1], self.stride).expand_as(z).permute(1, 0, 2, 3).reshape(channels, 1, -1)
        y_likelihood = conditional.likelihood_lower_bound(conditional._likelihood(scaled, scales, means))
        z_bits = -(torch.log2(bottleneck.likelihood_lower_bound(z_likelihood)) * z_weight).sum()
        return z_bits - (torch.log2(y_likelihood) * weight).sum(), means

    # -- coding ---------------------------------------------------------------------------
    @torch.no_grad()
    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scales for y from z_hat, computed the same way on every machine."""
        z64 = z_hat.detach().to("cpu", torch.float64)
        grid = tiles(*z64.shape[-2:], PARAM_TILE, PARAM_MARGIN)
        outputs = []
        for synthesis in (self.mean_synthesis, self.scale_synthesis):
            synthesis = copy.deepcopy(synthesis).to("cpu", torch.float64)
            if len(grid) == 1:
                out = synthesis(z64)
            else:
                # float64 convolutions run through im2col on the CPU: for a whole 24 MP photo
                # that buffer alone is ~0.9 GB. Large latents go in tiles (the same values up to
                # float64 rounding, ~1e-16, which the grid absorbs as it does other BLAS's).
                out = z64.new_empty(1, self.latent_channels, *(n * self.stride for n in z64.shape[-2:]))
                for tile in grid:
                    window = synthesis(z64[(..., *tile.window())])
                    out[(..., *tile.core(self.stride))] = window[(..., *tile.core_in_window(self.stride))]
            # in place: round(x * grid) / grid, one float64 map at a time
            outputs.append(out.mul_(PARAM_GRID).round_().div_(PARAM_GRID).float())
            del out
        means, scales = outputs
        return means, scales

    @torch.no_grad()
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], tuple[int, int], torch.Tensor]:
        """Codes one latent (batch of 1; this module must live on the CPU). Returns
        [z_string, y_string], the shape of z and the y_hat the decoder will see."""
        y = y.detach().float().cpu()
        if not torch.isfinite(y).all():
            raise ValueError("the encoder produced non-finite latents")
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.entropy_parameters(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.quantize(y, "dequantize", means)
        return [z_strings[0], y_strings[0]], tuple(z.shape[-2:]), y_hat

    @torch.no_grad()
    def decompress(self, z_string: bytes, y_string: bytes, z_shape: tuple[int, int]) -> torch.Tensor:
        z_symbols = self.entropy_bottleneck.channels * z_shape[0] * z_shape[1]
        y_symbols = self.latent_channels * z_shape[0] * z_shape[1] * self.stride**2
        z_hat = self.entropy_bottleneck.decompress([safe_rans_input(z_string, z_symbols)], z_shape)
        # A range decoder accepts any bytes; only the encoder's own output re-encodes to the
        # same string. Checking that refuses damaged or forged data before the expensive
        # generator runs (and bounds the work a small file claiming a large image can cause).
        medians = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        if (z_hat - medians).abs().amax() > MAX_SYMBOL or self.entropy_bottleneck.compress(z_hat)[0] != z_string:
            raise ValueError("hyper-latent data does not re-encode to itself")
        means, scales = self.entropy_parameters(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress([safe_rans_input(y_string, y_symbols)], indexes, means=means)
        if (y_hat - means).abs().amax() > MAX_SYMBOL or \
                self.gaussian_conditional.compress(y_hat, indexes, means=means)[0] != y_string:
            raise ValueError("latent data does not re-encode to itself")
        return y_hat

    def settle_quantiles(self, steps: int = 3000) -> float:
        """Fits the factorized prior's quantiles (which bound its CDF table) to its density.

        The aux loss depends on the density model alone, not on data, so it can be solved to
        convergence at export in a second instead of trailing behind during a short training
        run. Returns the final aux loss."""
        quantiles = self.entropy_bottleneck.quantiles
        with torch.enable_grad():
            quantiles.requires_grad_(True)
            opt = torch.optim.Adam([quantiles], lr=0.5)
            decay = torch.optim.lr_scheduler.ExponentialLR(opt, 0.998)
            for _ in range(steps):
                loss = self.aux_loss()
                opt.zero_grad()
                loss.backward()
                opt.step()
                decay.step()
        return float(self.aux_loss().detach())

    def update_tables(self) -> None:
        """Settles the quantiles and recomputes the CDF tables (before export)."""
        self.settle_quantiles()
        self.entropy_bottleneck.update(force=True)
        self.gaussian_conditional.update_scale_table(scale_table(), force=True)
