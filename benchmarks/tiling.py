"""Tiled encoding/decoding of large images: seams and memory.

    python benchmarks/tiling.py [--megapixels 24] [--model hific-cpu-vbr]

1. Seams: the example photo decoded in small tiles (16 latent px = 256 px cores) against one
   pass: mean/max error within 8 px of a tile border vs in the interior.
2. Memory and time: a synthetic photo of --megapixels (the example photo tiled and mirrored)
   encoded and decoded in a fresh process with the default tiles; peak RSS (ru_maxrss) and
   seconds, next to the same numbers for one Kodak-sized image in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seams(model: str) -> dict:
    import numpy as np

    import hificodec.codec as codec_module
    from hificodec.codec import Codec
    from hificodec.format import bitstream
    from hificodec.imaging.images import load_rgb
    from hificodec.tiling import spans

    codec = Codec.load(model, "cpu")
    photo = load_rgb(ROOT / "examples" / "kodim23.png").rgb8
    hfc = bitstream.parse(codec.encode(photo))
    y_hat = codec.latent(hfc)
    single = codec.generate(hfc, y_hat, 2.56).astype(int)
    codec_module.TRUNK_TILE = codec_module.TAIL_TILE = 16  # G's two parts both cut every 16 latent pixels
    tiled = codec.generate(hfc, y_hat, 2.56).astype(int)
    err = np.abs(tiled - single).mean(axis=2)
    near = np.zeros(err.shape, bool)
    for row_spans, axis in ((spans(y_hat.shape[-2], 16, 0), 0), (spans(y_hat.shape[-1], 16, 0), 1)):
        for _, _, _, end in row_spans[:-1]:
            edge = end * 16
            if axis == 0:
                near[max(0, edge - 8) : edge + 8, :] = True
            else:
                near[:, max(0, edge - 8) : edge + 8] = True
    return {"border_mean": float(err[near].mean()), "border_max": float(err[near].max()),
            "interior_mean": float(err[~near].mean()), "interior_max": float(err[~near].max())}


CHILD = """
import json, resource, sys, time
import numpy as np
from hificodec.codec import Codec
from hificodec.imaging.images import load_rgb
mp, model = float(sys.argv[1]), sys.argv[2]
photo = load_rgb(sys.argv[3]).rgb8
h = int((mp * 1e6 * 2 / 3) ** 0.5) if mp else photo.shape[0]
w = int(h * 1.5) if mp else photo.shape[1]
reps = (-(-h // photo.shape[0]), -(-w // photo.shape[1]))
big = np.tile(np.concatenate([photo, photo[:, ::-1]], 1), (reps[0], -(-reps[1] // 2), 1))[:h, :w].copy()
codec = Codec.load(model, "cpu")
t0 = time.perf_counter(); data = codec.encode(big); enc = time.perf_counter() - t0
t0 = time.perf_counter(); out = codec.decode(data, 2.56); dec = time.perf_counter() - t0
print(json.dumps({"width": w, "height": h, "encode_s": enc, "decode_s": dec, "bytes": len(data),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(megapixels: float, model: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(megapixels), model,
                             str(ROOT / "examples" / "kodim23.png")], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-1000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--model", default="hific-cpu-vbr")
    args = ap.parse_args()
    print("seams (grey levels, tiled vs one pass):", json.dumps(seams(args.model)))
    small = run_child(0, args.model)
    print("Kodak-sized:", json.dumps(small))
    big = run_child(args.megapixels, args.model)
    print(f"{args.megapixels:g} MP:", json.dumps(big))
    print(f"ratios {args.megapixels:g} MP / Kodak-sized: pixels "
          f"{big['width'] * big['height'] / (small['width'] * small['height']):.1f}x, "
          f"peak RSS {big['peak_rss_mb'] / small['peak_rss_mb']:.1f}x, decode time {big['decode_s'] / small['decode_s']:.1f}x")


if __name__ == "__main__":
    main()
