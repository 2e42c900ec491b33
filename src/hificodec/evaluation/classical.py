"""Classical codecs to compare against, through Pillow and its plugins, and the search for the
quality setting that hits a bpp.

Settings follow ../shared/notes/classical-codecs-kodak.md so numbers are comparable: JPEG
(libjpeg-turbo, 4:2:0, optimize), WebP (method 6), AVIF (speed 6, 4:4:4), JPEG XL (effort 7,
pillow-jxl-plugin), HEIC (pillow-heif / x265, 4:4:4, preset slow, tune ssim; a stand-in for
BPG, which is also HEVC intra). bpp always counts the whole file.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    pillow_format: str
    settings: tuple[int, int]  # quality range; bpp grows with the setting (JPEG XL 100 would be lossless mode)
    options: dict = field(default_factory=dict)
    plugin: str = ""  # module to import first (registers the format with Pillow)

    def available(self) -> bool:
        try:
            self._register()
        except ImportError:
            return False
        Image.init()  # Pillow registers its built-in encoders lazily
        return self.pillow_format.upper() in {f.upper() for f in Image.SAVE}

    def _register(self) -> None:
        if self.plugin == "pillow_heif":
            import pillow_heif

            pillow_heif.register_heif_opener()
        elif self.plugin:
            __import__(self.plugin)

    def encode(self, rgb8: np.ndarray, setting: int) -> bytes:
        self._register()
        buf = io.BytesIO()
        Image.fromarray(rgb8).save(buf, self.pillow_format, quality=int(setting), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._register()
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))

    def version(self) -> str:
        from PIL import features

        try:
            if self.name == "jpeg":
                return f"libjpeg-turbo {features.version('libjpeg_turbo')}"
            if self.name in ("webp", "avif"):
                return f"lib{self.name} {features.version(self.name)}"
            if self.name == "heic":
                import pillow_heif

                return f"pillow-heif {pillow_heif.__version__} (libheif {pillow_heif.libheif_version()})"
            if self.name == "jxl":
                from importlib.metadata import version

                return f"pillow-jxl-plugin {version('pillow-jxl-plugin')}"
        except Exception:  # noqa: BLE001 - a version string is informational only
            pass
        return "unknown"


CODECS: dict[str, ClassicalCodec] = {
    "jpeg": ClassicalCodec("jpeg", "JPEG", (1, 95), {"optimize": True, "subsampling": "4:2:0"}),
    "webp": ClassicalCodec("webp", "WEBP", (0, 100), {"method": 6}),
    "avif": ClassicalCodec("avif", "AVIF", (0, 100), {"speed": 6, "subsampling": "4:4:4"}),
    "jxl": ClassicalCodec("jxl", "JXL", (0, 99), {"effort": 7}, plugin="pillow_jxl"),
    "heic": ClassicalCodec("heic", "HEIF", (0, 100), {"chroma": 444, "enc_params": {"preset": "slow", "tune": "ssim"}},
                           plugin="pillow_heif"),
}


def parse_codecs(spec: str) -> list[ClassicalCodec]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise ValueError(f"unknown codec(s) {', '.join(unknown)} (choose from {', '.join(CODECS)})")
    missing = [n for n in names if not CODECS[n].available()]
    if missing:
        raise ValueError(f"codec(s) {', '.join(missing)} not available: pip install -e '.[eval]'")
    return [CODECS[n] for n in names]


def match_bpp(codec: ClassicalCodec, rgb8: np.ndarray, target_bpp: float,
              cache: dict[int, bytes] | None = None) -> tuple[int, bytes]:
    """The setting whose file is closest to ``target_bpp``.

    bpp grows roughly exponentially with the setting, so the search interpolates log(bpp)
    inside a bracket (regula falsi on integers): 2-4 encodes per target instead of binary
    search's 7. ``cache`` keeps encodings across calls for the same image, so later targets
    start from a tight bracket."""
    cache = {} if cache is None else cache
    pixels = rgb8.shape[0] * rgb8.shape[1]

    def bpp(setting: int) -> float:
        if setting not in cache:
            cache[setting] = codec.encode(rgb8, setting)
        return 8 * len(cache[setting]) / pixels

    lo, hi = codec.settings
    # bracket from what is known: lo below the target, hi at or above it
    below = [s for s in cache if bpp(s) < target_bpp]
    above = [s for s in cache if bpp(s) >= target_bpp]
    lo = max(below, default=lo)
    hi = min(above, default=hi)
    if bpp(lo) >= target_bpp:
        return lo, cache[lo]
    if bpp(hi) < target_bpp:
        return hi, cache[hi]
    last_side, repeats = None, 0
    while hi - lo > 1:  # invariant: bpp(lo) < target <= bpp(hi)
        if repeats >= 2:  # interpolation stalls on one side of a curved function: bisect once
            mid = (lo + hi) // 2
        else:
            a, b = math.log(max(bpp(lo), 1e-9)), math.log(bpp(hi))
            guess = lo + (math.log(target_bpp) - a) / max(b - a, 1e-9) * (hi - lo)
            mid = min(hi - 1, max(lo + 1, round(guess)))
        side = "lo" if bpp(mid) < target_bpp else "hi"
        if side == "lo":
            lo = mid
        else:
            hi = mid
        repeats = repeats + 1 if side == last_side else 0
        last_side = side
    best = min((lo, hi), key=lambda s: (abs(bpp(s) - target_bpp), s))
    return best, cache[best]


def interpolate_log_bpp(points: list[tuple[float, float]], bpp: float, extend: bool = False) -> float:
    """Linear interpolation of a metric over log(bpp) between measured (bpp, value) points;
    outside the measured range NaN, or with ``extend`` the end segment's line (needs 2 points)."""
    pts = sorted((b, v) for b, v in points if b > 0 and np.isfinite(v))
    inside = bool(pts) and pts[0][0] <= bpp <= pts[-1][0]
    if not inside and not (extend and len(pts) >= 2):
        return float("nan")
    xs, vs = np.log([b for b, _ in pts]), [v for _, v in pts]
    if inside:
        return float(np.interp(np.log(bpp), xs, vs))
    i = 0 if bpp < pts[0][0] else len(pts) - 2
    return float(vs[i] + (np.log(bpp) - xs[i]) * (vs[i + 1] - vs[i]) / (xs[i + 1] - xs[i]))

