"""The codec API: RGB pixels <-> .hfc bytes, with the receiver choosing beta.

    codec = Codec.load("hific-cpu-vbr")
    data = codec.encode(rgb8, quality=1.0)    # (H, W, 3) uint8 -> bytes; quality picks the rate
    low_distortion = decode(data, beta=0.0)   # finds the model the file names
    high_realism = decode(data, beta=2.56)

Encoder and generator run on the chosen device; the entropy model always runs on the CPU
(see entropy.py), which is what makes files portable between GPU and CPU machines.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hificodec import zoo
from hificodec.format import bitstream
from hificodec.imaging.tensors import to_rgb8, to_tensor
from hificodec.nn.models import BETA_MAX, HiFiC
from hificodec.runtime import resolve_runtime
from hificodec.tiling import tiles

DEFAULT_BETA = BETA_MAX  # a generative codec's point is realism; beta=0 is one flag away

# Large images run through E and G in tiles, which bounds memory by the tile size instead of
# the image size. Tiles overlap by more than each part's receptive field, so they match a single
# pass up to float rounding; benchmarks/tiling.py measures the seams and the memory. Units:
# latent pixels (16 image pixels).
# - E: tiles of TILE (1024 px; smaller images in one piece) overlapping by ENCODER_MARGIN (~3),
#   each made from the uint8 image (the whole image is never a float tensor).
# - G in two parts (HiFiC.trunk / render): its trunk at latent resolution holds most of its
#   reach (~11) but little memory, so it runs in large TRUNK_TILE tiles; its upsampling path
#   holds the full-resolution maps but reaches ~2, so it runs in TAIL_TILE tiles with a margin of
#   3. Overlap then adds (1 + 6/48)^2 = 1.27x to the upsampling path alone (a 24 MP decode
#   measured no slower than with 64-px tiles, and ~0.3 GB lighter: docs/performance.md).
TILE = 64
ENCODER_MARGIN = 4
TRUNK_TILE = 128
TRUNK_MARGIN = 12
TAIL_TILE = 48
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
    runtime: str = "torch"  # what runs G when decoding: "torch" or "openvino" (runtime.py)
    _openvino: object = field(default=None, repr=False)

    @classmethod
    def load(cls, name: str = zoo.DEFAULT_MODEL, device: str = "auto", weights_dir: Path | None = None,
             expected_digest: str | None = None, runtime: str = "torch") -> "Codec":
        return cls.from_info(zoo.find_model(name, weights_dir), device, expected_digest, runtime=runtime)

    @classmethod
    def from_info(cls, info: zoo.ModelInfo, device: str = "auto", expected_digest: str | None = None,
                  channels_last: bool | None = None, runtime: str = "torch") -> "Codec":
        """``channels_last`` (default: on CPU): oneDNN's convolutions are faster on channels-last
        tensors (a Kodak decode 1.2-1.7x; ``benchmarks/decode_speed.py`` measures both). Only the
        encoder and generator change layout; the entropy model's float path (hyperprior scales ->
        CDF indexes), which encoder and decoder must compute identically, is left as it is.
        ``runtime``: "torch", "openvino" or "auto" (OpenVINO for G on a CPU where it is
        installed, runtime.py); encoding always runs in torch, so files do not depend on it."""
        dev = resolve_device(device)
        try:
            runtime = resolve_runtime(runtime, dev)
        except ValueError as exc:
            raise CodecError(str(exc)) from None
        if channels_last is None:
            channels_last = dev.type == "cpu"
        # frozen: nothing is trained here; refinement differentiates w.r.t. the latent only
        model = zoo.load_model(info, expected_digest).prepare_for_inference(dev, channels_last)
        return cls(info, model, dev, torch.channels_last if channels_last else torch.contiguous_format, runtime)

    @property
    def synthesis(self):
        """What runs G's ``trunk`` and ``render``: the model itself, or OpenVINO's compile of
        them, made on first use (converted from the weights file once per machine, runtime.py)."""
        if self.runtime == "torch":
            return self.model
        if self._openvino is None:
            from hificodec.runtime import OpenVinoSynthesis

            try:
                self._openvino = OpenVinoSynthesis(lambda: zoo.load_model(self.info), self.info.digest)
            except (OSError, RuntimeError) as exc:  # e.g. no writable cache folder: decode anyway
                warnings.warn(f"OpenVINO could not prepare the generator ({str(exc).splitlines()[0]}); "
                              "decoding with torch")
                self.runtime = "torch"
                return self.model
        return self._openvino

    # -- encode -----------------------------------------------------------------------------
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

    @staticmethod
    def _check_image(rgb8: np.ndarray) -> None:
        if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
            raise CodecError("expected an (H, W, 3) uint8 image")
        height, width = rgb8.shape[:2]
        if not (1 <= width <= bitstream.MAX_SIDE and 1 <= height <= bitstream.MAX_SIDE):
            raise CodecError(f"image sides must be 1..{bitstream.MAX_SIDE} pixels, got {width}x{height}")

    def _padded(self, rgb8: np.ndarray) -> torch.Tensor:
        """The whole image as a padded float tensor (refinement, which differentiates through G)."""
        self._check_image(rgb8)
        return HiFiC.pad(to_tensor(rgb8).to(self.device).contiguous(memory_format=self.memory_format))

    @torch.no_grad()
    def analyse(self, rgb8: np.ndarray) -> torch.Tensor:
        """E's latent of an image, before any rate level's gain (the same at every quality)."""
        self._check_image(rgb8)
        height, width = rgb8.shape[:2]
        s = HiFiC.stride

        def window(rows: slice, cols: slice) -> torch.Tensor:
            # One window of the padded image, made from the uint8 pixels: the float image of a
            # 24 MP photo (and its padded copy) is never made whole. Replicate padding of the
            # window is the whole image's, since a window reaching the padding holds the edge.
            part = rgb8[rows.start : min(rows.stop, height), cols.start : min(cols.stop, width)]
            part = np.pad(part, ((0, rows.stop - rows.start - part.shape[0]), (0, cols.stop - cols.start - part.shape[1]),
                                 (0, 0)), mode="edge")
            return to_tensor(part).to(self.device).contiguous(memory_format=self.memory_format)

        # The entropy model keeps the standard layout whatever E ran in (see from_info).
        latent_size = (-(-height // s) * s // HiFiC.latent_stride, -(-width // s) * s // HiFiC.latent_stride)
        return self._tiled(self.model.analyse, window, latent_size, TILE, ENCODER_MARGIN, HiFiC.latent_stride).contiguous()

    def refine(self, rgb8: np.ndarray, y: torch.Tensor, quality: float | None, steps: int) -> torch.Tensor:
        """``y`` (from ``analyse``) refined for this image at ``quality`` by ``steps`` steps."""
        from hificodec.refine import refine_latent  # the encoder's optional slow path

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
        z_string, y_string = self.model.compress(y, code / bitstream.QUALITY_SCALE)
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
            return self.model.decompress(hfc.z_string, hfc.y_string, z_shape, hfc.quality)
        except (RuntimeError, ValueError, OverflowError) as exc:
            raise CodecError(f"corrupt latent data ({exc})") from None

    @torch.no_grad()
    def generate(self, hfc: bitstream.HfcFile, y_hat: torch.Tensor, beta: float) -> np.ndarray:
        """Pixels from a decoded latent, tile by tile for large images (uint8, H x W x 3)."""
        beta_t = torch.tensor([check_beta(beta)], device=self.device)
        s = HiFiC.latent_stride
        y_hat = y_hat.to(self.device)
        synthesis = self.synthesis
        h = self._tiled(lambda latent: synthesis.trunk(latent, beta_t),
                        lambda rows, cols: y_hat[..., rows, cols].contiguous(memory_format=self.memory_format),
                        y_hat.shape[-2:], TRUNK_TILE, TRUNK_MARGIN)
        out = np.empty((hfc.height, hfc.width, 3), np.uint8)
        for tile in tiles(h.shape[-2], h.shape[-1], TAIL_TILE, TAIL_MARGIN):
            rows, cols = tile.core(s)
            if rows.start >= hfc.height or cols.start >= hfc.width:
                continue  # a tile entirely in the padding
            x_hat = synthesis.render(h[(..., *tile.window())].contiguous(memory_format=self.memory_format))[0]
            pixels = to_rgb8(x_hat[(..., *tile.core_in_window(s))])
            bottom, right = min(rows.stop, hfc.height), min(cols.stop, hfc.width)
            out[rows.start:bottom, cols.start:right] = pixels[: bottom - rows.start, : right - cols.start]
        return out

    def _tiled(self, part, window, size: tuple[int, int], core: int, margin: int, stride: int = 1) -> torch.Tensor:
        """``part`` (E, or G's trunk) over overlapping windows, keeping each one's core, for a
        part whose output is ``size`` (latent pixels) and its input ``stride`` times finer;
        ``window(rows, cols)`` gives the input under the slices (in input pixels)."""
        grid = tiles(*size, core, margin)
        out = None
        for tile in grid:
            result = part(window(*tile.window(stride)))
            if len(grid) == 1:
                return result
            if out is None:
                out = result.new_empty(1, result.shape[1], *size)
            out[(..., *tile.core())] = result[(..., *tile.core_in_window())]
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

    def __init__(self, device: str = "auto", weights_dir: Path | None = None, runtime: str = "torch"):
        self.device = device
        self.weights_dir = weights_dir
        self.runtime = runtime
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
            self._codecs[key] = Codec.from_info(info, self.device, expected_digest=hfc.weights_digest,
                                                runtime=self.runtime)
        return self._codecs[key]

    def for_model(self, name: str) -> Codec:
        info = zoo.find_model(name, self.weights_dir)
        key = (info.name, info.digest)
        if key not in self._codecs:
            self._codecs[key] = Codec.load(name, self.device, self.weights_dir, runtime=self.runtime)
        return self._codecs[key]


def decode(data: bytes, beta: float = DEFAULT_BETA, device: str = "auto", weights_dir: Path | None = None) -> np.ndarray:
    """One-shot decode of .hfc bytes with whatever installed model the file names."""
    hfc = bitstream.parse(data)
    return CodecPool(device, weights_dir).for_file(hfc).decode(hfc, beta)
