"""Reading any common image into 8-bit sRGB, and writing files atomically.

Input policy (documented in README.md):
* EXIF orientation is applied, so the coded image looks the way viewers show the input.
* Grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB (16-bit is rounded).
* Alpha is not coded: transparent images are flattened onto white.
* An embedded ICC profile is converted to sRGB.
* Animated images: only the first frame is coded.
"""

from __future__ import annotations

import io
import os
import signal
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from hificodec.format.bitstream import DEFAULT_MAX_PIXELS, Metadata
from hificodec.imaging.metadata import read_metadata, save_options

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".gif"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM"}


class ImageError(ValueError):
    """The input is not an image we can read (message is one line, meant for the user)."""


@dataclass
class LoadedImage:
    rgb8: np.ndarray  # (H, W, 3) uint8, sRGB
    notes: list[str] = field(default_factory=list)  # conversions applied, for --verbose
    metadata: Metadata = Metadata()  # EXIF, XMP, ICC note of the input (metadata.py)


def image_files(paths: list[Path], extensions: set[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Expands folders (recursively, sorted) into the files with the given extensions;
    plain file arguments are kept as they are, whatever their extension."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        else:
            out.append(p)
    return out


def _to_srgb(img: Image.Image, notes: list[str]) -> Image.Image:
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, dst, outputMode=out_mode)
        notes.append("converted ICC profile to sRGB")
        return converted
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("ignored an unreadable ICC profile")
        return img


def _high_bit_depth_to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        arr8 = np.clip(np.round(arr * 255.0), 0, 255)
    else:  # I;16*, I: 16-bit samples (PNG/TIFF); wider values are clipped
        arr8 = np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255)
    notes.append(f"converted {img.mode} to 8-bit")
    return Image.fromarray(arr8.astype(np.uint8), "L").convert("RGB")


def load_rgb(source: str | Path | bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decodes an image file (path or bytes) to 8-bit sRGB following the policy above."""
    notes: list[str] = []
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                metadata = read_metadata(img)
                rgb = pil_to_rgb8(img, notes)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large ({exc}); raise the limit with --max-pixels") from None
    except UnidentifiedImageError:
        raise ImageError("not a recognized image format") from None
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"cannot decode image: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return LoadedImage(rgb, notes, metadata)


def pil_to_rgb8(img: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """The input policy above applied to an opened Pillow image: (H, W, 3) uint8 sRGB. Each
    conversion made is appended to ``notes``."""
    notes = [] if notes is None else notes
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"animated image: coded the first of {img.n_frames} frames")
        img.seek(0)
    img.load()
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_bit_depth_to_rgb(img, notes)
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if ("transparency" in img.info or img.mode == "PA") else "RGB")
    if img.mode in ("LA", "La", "RGBa"):
        img = img.convert("RGBA")
    img = _to_srgb(img, notes)
    if img.mode == "RGBA":
        if img.getextrema()[3][0] < 255:
            notes.append("flattened transparency onto white")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def encode_image(rgb8: np.ndarray, fmt: str, metadata: Metadata = Metadata()) -> bytes:
    """Encodes (H, W, 3) uint8 to PNG/JPEG/WebP/... bytes, with the metadata the format carries."""
    buf = io.BytesIO()
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with warnings.catch_warnings():  # Pillow's warnings about a damaged EXIF block it skips parts of
        warnings.simplefilter("ignore")
        Image.fromarray(rgb8, "RGB").save(buf, format=fmt, **kwargs, **save_options(metadata, fmt))
    return buf.getvalue()


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"unknown output image extension {path.suffix!r} (use .png, .jpg, .webp, .tif or .bmp)")
    return fmt


def atomic_write(path: Path, data: bytes) -> None:
    """Writes via a temporary file in the same folder and a rename: readers (and a crash)
    see either the old file or the complete new one, never a partial file."""
    path = Path(path)
    # Ctrl-C or SIGTERM landing between creating the temporary file and the cleanup below would
    # leave it behind: hold both for the few milliseconds of a write, deliver them afterwards.
    block = getattr(signal, "pthread_sigmask", None)
    previous = block(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if block else None
    try:
        _write_and_rename(path, data)
    finally:
        if block:
            block(signal.SIG_SETMASK, previous)


def _write_and_rename(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
