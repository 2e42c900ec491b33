"""How large images are cut into overlapping tiles (codec.py and refine.py)."""

from __future__ import annotations


def tile_spans(length: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Covers [0, length) with cores of at most ``core``; returns (window_start, window_end,
    core_start, core_end) per tile, the window extending ``margin`` past the core."""
    count = max(1, -(-length // core))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [(max(0, a - margin), min(length, b + margin), a, b) for a, b in zip(bounds, bounds[1:])]
