"""Does a model's fidelity on its training photos carry over to photos it never saw?

    python research/crop_fidelity.py WEIGHTS [WEIGHTS ...] [--train ../shared/data/train]
        [--heldout ../shared/data/kodak] [--crops 60] [--quality 1] [--beta 0]

For each weights file, mean PSNR and coded bpp over the same random 256-px crops (the trainer's
own sampler: random rescale of the short side to 256-768, crop) of the training photos and of a
held-out folder. PSNR is on the float crops and output, as the trainer logs it (no 8-bit
rounding, unlike `hfc eval`). Run on weights from successive training phases: if the training
crops gain and the held-out crops do not, the model is memorizing its training set
(docs/lab-notebook.md).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--train", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    ap.add_argument("--heldout", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--crops", type=int, default=60)
    ap.add_argument("--quality", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=0.0)
    args = ap.parse_args()

    import torch

    from hificodec.training.data import PhotoFolder, RandomCropSampler
    from hificodec.training.losses import bits_per_pixel
    from hificodec.zoo import load_model, model_info

    crop = 256
    # Drawn once, so every weights file sees the same crops and each folder is decoded once.
    crop_sets = {}
    for label, folder in (("train", args.train), ("held-out", args.heldout)):
        sampler = RandomCropSampler(PhotoFolder(folder, crop), crop, (256, 768), seed=7)
        crop_sets[label] = [sampler.batch(1) for _ in range(args.crops)]
    for weights in args.weights:
        model = load_model(model_info(weights)).eval()
        cells = [weights.name]
        for label, crops in crop_sets.items():
            psnrs, rates = [], []
            with torch.no_grad():
                for x in crops:
                    out = model(x, torch.full((1,), args.beta), torch.full((1,), args.quality))
                    mse = torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2).item()
                    psnrs.append(10 * math.log10(1 / mse))
                    rates.append(float(bits_per_pixel(out["coded_likelihoods"], crop * crop)))
            cells.append(f"{label} {statistics.mean(psnrs):.2f} dB at {statistics.mean(rates):.3f} bpp")
        print("  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
