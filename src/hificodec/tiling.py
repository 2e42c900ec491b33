"""How large images are cut into overlapping tiles: the one tiling helper of the codec (E, G's
trunk, G's upsampling path) and of encoder-side refinement.

A tile is a window of the input, of which only the core is kept: the window extends ``margin``
past the core on every side that has image, so that a part whose reach is below the margin
computes the core exactly as a single pass over the whole image would (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """Rows and columns as (start, end) pairs, in the units ``tiles`` was given."""

    window_rows: tuple[int, int]
    window_cols: tuple[int, int]
    core_rows: tuple[int, int]
    core_cols: tuple[int, int]

    def window(self, scale: int = 1) -> tuple[slice, slice]:
        """Slices of the last two axes that cut the window out of a map ``scale`` times finer."""
        return (slice(self.window_rows[0] * scale, self.window_rows[1] * scale),
                slice(self.window_cols[0] * scale, self.window_cols[1] * scale))

    def core(self, scale: int = 1) -> tuple[slice, slice]:
        """Slices of the last two axes that place the core in the whole (finer) map."""
        return (slice(self.core_rows[0] * scale, self.core_rows[1] * scale),
                slice(self.core_cols[0] * scale, self.core_cols[1] * scale))

    def core_in_window(self, scale: int = 1) -> tuple[slice, slice]:
        """Slices of the last two axes that cut the core out of the window's result."""
        top, left = self.window_rows[0], self.window_cols[0]
        return (slice((self.core_rows[0] - top) * scale, (self.core_rows[1] - top) * scale),
                slice((self.core_cols[0] - left) * scale, (self.core_cols[1] - left) * scale))

    def scaled(self, scale: int) -> "Tile":
        """The same tile in units ``scale`` times finer."""
        return Tile(*(tuple(v * scale for v in span) for span in
                      (self.window_rows, self.window_cols, self.core_rows, self.core_cols)))


def spans(length: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Covers [0, length) with cores of at most ``core``, evenly; (window_start, window_end,
    core_start, core_end) per span, the window extending ``margin`` past the core."""
    count = max(1, -(-length // core))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [(max(0, a - margin), min(length, b + margin), a, b) for a, b in zip(bounds, bounds[1:])]


def tiles(height: int, width: int, core: int, margin: int) -> list[Tile]:
    """Row-major tiles covering a ``height`` x ``width`` map with cores of at most ``core``."""
    return [Tile((wy0, wy1), (wx0, wx1), (cy0, cy1), (cx0, cx1))
            for wy0, wy1, cy0, cy1 in spans(height, core, margin)
            for wx0, wx1, cx0, cx1 in spans(width, core, margin)]
