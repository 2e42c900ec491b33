"""Encode/decode wall-clock of a shipped model against WebP (Pillow/libwebp) in the same run.

    python benchmarks/decode_speed.py [IMAGE_OR_FOLDER ...] [--model hific-cpu-vbr] [--quality 1] [--repeat 3]

Target (issue 3): decoding a Kodak image (768x512) takes at most 1.5 s on 2 CPU cores.
Prints per-image medians and the ratios to WebP and to the same model on the generic path
(standard NCHW tensors, as on CUDA, and none of the CPU inference forms of layers.py), so
numbers from a loaded machine are still comparable with each other. First it prints what every
`hfc` process pays before any pixel work: importing the codec in a fresh interpreter, against
importing torch alone.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def import_seconds(modules: list[str], repeat: int) -> list[float]:
    """Median wall-clock of importing each module in a fresh interpreter, minus a bare start."""
    def run(statement: str) -> None:
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    bare = median_time(lambda: run("pass"), repeat)
    return [median_time(lambda: run(f"import {module}"), repeat) - bare for module in modules]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="*", default=[str(ROOT / "examples" / "kodim23.png")])
    ap.add_argument("--model", default="hific-cpu-vbr")
    ap.add_argument("--quality", type=float, default=None, help="rate level (default: the middle one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch
    from PIL import Image

    from hificodec.codec import Codec
    from hificodec.imaging.images import image_files, load_rgb

    if args.threads:
        torch.set_num_threads(args.threads)
    codec_import, torch_import = import_seconds(["hificodec.codec", "torch"], args.repeat)
    print(f"import in a fresh process: hificodec.codec {codec_import:.2f} s, torch alone {torch_import:.2f} s "
          f"({codec_import / torch_import:.2f}x)")
    t0 = time.perf_counter()
    codec = Codec.load(args.model, "cpu")
    print(f"model load: {time.perf_counter() - t0:.2f} s; torch threads: {torch.get_num_threads()}")
    nchw = Codec.from_info(codec.info, "cpu", channels_last=False)
    print(f"{'image':<16}{'size':>10}{'bpp':>8}{'enc s':>8}{'dec s':>8}{'NCHW dec':>10}{'webp enc':>10}"
          f"{'webp dec':>10}{'dec/webp':>10}{'NCHW/dec':>10}")
    decs, nchw_decs = [], []
    for path in image_files([Path(p) for p in args.inputs]):
        rgb = load_rgb(path).rgb8
        h, w = rgb.shape[:2]
        data = codec.encode(rgb, args.quality)
        enc = median_time(lambda: codec.encode(rgb, args.quality), args.repeat)
        dec = median_time(lambda: codec.decode(data, 2.56), args.repeat)
        nchw_dec = median_time(lambda: nchw.decode(data, 2.56), args.repeat)
        webp = io.BytesIO()
        Image.fromarray(rgb).save(webp, "WEBP", quality=75, method=6)
        webp_enc = median_time(lambda: Image.fromarray(rgb).save(io.BytesIO(), "WEBP", quality=75, method=6), args.repeat)
        webp_dec = median_time(lambda: Image.open(io.BytesIO(webp.getvalue())).load(), args.repeat)
        decs.append(dec)
        nchw_decs.append(nchw_dec)
        print(f"{path.name:<16}{f'{w}x{h}':>10}{8 * len(data) / (w * h):>8.3f}{enc:>8.2f}{dec:>8.2f}{nchw_dec:>10.2f}"
              f"{webp_enc:>10.3f}{webp_dec:>10.4f}{dec / webp_dec:>10.0f}x{nchw_dec / dec:>9.2f}x")
    print(f"median decode: {statistics.median(decs):.2f} s per image (target <= 1.5 s for 768x512); "
          f"on NCHW tensors {statistics.median(nchw_decs):.2f} s")


if __name__ == "__main__":
    main()
