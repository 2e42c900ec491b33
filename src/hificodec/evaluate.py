"""Evaluation of shipped models on a folder of images: real .hfc file sizes, PSNR (RGB),
MS-SSIM and LPIPS-Alex at several betas, encode/decode wall-clock.

    hfc eval ../shared/data/kodak --models hific-cpu-mi --betas 0,2.56 -o /tmp/eval

Each image is encoded once; every beta is decoded from that same file. Results go to a
per-image CSV and a summary JSON; finished images are skipped when a run is repeated with the
same output folder, so an interrupted evaluation resumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over all RGB samples of two uint8 images (one MSE for the whole image)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def _to_tensor(rgb8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1).unsqueeze(0).float()


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data_range 255); NaN for images too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) <= 160:  # the 5-scale, 11-tap pyramid needs > 160 px
        return float("nan")
    return float(_ms_ssim(_to_tensor(a), _to_tensor(b), data_range=255))


class LPIPSMetric:
    """LPIPS-Alex v0.1 on uint8 images (scaled to [-1, 1], as the lpips package expects)."""

    def __init__(self):
        from .losses import LPIPSLoss

        self.loss = LPIPSLoss("alex")

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.loss(_to_tensor(a) / 255.0, _to_tensor(b) / 255.0).mean())


def evaluate_model(codec, images: list[Path], betas: list[float], out_dir: Path | None = None,
                   progress: bool = True) -> list[dict]:
    """One row per (image, beta). Rows already in out_dir/per_image.csv are reused."""
    from tqdm import tqdm

    from . import bitstream
    from .images import load_rgb

    lpips_metric = LPIPSMetric()
    done: dict[tuple[str, str, float], dict] = {}
    csv_path = out_dir / "per_image.csv" if out_dir else None
    if csv_path and csv_path.is_file():
        with open(csv_path) as f:
            for row in csv.DictReader(f):
                done[(row["model"], row["image"], float(row["beta"]))] = row
    rows: list[dict] = []
    for path in tqdm(images, disable=not progress, desc=codec.info.name, unit="img"):
        keys = [(codec.info.name, path.name, float(b)) for b in betas]
        if all(k in done for k in keys):
            rows += [done[k] for k in keys]
            continue
        original = load_rgb(path).rgb8
        h, w = original.shape[:2]
        t0 = time.perf_counter()
        data = codec.encode(original)
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        hfc = bitstream.parse(data)
        y_hat = codec.latent(hfc)  # entropy-decoded once; every beta reuses it
        latent_s = time.perf_counter() - t0
        for beta in betas:
            t0 = time.perf_counter()
            recon = codec.generate(hfc, y_hat, beta)
            decode_s = latent_s + time.perf_counter() - t0  # what a single-beta decode costs
            row = {
                "model": codec.info.name, "image": path.name, "beta": float(beta), "width": w, "height": h,
                "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                "psnr": psnr(original, recon), "ms_ssim": ms_ssim(original, recon),
                "lpips": lpips_metric(original, recon), "encode_s": encode_s, "decode_s": decode_s,
            }
            rows.append(row)
        if csv_path:
            others = [r for k, r in done.items() if k[0] != codec.info.name]  # other models' rows
            _write_csv(csv_path, rows + others)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    from .images import atomic_write

    if not rows:
        return
    fields = list(rows[0].keys())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def summarize(rows: list[dict]) -> list[dict]:
    """Means per (model, beta) over images; decode time as the median."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], float(r["beta"])), []).append(r)
    out = []
    for (model, beta), rs in sorted(groups.items()):
        def mean(key):
            vals = [float(r[key]) for r in rs if not math.isnan(float(r[key]))]
            return sum(vals) / len(vals) if vals else float("nan")

        out.append({
            "model": model, "beta": beta, "images": len(rs), "bpp": mean("bpp"), "psnr": mean("psnr"),
            "ms_ssim": mean("ms_ssim"), "lpips": mean("lpips"),
            "encode_s_median": float(np.median([float(r["encode_s"]) for r in rs])),
            "decode_s_median": float(np.median([float(r["decode_s"]) for r in rs])),
        })
    return out


def eval_main(dataset: Path, model_names: list[str], betas: list[float], out_dir: Path, device: str = "cpu") -> list[dict]:
    from .codec import Codec
    from .images import image_files

    images = image_files([dataset])
    if not images:
        raise ValueError(f"no images in {dataset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in model_names:
        rows += evaluate_model(Codec.load(name, device), images, betas, out_dir)
    summary = summarize(rows)
    from .images import atomic_write

    atomic_write(out_dir / "summary.json", json.dumps({"dataset": str(dataset), "summary": summary}, indent=2).encode())
    return summary


MODEL_CARD = Path(__file__).resolve().parents[2] / "docs" / "models.md"
CARD_HEADER = "| model | data | crop | stage 1 / 2 steps | train h | beta | Kodak bpp | PSNR | MS-SSIM | LPIPS |"


def card_rows(name: str, training: dict, summary: list[dict]) -> list[str]:
    """Model-card table rows (one per beta) for docs/models.md."""
    rows = []
    for s in summary:
        if s["model"] != name:
            continue
        rows.append(
            f"| {name} | {Path(training.get('train_dir', '?')).name} ({training.get('images', '?')} photos) "
            f"| {training.get('crop')} | {training.get('stage1_steps')} / {training.get('stage2_steps')} "
            f"| {training.get('train_hours')} | {s['beta']:g} | {s['bpp']:.3f} | {s['psnr']:.2f} "
            f"| {s['ms_ssim']:.4f} | {s['lpips']:.4f} |"
        )
    return rows


def update_model_card(name: str, rows: list[str], card: Path = MODEL_CARD) -> None:
    """Replaces the rows of `name` in the measurements table of docs/models.md."""
    lines = card.read_text().splitlines() if card.is_file() else []
    if CARD_HEADER not in lines:
        lines += ["", CARD_HEADER, "|" + "---|" * (CARD_HEADER.count("|") - 1)]
    kept = [l for l in lines if not l.startswith(f"| {name} |")]
    at = kept.index(CARD_HEADER) + 2
    kept[at:at] = rows
    card.write_text("\n".join(kept) + "\n")
