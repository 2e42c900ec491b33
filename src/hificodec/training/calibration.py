"""Rate calibration at export: the rate levels of a variable-rate model re-placed at nominal bpp
measured on whole photos.

Training steers each level's gain towards a bpp on small training crops (``gain_control`` in
train.py), but the rate that level then gets on whole photos drifts from run to run: phase P's
quality 1 rose from 0.318 to 0.361 bpp on Kodak with its crop target unchanged. So export can
measure the model's rate along its quality scale on whole training photos, scaled like Kodak to
a 512-pixel short side, and move each level to the quality whose mean bpp there is the level's
nominal rate. Fractional qualities already interpolate the gains geometrically between levels
(``HiFiC.gains``); a new level is such a point of the old scale. Only the gain table changes:
E, G and the entropy model do not.

The search stays inside the trained range [0, levels - 1]: beyond it the hyperprior no longer
fits the latents, and the rate stops falling with the gain (phase Q on 8 training photos: 0.157
bpp at quality 0, 0.173 at -0.25, 0.213 at -0.5, gains extended along the end segment).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hificodec.format.bitstream import QUALITY_SCALE
from hificodec.imaging.images import ImageError, image_files, load_rgb

SHORT_SIDE = 512  # Kodak's


@dataclass
class Calibration:
    folder: str
    images: int
    short_side: int
    rates: list[float]  # the nominal bpp asked for, per level
    positions: list[float]  # where on the previous quality scale each level was put
    bpp: list[float]  # the mean bpp each level measures on the calibration images afterwards

    def to_json(self) -> dict:
        return asdict(self)


def calibration_images(folder: Path, count: int) -> list[np.ndarray]:
    """``count`` photos spread evenly over the sorted folder, each scaled down (never up) to a
    SHORT_SIDE short side; unreadable files are skipped with a warning."""
    files = image_files([Path(folder)])
    if not files:
        raise ValueError(f"no images in {folder} to calibrate the rates on")
    if len(files) > count:
        files = [files[round(i * (len(files) - 1) / max(count - 1, 1))] for i in range(count)]
    out = []
    for path in files:
        try:
            rgb8 = load_rgb(path).rgb8
        except ImageError as exc:
            warnings.warn(f"skipping {path}: {exc}")
            continue
        height, width = rgb8.shape[:2]
        scale = SHORT_SIDE / min(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb8 = np.array(Image.fromarray(rgb8).resize(size, Image.Resampling.LANCZOS))
        out.append(rgb8)
    if not out:
        raise ValueError(f"no readable images in {folder} to calibrate the rates on")
    return out


def calibrate(model, name: str, images: list[np.ndarray], rates: list[float], folder: str = "") -> Calibration:
    """Re-places the rate levels of ``model`` (in place) at ``rates`` bpp on ``images``.

    Each rate is searched by bisection on the quality scale, the bpp being the mean over the
    images of real .hfc file sizes (header included, as ``hfc eval`` counts them)."""
    from hificodec.format.bitstream import file_size
    from hificodec.imaging.tensors import to_tensor
    from hificodec.nn.models import HiFiC, interpolate_levels

    levels = model.rate_levels
    if levels < 2:
        raise ValueError("only a variable-rate model has rate levels to calibrate")
    if len(rates) != levels or any(b <= a for a, b in zip(rates, rates[1:])) or rates[0] <= 0:
        raise ValueError(f"calibration needs {levels} increasing positive bpp values, got {list(rates)}")
    model.latent_model.update_tables()  # compress needs the CDF tables export will store
    with torch.no_grad():
        latents = [(model.analyse(HiFiC.pad(to_tensor(rgb8))), rgb8.shape[1], rgb8.shape[0]) for rgb8 in images]
    log_gain = model.log_gain.detach().clone()
    log_inverse_gain = model.log_inverse_gain.detach().clone()

    def level_bpp(quality: float) -> float:
        # the quality a file would store (1/256 steps); sizes as `hfc eval` counts them, header included
        stored = round(quality * QUALITY_SCALE) / QUALITY_SCALE
        with torch.no_grad():
            return float(np.mean([file_size(name, *model.compress(y, stored)) * 8 / (w * h) for y, w, h in latents]))

    def mean_bpp(position: float) -> float:
        with torch.no_grad():  # one level's row at `position`, measured as quality 0
            model.log_gain[0] = interpolate_levels(log_gain, torch.tensor([position]))[0]
        return level_bpp(0.0)

    low_end, high_end = 0.0, float(levels - 1)
    positions = []
    try:
        reach = (mean_bpp(low_end), mean_bpp(high_end))
        for rate in rates:
            if not reach[0] <= rate <= reach[1]:
                raise ValueError(f"{rate:g} bpp is outside the rates this model reaches on the "
                                 f"calibration images ({reach[0]:.3f} .. {reach[1]:.3f} bpp)")
            lo, hi = low_end, high_end
            while (hi - lo) * QUALITY_SCALE > 1:  # to the resolution a file stores
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if mean_bpp(mid) < rate else (lo, mid)
            positions.append(round((lo + hi) / 2 * QUALITY_SCALE) / QUALITY_SCALE)
    finally:
        with torch.no_grad():
            model.log_gain.copy_(log_gain)
    with torch.no_grad():
        model.log_gain.copy_(interpolate_levels(log_gain, torch.tensor(positions)))
        model.log_inverse_gain.copy_(interpolate_levels(log_inverse_gain, torch.tensor(positions)))
    bpp = [level_bpp(float(q)) for q in range(levels)]
    return Calibration(str(folder), len(images), SHORT_SIDE, [float(r) for r in rates], positions, bpp)
