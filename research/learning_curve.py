"""The learning curve of a run, from its log: every validation (all Kodak images at each rate
level, beta 0) as a markdown row, beside CompressAI's bmshj2018-hyperprior on Kodak at the same
bpp (its published results, interpolated linearly in log bpp).

    python research/learning_curve.py runs/hific-cpu2-core/log.jsonl
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

# Kodak (bpp, PSNR dB): CompressAI's bmshj2018-hyperprior qualities 1-3 (its results JSON), and
# above 0.32 bpp tensorflow/compression's balle-2018-iclr-opt-mse (0.469, 32.55), the same model.
BMSHJ2018 = [(0.131, 27.58), (0.209, 29.20), (0.320, 30.97), (0.469, 32.55)]


def bmshj2018_psnr(bpp: float) -> float:
    """Linear in log bpp between the published points, extended along the end segments."""
    points = BMSHJ2018
    i = 0 if bpp <= points[1][0] else len(points) - 2 if bpp >= points[-2][0] else \
        next(k for k in range(len(points) - 1) if points[k][0] <= bpp <= points[k + 1][0])
    (b0, p0), (b1, p1) = points[i], points[i + 1]
    return p0 + (p1 - p0) * math.log(bpp / b0) / math.log(b1 / b0)


def rows(log: Path) -> list[str]:
    out = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        val = record.get("val")
        if not val:
            continue
        levels = sorted({k.rsplit("_q", 1)[1] for k in val if "_q" in k}) or [""]
        cells = []
        for level in levels:
            suffix = f"_q{level}" if level else ""
            bpp, psnr = val["bpp" + suffix], val["psnr_beta0" + suffix]
            cells.append(f"{bpp:.3f} / {psnr:.2f} ({psnr - bmshj2018_psnr(bpp):+.2f})")
        hours = record.get("seconds", float("nan")) / 3600
        out.append(f"| {record['step']} | {hours:.2f} | " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    print("| step | training hours (2 cores) | q0 bpp / PSNR (vs bmshj2018) | q1 | q2 |")
    print("|---|---|---|---|---|")
    print("\n".join(rows(Path(sys.argv[1]))))
