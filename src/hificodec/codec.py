"""The codec API: RGB pixels <-> .hfc bytes, with the receiver choosing beta.

    codec = Codec.load("hific-cpu-vbr")
    data = codec.encode(rgb8, quality=1.0)    # (H, W, 3) uint8 -> bytes; quality picks the rate
    low_distortion = decode(data, beta=0.0)   # finds the model the file names
    high_realism = decode(data, beta=2.56)

Encoder and generator run on the chosen device; the entropy model always runs on the CPU
(see entropy.py), which is what makes files portable between GPU and CPU machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import bitstream, zoo
from .models import BETA_MAX, HiFiC
from .tiles import tile_spans

DEFAULT_BETA = BETA_MAX  # a generative codec's point is realism; beta=0 is one flag away

# Large images run through E and G in tiles, which bounds memory by the tile size instead of
# the image size. Tiles overlap by more than each part's receptive field, so they match a single
# pass up to float rounding; benchmarks/tiling.py measures the seams and the memory. Units:
# latent pixels (16 image pixels).
# - E: tiles of TILE (1536 px; smaller images in one piece) overlapping by ENCODER_MARGIN (~3).
# - G in two parts (Generator.trunk / synthesize): its trunk at latent resolution holds most of
#   its reach (~11) but little memory, so it runs in large TRUNK_TILE tiles; its upsampling path
#   holds the full-resolution maps but reaches ~2, so it runs in TAIL_TILE tiles with a margin of
#   3. Overlap then adds (1 + 6/64)^2 = 1.2x to the upsampling path alone, where one margin of 16
#   around 96 added (1 + 32/96)^2 = 1.8x to all of G.
TILE = 96
ENCODER_MARGIN = 4
TRUNK_TILE = 128
TRUNK_MARGIN = 12
TAIL_TILE = 64
TAIL_MARGIN = 3


class CodecError(ValueError):
    """A user-facing failure to encode or decode (one-line message)."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise CodecError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return torch.device(device)


def quality_range(model: HiFiC) -> tuple[float, float]:
    return 0.0, float(model.rate_levels - 1)


def default_quality(model: HiFiC) -> float:
    """The middle rate level (mi for a lo/mi/hi model)."""
    return float((model.rate_levels - 1) // 2)


def check_beta(beta: float) -> float:
    if not (0.0 <= beta <= BETA_MAX):  # also rejects NaN
        raise CodecError(f"beta must be in [0, {BETA_MAX}], got {beta}")
    return float(beta)


@dataclass
class Codec:
    info: zoo.ModelInfo
    model: HiFiC
    device: torch.device
    memory_format: torch.memory_format = torch.contiguous_format  # of encoder and generator tensors

    @classmethod
    def load(cls, name: str = zoo.DEFAULT_MODEL, device: str = "auto", weights_dir: Path | None = None,
             expected_digest: str | None = None) -> "Codec":
        return cls.from_info(zoo.find_model(name, weights_dir), device, expected_digest)

    @classmethod
    def from_info(cls, info: zoo.ModelInfo, device: str = "auto", expected_digest: str | None = None,
                  channels_last: bool | None = None) -> "Codec":
        """``channels_last`` (default: on CPU): oneDNN's convolutions are faster on channels-last
        tensors (a Kodak decode 1.2-1.7x; ``benchmarks/decode_speed.py`` measures both). Only the
        encoder and generator change layout; the entropy model's float path (hyperprior scales ->
        CDF indexes), which encoder and decoder must compute identically, is left as it is."""
        model = zoo.load_model(info, expected_digest)
        dev = resolve_device(device)
        if channels_last is None:
            channels_last = dev.type == "cpu"
        layout = torch.channels_last if channels_last else torch.contiguous_format
        model.encoder.to(dev, memory_format=layout)
        model.generator.to(dev, memory_format=layout)
        model.requires_grad_(False)  # nothing is trained here; refinement differentiates w.r.t. the latent only
        if channels_last:
            model.generator.use_cpu_inference_forms()
        return cls(info, model, dev, layout)

    # -- encode -----------------------------------------------------------------------------
    def _to_tensor(self, rgb8: np.ndarray) -> torch.Tensor:
        if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
            raise CodecError("expected an (H, W, 3) uint8 image")
        x = torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def quality_code(self, quality: float | None) -> int:
        """The stored form of a quality (1/256 steps); refuses qualities the model lacks."""
        if quality is None:
            quality = default_quality(self.model)
        low, high = quality_range(self.model)
        if not (low <= quality <= high):  # also rejects NaN
            if low == high:
                raise CodecError(f"model {self.info.name} has a single rate; quality must be 0, got {quality}")
            raise CodecError(f"quality must be in [{low:g}, {high:g}] for model {self.info.name}, got {quality}")
        return int(round(quality * bitstream.QUALITY_SCALE))

    @torch.no_grad()
    def encode(self, rgb8: np.ndarray, quality: float | None = None, refine_steps: int = 0,
               metadata: bitstream.Metadata | None = None) -> bytes:
        """Encodes at ``quality`` (0 .. rate_levels - 1; default the middle level). With
        ``refine_steps``, E's latent is refined for this image first (refine.py): a slower
        encode, better pixels from the same decoder. ``metadata`` (EXIF, XMP, ICC note) is stored
        beside the pixels; none by default."""
        self.quality_code(quality)  # refuse a bad quality before the expensive part
        if refine_steps < 0:
            raise CodecError(f"refine_steps must be >= 0, got {refine_steps}")
        height, width = rgb8.shape[:2]
        y = self.analyse(rgb8)
        if refine_steps:
            y = self.refine(rgb8, y, quality, refine_steps)
        return self.pack(y, width, height, quality, metadata)

    def _padded(self, rgb8: np.ndarray) -> torch.Tensor:
        height, width = rgb8.shape[:2]
        if not (1 <= width <= bitstream.MAX_SIDE and 1 <= height <= bitstream.MAX_SIDE):
            raise CodecError(f"image sides must be 1..{bitstream.MAX_SIDE} pixels, got {width}x{height}")
        x = self._to_tensor(rgb8)
        s = HiFiC.stride
        # Replicate padding works for any size (reflect needs > pad pixels); cropped on decode.
        return F.pad(x, (0, (-width) % s, 0, (-height) % s), mode="replicate")

    @torch.no_grad()
    def analyse(self, rgb8: np.ndarray) -> torch.Tensor:
        """E's latent of an image, before any rate level's gain (the same at every quality)."""
        # The entropy model keeps the standard layout whatever E ran in (see from_info).
        return self._tiled(self.model.encoder, self._padded(rgb8), TILE, ENCODER_MARGIN, HiFiC.latent_stride).contiguous()

    def refine(self, rgb8: np.ndarray, y: torch.Tensor, quality: float | None, steps: int) -> torch.Tensor:
        """``y`` (from ``analyse``) refined for this image at ``quality`` by ``steps`` steps."""
        from .refine import refine_latent  # the encoder's optional slow path

        quality = self.quality_code(quality) / bitstream.QUALITY_SCALE  # what pack will code
        height, width = rgb8.shape[:2]
        with torch.enable_grad():
            y = refine_latent(self.model, self._padded(rgb8), y.to(self.device), quality, steps, height, width,
                              self.memory_format)
        return y.cpu().contiguous()

    @torch.no_grad()
    def pack(self, y: torch.Tensor, width: int, height: int, quality: float | None = None,
             metadata: bitstream.Metadata | None = None) -> bytes:
        """The .hfc file of latent ``y`` (from ``analyse``) at ``quality``."""
        code = self.quality_code(quality)
        gain, _ = self.model.gains(torch.tensor([code / bitstream.QUALITY_SCALE], device=self.device))
        (z_string, y_string), _, _ = self.model.latent_model.compress(y * gain)
        return bitstream.HfcFile(self.info.name, self.info.digest, width, height, z_string, y_string, code,
                                 metadata or bitstream.Metadata()).to_bytes()

    # -- decode -----------------------------------------------------------------------------
    @torch.no_grad()
    def latent(self, hfc: bitstream.HfcFile) -> torch.Tensor:
        """Entropy-decodes the generator's input once; several betas can then be generated from it."""
        self._check_file_model(hfc)
        low, high = quality_range(self.model)
        if not (low <= hfc.quality <= high):
            raise CodecError(f"file has quality {hfc.quality:g}, outside [{low:g}, {high:g}] of model {hfc.model}")
        s = HiFiC.stride
        z_shape = (-(-hfc.height // s), -(-hfc.width // s))
        try:
            y_hat = self.model.latent_model.decompress(hfc.z_string, hfc.y_string, z_shape)
        except (RuntimeError, ValueError, OverflowError) as exc:
            raise CodecError(f"corrupt latent data ({exc})") from None
        _, inverse_gain = self.model.gains(torch.tensor([hfc.quality]))
        return y_hat * inverse_gain

    @torch.no_grad()
    def generate(self, hfc: bitstream.HfcFile, y_hat: torch.Tensor, beta: float) -> np.ndarray:
        """Pixels from a decoded latent, tile by tile for large images (uint8, H x W x 3)."""
        beta_t = torch.tensor([check_beta(beta)], device=self.device)
        generator, s = self.model.generator, HiFiC.latent_stride
        h = self._tiled(lambda window: generator.trunk(window, beta_t), y_hat, TRUNK_TILE, TRUNK_MARGIN)
        out = np.empty((hfc.height, hfc.width, 3), np.uint8)
        for wy0, wy1, cy0, cy1 in tile_spans(h.shape[-2], TAIL_TILE, TAIL_MARGIN):
            for wx0, wx1, cx0, cx1 in tile_spans(h.shape[-1], TAIL_TILE, TAIL_MARGIN):
                top, left = cy0 * s, cx0 * s
                if top >= hfc.height or left >= hfc.width:
                    continue  # a tile entirely in the padding
                x_hat = generator.synthesize(h[..., wy0:wy1, wx0:wx1].contiguous(memory_format=self.memory_format))[0]
                x_hat = x_hat[:, top - wy0 * s : cy1 * s - wy0 * s, left - wx0 * s : cx1 * s - wx0 * s]
                tile = (x_hat.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                bottom, right = min(cy1 * s, hfc.height), min(cx1 * s, hfc.width)
                out[top:bottom, left:right] = tile[: bottom - top, : right - left]
        return out

    def _tiled(self, part, x: torch.Tensor, core: int, margin: int, stride: int = 1) -> torch.Tensor:
        """``part`` (E, or G's trunk) over ``x`` in overlapping windows, each keeping its core, for
        a part whose output is at latent resolution and its input ``stride`` times finer. Spans
        are in latent pixels."""
        x = x.to(self.device)
        rows = tile_spans(x.shape[-2] // stride, core, margin)
        cols = tile_spans(x.shape[-1] // stride, core, margin)
        if len(rows) == len(cols) == 1:
            return part(x.contiguous(memory_format=self.memory_format))
        out = None
        for wy0, wy1, cy0, cy1 in rows:
            for wx0, wx1, cx0, cx1 in cols:
                window = x[..., wy0 * stride : wy1 * stride, wx0 * stride : wx1 * stride]
                result = part(window.contiguous(memory_format=self.memory_format))
                if out is None:
                    out = result.new_empty(1, result.shape[1], x.shape[-2] // stride, x.shape[-1] // stride)
                out[..., cy0:cy1, cx0:cx1] = result[..., cy0 - wy0 : cy1 - wy0, cx0 - wx0 : cx1 - wx0]
        return out

    def decode(self, data: bytes | bitstream.HfcFile, beta: float = DEFAULT_BETA) -> np.ndarray:
        hfc = data if isinstance(data, bitstream.HfcFile) else bitstream.parse(data)
        return self.generate(hfc, self.latent(hfc), beta)

    def _check_file_model(self, hfc: bitstream.HfcFile) -> None:
        if hfc.model != self.info.name or hfc.weights_digest != self.info.digest:
            raise CodecError(
                f"file needs model {hfc.model} ({hfc.weights_digest[:12]}), this codec is "
                f"{self.info.name} ({self.info.digest[:12]})"
            )


class CodecPool:
    """Loads each model at most once for a batch of files that may name different models."""

    def __init__(self, device: str = "auto", weights_dir: Path | None = None):
        self.device = device
        self.weights_dir = weights_dir
        self._codecs: dict[tuple[str, str], Codec] = {}

    def for_file(self, hfc: bitstream.HfcFile) -> Codec:
        key = (hfc.model, hfc.weights_digest)
        if key not in self._codecs:
            try:  # the current weights of the model, or the superseded version the file was made with
                info = zoo.find_weights(hfc.model, hfc.weights_digest, self.weights_dir)
            except zoo.ModelNotFound:
                raise CodecError(f"file needs model {hfc.model!r}, which is not installed") from None
            except zoo.WeightsError as exc:
                raise CodecError(str(exc)) from None
            self._codecs[key] = Codec.from_info(info, self.device, expected_digest=hfc.weights_digest)
        return self._codecs[key]

    def for_model(self, name: str) -> Codec:
        info = zoo.find_model(name, self.weights_dir)
        key = (info.name, info.digest)
        if key not in self._codecs:
            self._codecs[key] = Codec.load(name, self.device, self.weights_dir)
        return self._codecs[key]


def decode(data: bytes, beta: float = DEFAULT_BETA, device: str = "auto", weights_dir: Path | None = None) -> np.ndarray:
    """One-shot decode of .hfc bytes with whatever installed model the file names."""
    hfc = bitstream.parse(data)
    return CodecPool(device, weights_dir).for_file(hfc).decode(hfc, beta)
