"""Seconds per training step of a config: eager, channels-last, compiled and both, in one run.

    python benchmarks/train_speed.py [--config configs/hific-cpu-vbr.toml] [--data DIR] [--steps 16]

The `[run]` keys `compile` and `channels_last` (docs/training.md, "Training speed") are only
worth setting where this shows them faster. Each mode gets a fresh Trainer from the same config
(randomly initialised: speed does not depend on the weights), `--warmup` untimed steps (the
compiled mode compiles in them) and `--steps` timed ones; ratios are against eager measured here,
so a loaded machine still gives comparable numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MODES = {
    "eager": dict(compile=False, channels_last=False),
    "channels_last": dict(compile=False, channels_last=True),
    "compiled": dict(compile=True, channels_last=False),
    "compiled+channels_last": dict(compile=True, channels_last=True),
}


def synthetic_photos(folder: Path, count: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):  # smooth gradients plus noise: enough for timing
        h, w = 512, 768
        ramp = np.linspace(0, 255, w)[None, :, None] * rng.random(3)
        noise = rng.normal(0, 20, (h, w, 3))
        Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8)).save(folder / f"s{i}.png")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs" / "hific-cpu-vbr.toml"))
    ap.add_argument("--data", default=None, help="image folder (default: the config's train_dir, else synthetic)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()

    import torch

    from hificodec.training.data import PhotoFolder
    from hificodec.training.config import TrainConfig
    from hificodec.training.trainer import Trainer

    base = TrainConfig.load(Path(args.config))
    base = dataclasses.replace(base, init_from="", init_from_name="", val_dir="")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or base.train_dir)
        if not data.is_dir():
            data = synthetic_photos(Path(tmp))
        folder = PhotoFolder(data, min_side=64)
        print(f"config {Path(args.config).name}: {base.architecture}, batch {base.batch_size} x {base.crop}^2; "
              f"data {data} ({len(folder)} images); torch {torch.__version__}, {torch.get_num_threads()} threads")
        results = {}
        for mode in args.modes.split(","):
            cfg = dataclasses.replace(base, **MODES[mode])
            trainer = Trainer(cfg, Path(tmp) / mode)
            trainer.attach_data(folder)
            trainer.step = cfg.stage1_steps  # stage 2 (with the GAN) when the config has one
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                trainer.train_step()
            warm = time.perf_counter() - t0
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                trainer.train_step()
                times.append(time.perf_counter() - t0)
            results[mode] = statistics.median(times)
            note = "" if not cfg.compile or trainer.compiled else " (no compiler here: ran eager)"
            print(f"{mode:<24} {results[mode]:.3f} s/step median, warm-up {warm:.1f} s{note}")
        if "eager" in results:
            for mode, seconds in results.items():
                print(f"{mode:<24} {results['eager'] / seconds:.2f}x the steps per second of eager")


if __name__ == "__main__":
    main()
