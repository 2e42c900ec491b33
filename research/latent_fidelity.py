"""What caps a model's fidelity: the quantizer, or the encoder-generator pair itself?

    python research/latent_fidelity.py [IMAGE_OR_FOLDER ...] [--model hific-cpu-vbr] [--beta 0]

For each image and rate level, PSNR of the generator's output from the quantized latent (what a
.hfc file gives) and from the same latent unquantized (what any number of bits could give at
most, with this encoder and generator). If the two are close, more bits cannot buy fidelity:
only a better encoder-generator pair can (docs/lab-notebook.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="*", default=[str(ROOT / "examples" / "kodim23.png")])
    ap.add_argument("--model", default="hific-cpu-vbr")
    ap.add_argument("--beta", type=float, default=0.0)
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from hificodec.codec import Codec
    from hificodec.imaging.images import image_files, load_rgb
    from hificodec.metrics.quality import psnr
    from hificodec.nn.models import HiFiC

    codec = Codec.load(args.model, device="cpu")
    model = codec.model.eval()
    levels = list(range(model.rate_levels))
    print(f"{args.model} ({codec.info.digest[:12]}), beta {args.beta:g}: PSNR quantized / unquantized latent")
    print("image".ljust(16) + "".join(f"q{q} quant  q{q} unq   ".ljust(22) for q in levels))
    gaps: dict[int, list[float]] = {q: [] for q in levels}
    with torch.no_grad():
        for path in image_files([Path(p) for p in args.inputs]):
            rgb8 = load_rgb(path).rgb8
            h, w = rgb8.shape[:2]
            x = torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1)[None].float() / 255.0
            x = F.pad(x, (0, (-w) % HiFiC.stride, 0, (-h) % HiFiC.stride), mode="replicate")
            y = model.encoder(x)
            beta = torch.tensor([args.beta])
            cells = []
            for q in levels:
                gain, inverse_gain = model.gains(torch.tensor([float(q)]))
                y_hat, _, _ = model.latent_model(y * gain)

                def out(latent):
                    x_hat = model.generator(latent * inverse_gain, beta)[0, :, :h, :w]
                    return (x_hat.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

                quantized, unquantized = psnr(rgb8, out(y_hat)), psnr(rgb8, out(y * gain))
                gaps[q].append(unquantized - quantized)
                cells.append(f"{quantized:7.2f}  {unquantized:7.2f}".ljust(22))
            print(path.name[:15].ljust(16) + "".join(cells))
    for q in levels:
        print(f"q{q}: unquantized minus quantized, mean {statistics.mean(gaps[q]):.2f} dB")


if __name__ == "__main__":
    main()
