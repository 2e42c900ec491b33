"""hificodec: generative image compression (HiFiC) with receiver-side realism control.

The library in four names::

    import hificodec

    data = hificodec.encode("photo.png", quality=1.0)    # -> .hfc bytes
    pixels = hificodec.decode(data, beta=2.56)           # -> (H, W, 3) uint8; beta 0 .. 2.56
    codec = hificodec.Codec.load("hific-cpu-vbr")         # one model, kept loaded
    [m.name for m in hificodec.list_models()]

Importing the package loads no torch: the names below import what they need when first used,
so ``hfc --help`` and ``hfc info`` stay fast.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["Codec", "decode", "encode", "list_models", "__version__"]

if TYPE_CHECKING:
    import numpy as np

    from hificodec.codec import Codec, CodecPool
    from hificodec.zoo import ModelInfo


def __getattr__(name: str) -> Any:
    if name == "Codec":
        from hificodec.codec import Codec

        return Codec
    raise AttributeError(f"module 'hificodec' has no attribute {name!r}")


@cache
def _pool(device: str, runtime: str = "auto") -> CodecPool:
    """One pool per device and runtime, so repeated calls reuse loaded models."""
    from hificodec.codec import CodecPool

    return CodecPool(device, runtime=runtime)


def encode(image: np.ndarray | str | Path, quality: float | None = None, model: str | None = None,
           refine_steps: int = 0, device: str = "auto") -> bytes:
    """Compresses an image to the bytes of a .hfc file.

    ``image`` is an (H, W, 3) uint8 RGB array or the path of an image file (PNG, JPEG, WebP,
    TIFF, BMP; converted to sRGB, upright). ``quality`` picks the rate (0 .. the model's levels
    - 1, fractions in between; default the middle level); ``model`` a name from
    ``list_models()`` (default: the default model); ``refine_steps`` > 0 spends more encode time
    for better pixels from the same decoder. Raises ``hificodec.codec.CodecError`` (a
    ValueError) for bad arguments, ``hificodec.imaging.images.ImageError`` for unreadable files
    and ``hificodec.zoo.ModelNotFound`` (a LookupError) for a model that is not installed."""
    from hificodec.zoo import DEFAULT_MODEL

    if isinstance(image, (str, Path)):
        from hificodec.imaging.images import load_rgb

        image = load_rgb(Path(image)).rgb8
    return _pool(device).for_model(model or DEFAULT_MODEL).encode(image, quality, refine_steps)


def decode(data: bytes, beta: float = 2.56, device: str = "auto", runtime: str = "auto") -> np.ndarray:
    """Decompresses .hfc bytes to an (H, W, 3) uint8 RGB array, with the model the file names.

    ``beta`` is the receiver's choice: 0 for the lowest distortion (closest to the original),
    2.56 (the default) for the most realistic detail. Raises ``hificodec.format.bitstream.
    BitstreamError`` for damaged files and ``hificodec.codec.CodecError`` when the model or
    weights the file needs are not installed. ``runtime``: what runs the generator, "auto"
    (OpenVINO on a CPU where it is installed, else torch), "torch" or "openvino"."""
    from hificodec.format import bitstream

    hfc = bitstream.parse(data)
    return _pool(device, runtime).for_file(hfc).decode(hfc, beta)


def list_models() -> list[ModelInfo]:
    """The installed models (name, digest, rate levels, training record), in the weights
    search order (``hificodec.zoo.weights_dirs``)."""
    from hificodec.zoo import list_models as _list_models

    return _list_models()
