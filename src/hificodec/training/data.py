"""Training data: a folder of photos held in RAM, sampled with HiFiC's augmentation
(random rescale of the short side, random crop, horizontal flip)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hificodec.imaging.images import ImageError, image_files, load_rgb

log = logging.getLogger(__name__)


class PhotoFolder:
    """All readable images of a folder, decoded once to uint8 tensors (C, H, W).

    Unreadable files are skipped with a warning; images smaller than the crop are skipped too.
    """

    def __init__(self, root: str | Path, min_side: int = 1):
        self.images: list[torch.Tensor] = []
        self.skipped: list[tuple[Path, str]] = []
        for path in image_files([Path(root)]):
            try:
                rgb = load_rgb(path).rgb8
            except ImageError as exc:
                self.skipped.append((path, str(exc)))
                warnings.warn(f"skipping {path}: {exc}")
                continue
            if min(rgb.shape[:2]) < min_side:
                self.skipped.append((path, "smaller than the crop"))
                continue
            self.images.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))
        if not self.images:
            raise ValueError(f"no usable training images in {root}")

    def __len__(self) -> int:
        return len(self.images)


class RandomCropSampler:
    """Draws batches of crops. All randomness comes from one torch.Generator, whose state is
    saved in checkpoints so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, folder: PhotoFolder, crop: int, short_side: tuple[int, int], seed: int = 0):
        self.folder = folder
        self.crop = crop
        self.short_side = short_side
        self.generator = torch.Generator().manual_seed(seed)

    def _randint(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] inclusive."""
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def sample_one(self) -> torch.Tensor:
        img = self.folder.images[self._randint(0, len(self.folder) - 1)]
        _, h, w = img.shape
        # Resize so the short side lands in [short_side]; never below the crop, never upsample
        # by more than needed to fit the crop.
        target_short = self._randint(*self.short_side)
        scale = max(target_short / min(h, w), self.crop / min(h, w))
        src = min(int(np.ceil(self.crop / scale)), h, w)  # region of the source that maps to the crop
        top = self._randint(0, h - src)
        left = self._randint(0, w - src)
        patch = img[:, top : top + src, left : left + src].float().unsqueeze(0) / 255.0
        if src != self.crop:
            patch = F.interpolate(patch, size=(self.crop, self.crop), mode="bilinear", antialias=True, align_corners=False)
        if self._randint(0, 1):
            patch = patch.flip(-1)
        return patch.clamp_(0, 1)

    def batch(self, size: int) -> torch.Tensor:
        return torch.cat([self.sample_one() for _ in range(size)])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
