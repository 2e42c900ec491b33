"""Images as arrays <-> images as tensors: one conversion for the codec, training and metrics."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(rgb8: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1], channels-last in memory (a new tensor:
    the array is never written)."""
    if not (rgb8.flags.writeable and rgb8.flags.c_contiguous):  # torch wants a writable array to share
        rgb8 = np.array(rgb8, order="C")
    return torch.from_numpy(rgb8).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_rgb8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded to the nearest level."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
