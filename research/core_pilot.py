"""Core pilot: how fast an architecture learns rate + MSE on this CPU, on a fixed protocol.

Trains the rate-distortion core only (encoder, hyperprior, generator at beta 0; no gains, no
rate controller, no LPIPS, no GAN) on loss = lambda * 255^2 * MSE + bpp, the protocol of the
reference run in ../shared/tools/mse_hyperprior_pilot.py (crop 128, batch 8, bf16 autocast,
Adam 1e-4, aux 1e-3, gradient clip 1, images rescaled once so the short side is 256-768), and
evaluates all of Kodak at fixed intervals: bpp of the rounded latents, PSNR of the 8-bit output.
``--arch bmshj2018`` trains CompressAI's bmshj2018-hyperprior (N=128, M=192) on the same data
and schedule, so a project architecture and the reference can run side by side in one run, each
on its own thread. Prints one JSON line per evaluation (and to --log).

    python research/core_pilot.py --arch hific-cpu-gdn --minutes 90 --threads 1 --log /tmp/gdn.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hificodec.imaging.images import image_files, load_rgb  # noqa: E402
from hificodec.training.losses import bits_per_pixel  # noqa: E402
from hificodec.nn.models import CONFIGS, HiFiC  # noqa: E402


class _IgnoreBeta(torch.nn.Module):
    """CompressAI's synthesis transform in G's place (which takes beta)."""

    def __init__(self, synthesis: torch.nn.Module):
        super().__init__()
        self.synthesis = synthesis

    def forward(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.synthesis(y_hat)


class ProjectCore(torch.nn.Module):
    """A project architecture's E -> hyperprior -> G(beta = 0), single rate. ``swap`` puts
    CompressAI's bmshj2018 (N=128, M=192) analysis ("E"), synthesis ("G") or both ("EG") in
    place of the project's, inside the project's entropy model and training (a bisection of
    what separates the two)."""

    def __init__(self, arch: str, decoder_noise: bool = False, swap: str = ""):
        super().__init__()
        self.model = HiFiC(CONFIGS[arch])
        self.decoder_noise = decoder_noise
        if swap:
            from compressai.models import ScaleHyperprior

            reference = ScaleHyperprior(128, self.model.config.latent_channels)
            if "E" in swap:
                self.model.encoder = reference.g_a
            if "G" in swap:
                self.model.generator = _IgnoreBeta(reference.g_s)

    def forward(self, x: torch.Tensor, autocast) -> tuple[torch.Tensor, dict, dict]:
        with autocast:
            y = self.model.encoder(x)
        y = y.float()
        y_hat, likelihoods, coded = self.model.latent_model(y)
        if self.decoder_noise and self.training:  # G trains on y + U(-1/2, 1/2), as bmshj2018's synthesis does
            y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        with autocast:
            x_hat = self.model.generator(y_hat, torch.zeros(x.shape[0]))
        return x_hat.float(), likelihoods, coded

    def aux_loss(self) -> torch.Tensor:
        return self.model.latent_model.aux_loss()


class ReferenceCore(torch.nn.Module):
    """CompressAI's bmshj2018-hyperprior (N=128, M=192), as the reference run trains it."""

    def __init__(self):
        super().__init__()
        from compressai.zoo import bmshj2018_hyperprior

        self.net = bmshj2018_hyperprior(quality=3, pretrained=False)

    def forward(self, x: torch.Tensor, autocast) -> tuple[torch.Tensor, dict, dict]:
        with autocast:
            out = self.net(x)
        likelihoods = {k: v.float() for k, v in out["likelihoods"].items()}
        # in eval mode CompressAI's forward already rounds: these likelihoods are the coded ones
        return out["x_hat"].float(), likelihoods, likelihoods

    def aux_loss(self) -> torch.Tensor:
        return self.net.aux_loss()


def load_training_images(folder: Path, crop: int, rng: random.Random) -> list[np.ndarray]:
    images = []
    for path in image_files([folder]):
        try:
            im = Image.fromarray(load_rgb(path).rgb8)
        except Exception:  # noqa: BLE001 - a pilot skips what it cannot read
            continue
        scale = rng.uniform(256, 768) / min(im.size)
        size = (max(crop, round(im.size[0] * scale)), max(crop, round(im.size[1] * scale)))
        images.append(np.asarray(im.resize(size, Image.LANCZOS)))
    return images


def draw_batch(images: list[np.ndarray], crop: int, size: int, rng: random.Random) -> torch.Tensor:
    out = []
    for _ in range(size):
        a = images[rng.randrange(len(images))]
        top, left = rng.randrange(a.shape[0] - crop + 1), rng.randrange(a.shape[1] - crop + 1)
        c = a[top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        out.append(torch.from_numpy(c.copy()).permute(2, 0, 1))
    return torch.stack(out).float() / 255


@torch.no_grad()
def evaluate(core: torch.nn.Module, kodak: list[torch.Tensor], autocast) -> dict:
    core.eval()
    bpps, psnrs = [], []
    for x in kodak:
        x_hat, _, coded = core(x[None], autocast)
        x8 = (x_hat.clamp(0, 1) * 255).round() / 255
        psnrs.append(10 * math.log10(1 / float((x8 - x[None]).pow(2).mean())))
        bpps.append(float(bits_per_pixel(coded, x.shape[-2] * x.shape[-1])))
    core.train()
    return {"kodak_bpp": round(float(np.mean(bpps)), 4), "kodak_psnr": round(float(np.mean(psnrs)), 3),
            "per_image_bpp": [round(b, 4) for b in bpps], "per_image_psnr": [round(p, 3) for p in psnrs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="a project architecture, or bmshj2018 (the reference)")
    parser.add_argument("--data", default="../shared/data", help="folder with train/ and kodak/")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--eval-every", type=float, default=10.0, help="minutes between Kodak evaluations")
    parser.add_argument("--lmbda", type=float, default=0.0067, help="distortion weight per MSE on 0..1 * 255^2")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--decoder-noise", action="store_true",
                        help="a project architecture's G trains on y plus uniform noise instead of y rounded "
                             "straight-through (evaluation always rounds)")
    parser.add_argument("--swap", default="", choices=["", "E", "G", "EG"],
                        help="bmshj2018's analysis (E), synthesis (G) or both in place of the project's")
    parser.add_argument("--log", type=Path, help="also append the JSON lines here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    data = Path(args.data)
    t0 = time.time()
    images = load_training_images(data / "train", args.crop, rng)
    kodak = [torch.from_numpy(load_rgb(p).rgb8.copy()).permute(2, 0, 1).float() / 255
             for p in image_files([data / "kodak"])]
    print(f"{len(images)} training images, {len(kodak)} Kodak images loaded in {time.time() - t0:.0f} s", flush=True)

    core = ReferenceCore() if args.arch == "bmshj2018" else ProjectCore(args.arch, args.decoder_noise, args.swap)
    aux_params = [p for n, p in core.named_parameters() if n.endswith("quantiles")]
    main_params = [p for n, p in core.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    opt_aux = torch.optim.Adam(aux_params, lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16)
    print(json.dumps({"arch": args.arch, "decoder_noise": args.decoder_noise, "swap": args.swap, "parameters": sum(p.numel() for p in main_params),
                      "threads": args.threads, "lmbda": args.lmbda, "crop": args.crop, "batch": args.batch}), flush=True)

    start, step, next_eval, train_seconds = time.time(), 0, 0.0, 0.0
    while True:
        minutes = train_seconds / 60  # training time only: evaluations do not count
        if minutes >= next_eval or minutes >= args.minutes:
            record = {"arch": args.arch + ("+noise" if args.decoder_noise else "") + (f"+swap{args.swap}" if args.swap else ""), "minutes": round(minutes, 1), "wall_minutes": round((time.time() - start) / 60, 1),
                      "step": step, **evaluate(core, kodak, autocast)}
            line = json.dumps(record)
            print(line, flush=True)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(line + "\n")
            next_eval += args.eval_every
            if minutes >= args.minutes:
                break
        t = time.time()
        x = draw_batch(images, args.crop, args.batch, rng)
        x_hat, likelihoods, _ = core(x, autocast)
        mse = (x_hat - x).pow(2).mean()
        bpp = bits_per_pixel(likelihoods, x.shape[-2] * x.shape[-1]).mean()
        loss = args.lmbda * 255**2 * mse + bpp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux = core.aux_loss()
        opt_aux.zero_grad(set_to_none=True)
        aux.backward()
        opt_aux.step()
        step += 1
        train_seconds += time.time() - t
        if step % 200 == 0:
            print(f"step {step} {train_seconds / 60:.1f} min loss {float(loss):.3f} bpp {float(bpp):.3f} "
                  f"psnr {10 * math.log10(1 / float(mse)):.2f}", flush=True)


if __name__ == "__main__":
    main()
