"""What a user waits for: `hfc` run as commands (cold processes, batches, a 24 MP photo), beside
AVIF (speed 6), WebP (method 4) and JPEG through Pillow on the same images in the same run.

    python benchmarks/codec_speed.py [--kodak ../shared/data/kodak] [--megapixels 24] [--skip-large]

Rows (issue 44's table): `hfc --help`; a one-file encode and decode of a Kodak image in a fresh
process, and of a 16x16 image (what every process pays before any pixel work: import, weight
load, digest); a batch of all Kodak images encoded and decoded in one process; a photo of
--megapixels (Kodak images tiled) encoded and decoded. Each hfc row gives wall seconds, seconds
per megapixel and the process's peak RSS; the classical codecs are timed in this process on
the same pixels (encode and decode, summed over the same images), and the last column is hfc's
time over AVIF's. Decode rows come once per runtime (torch, and OpenVINO where it is installed,
its one-time conversion done before the timed rows, as a user's second run finds it). Numbers
from a loaded machine are comparable within one run only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
HFC = [sys.executable, "-m", "hificodec.cli"]
CLASSICAL = {"AVIF": ("AVIF", {"quality": 50, "speed": 6}), "WebP": ("WEBP", {"quality": 75, "method": 4}),
             "JPEG": ("JPEG", {"quality": 75})}
# Runs a command and prints its own peak RSS (the children's maximum, of this one child only).
PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def timed(cmd: list[str], cache: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **({"HFC_CACHE_DIR": str(cache)} if cache else {})}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return seconds, int(r.stderr.strip().splitlines()[-1]) / 1024


def classical_seconds(images: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """(encode, decode) seconds summed over the images, per classical codec."""
    out = {}
    for name, (fmt, options) in CLASSICAL.items():
        encode = decode = 0.0
        for rgb in images:
            t0 = time.perf_counter()
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, fmt, **options)
            encode += time.perf_counter() - t0
            t0 = time.perf_counter()
            Image.open(io.BytesIO(buf.getvalue())).load()
            decode += time.perf_counter() - t0
        out[name] = (encode, decode)
    return out


def mosaic(images: list[np.ndarray], megapixels: float) -> np.ndarray:
    """A 3:2 photo of about ``megapixels``, tiled from the given images (mirrored alternately so
    the tiles' edges meet like a photo's content rather than as hard seams)."""
    height = int(round((megapixels * 1e6 / 1.5) ** 0.5))
    width = int(round(height * 1.5))
    tile_h, tile_w = images[0].shape[:2]
    rows = []
    for r in range(-(-height // tile_h)):
        row = []
        for c in range(-(-width // tile_w)):
            tile = images[(r * 7 + c) % len(images)]
            if tile.shape[:2] != (tile_h, tile_w):
                tile = np.asarray(Image.fromarray(tile).resize((tile_w, tile_h)))
            row.append(tile[:, ::-1] if c % 2 else tile)
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:height, :width])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--skip-large", action="store_true", help="leave out the large-photo rows")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    paths = sorted(args.kodak.glob("*.png"))
    if not paths:
        sys.exit(f"no PNG images in {args.kodak}")
    kodak = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    kodak_mp = sum(k.shape[0] * k.shape[1] for k in kodak) / 1e6
    work = Path(tempfile.mkdtemp(prefix="hfc-speed-"))
    rows = []

    def row(name: str, seconds: float, peak: float | None, megapixels: float, classical: dict | None, side: int):
        avif = classical["AVIF"][side] if classical else None
        rows.append({"work": name, "hfc_s": seconds, "hfc_s_per_mp": seconds / megapixels if megapixels else None,
                     "peak_mb": peak, **{f"{k}_s": v[side] for k, v in (classical or {}).items()},
                     "hfc_over_avif": seconds / avif if avif else None})

    try:
        t0 = time.perf_counter()
        subprocess.run(HFC + ["--help"], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        row("hfc --help", time.perf_counter() - t0, None, 0, None, 0)

        Image.fromarray(kodak[0][:16, :16]).save(work / "tiny.png")
        one = work / "one.png"
        Image.fromarray(kodak[0]).save(one)
        for name, src in (("start-up: encode 16x16, cold", work / "tiny.png"), ("encode 1 Kodak image, cold", one)):
            seconds, peak = timed(HFC + ["encode", str(src), "-o", str(src.with_suffix(".hfc")), "--force", "-q"])
            mp = 0 if "16x16" in name else kodak[0].size / 3e6
            row(name, seconds, peak, mp, None if mp == 0 else classical_seconds(kodak[:1]), 0)
        from hificodec.runtime import openvino_installed

        runtimes = ["torch", "openvino"] if openvino_installed() else ["torch"]
        cache = work / "cache"
        if "openvino" in runtimes:  # the one-time conversion, untimed
            timed(HFC + ["decode", str(work / "tiny.hfc"), "-o", str(work / "warm.png"), "--runtime", "openvino", "-q"], cache)
        for runtime in runtimes:
            for name, src in (("start-up: decode 16x16, cold", work / "tiny.hfc"), ("decode 1 Kodak image, cold", one.with_suffix(".hfc"))):
                seconds, peak = timed(HFC + ["decode", str(src), "-o", str(src.with_suffix(".out.png")), "--force", "-q",
                                             "--runtime", runtime], cache)
                mp = 0 if "16x16" in name else kodak[0].size / 3e6
                row(f"{name} ({runtime})", seconds, peak, mp, None if mp == 0 else classical_seconds(kodak[:1]), 1)

        batch_classical = classical_seconds(kodak)
        seconds, peak = timed(HFC + ["encode", str(args.kodak), "-d", str(work / "enc"), "--force", "-q"])
        row(f"batch of {len(kodak)} Kodak images, encode", seconds, peak, kodak_mp, batch_classical, 0)
        for runtime in runtimes:
            seconds, peak = timed(HFC + ["decode", str(work / "enc"), "-d", str(work / "dec"), "--force", "-q",
                                         "--runtime", runtime], cache)
            row(f"batch of {len(kodak)} Kodak images, decode ({runtime})", seconds, peak, kodak_mp, batch_classical, 1)

        if not args.skip_large:
            big = mosaic(kodak, args.megapixels)
            Image.fromarray(big).save(work / "big.png", compress_level=1)
            big_mp = big.shape[0] * big.shape[1] / 1e6
            big_classical = classical_seconds([big])
            label = f"{big.shape[1]}x{big.shape[0]} photo ({big_mp:.0f} MP)"
            seconds, peak = timed(HFC + ["encode", str(work / "big.png"), "-o", str(work / "big.hfc"), "-q"])
            row(f"{label}, encode", seconds, peak, big_mp, big_classical, 0)
            for runtime in runtimes:
                seconds, peak = timed(HFC + ["decode", str(work / "big.hfc"), "-o", str(work / "big.out.png"), "-q",
                                             "--force", "--runtime", runtime], cache)
                row(f"{label}, decode ({runtime})", seconds, peak, big_mp, big_classical, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    print(f"{'work':<54}{'hfc s':>8}{'s/MP':>7}{'peak MB':>9}{'AVIF s':>8}{'WebP s':>8}{'JPEG s':>8}{'hfc/AVIF':>9}")
    for r in rows:
        print(f"{r['work']:<54}{r['hfc_s']:>8.2f}{cell(r['hfc_s_per_mp'], '.2f'):>7}{cell(r['peak_mb'], '.0f'):>9}"
              f"{cell(r.get('AVIF_s'), '.2f'):>8}{cell(r.get('WebP_s'), '.2f'):>8}{cell(r.get('JPEG_s'), '.3f'):>8}"
              f"{cell(r['hfc_over_avif'], '.1f'):>9}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
