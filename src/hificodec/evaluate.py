"""Evaluation of shipped models on a folder of images: real .hfc file sizes, PSNR (RGB),
MS-SSIM and LPIPS-Alex at several betas, encode/decode wall-clock.

    hfc eval ../shared/data/kodak --models hific-cpu-vbr --betas 0,2.56 -o /tmp/eval

Each image is encoded once per quality (rate level); every beta is decoded from that same file. Results go to a
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


def model_qualities(codec) -> list[float]:
    """The trained rate levels of a model: 0 for a single-rate model, 0, 1, 2 for lo/mi/hi."""
    return [float(q) for q in range(codec.model.rate_levels)]


def evaluate_model(codec, images: list[Path], betas: list[float], out_dir: Path | None = None,
                   progress: bool = True, qualities: list[float] | None = None) -> list[dict]:
    """One row per (quality, image, beta). Rows already in out_dir/per_image.csv are reused."""
    from tqdm import tqdm

    from . import bitstream
    from .images import load_rgb

    lpips_metric = LPIPSMetric()
    qualities = model_qualities(codec) if qualities is None else qualities
    done: dict[tuple[str, float, str, float], dict] = {}
    csv_path = out_dir / "per_image.csv" if out_dir else None
    if csv_path and csv_path.is_file():
        with open(csv_path) as f:
            for row in csv.DictReader(f):
                done[_row_key(row)] = row
    rows: list[dict] = []
    name = codec.info.name
    for path in tqdm(images, disable=not progress, desc=name, unit="img"):
        keys = [(name, float(q), path.name, float(b)) for q in qualities for b in betas]
        if all(k in done for k in keys):
            rows += [done[k] for k in keys]
            continue
        original = load_rgb(path).rgb8
        h, w = original.shape[:2]
        for quality in qualities:
            t0 = time.perf_counter()
            data = codec.encode(original, quality)
            encode_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            hfc = bitstream.parse(data)
            y_hat = codec.latent(hfc)  # entropy-decoded once; every beta reuses it
            latent_s = time.perf_counter() - t0
            for beta in betas:
                t0 = time.perf_counter()
                recon = codec.generate(hfc, y_hat, beta)
                decode_s = latent_s + time.perf_counter() - t0  # what a single-beta decode costs
                rows.append({
                    "model": name, "quality": float(quality), "image": path.name, "beta": float(beta),
                    "width": w, "height": h, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                    "psnr": psnr(original, recon), "ms_ssim": ms_ssim(original, recon),
                    "lpips": lpips_metric(original, recon), "encode_s": encode_s, "decode_s": decode_s,
                })
        if csv_path:
            others = [r for k, r in done.items() if k[0] != name]  # other models' rows
            _write_csv(csv_path, rows + others)
    return rows


def _row_key(row: dict) -> tuple[str, float, str, float]:
    return row["model"], float(row.get("quality", 0.0)), row["image"], float(row["beta"])


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
    """Means per (model, quality, beta) over images; times as medians."""
    groups: dict[tuple[str, float, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], float(r.get("quality", 0.0)), float(r["beta"])), []).append(r)
    out = []
    for (model, quality, beta), rs in sorted(groups.items()):
        def mean(key):
            vals = [float(r[key]) for r in rs if not math.isnan(float(r[key]))]
            return sum(vals) / len(vals) if vals else float("nan")

        out.append({
            "model": model, "quality": quality, "beta": beta, "images": len(rs), "bpp": mean("bpp"), "psnr": mean("psnr"),
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
CARD_HEADER = "| model | data | crop | stage 1 / 2 steps | train h | quality | beta | Kodak bpp | PSNR | MS-SSIM | LPIPS |"


def card_rows(name: str, training: dict, summary: list[dict]) -> list[str]:
    """Model-card table rows (one per beta) for docs/models.md."""
    rows = []
    for s in summary:
        if s["model"] != name:
            continue
        rows.append(
            f"| {name} | {Path(training.get('train_dir', '?')).name} ({training.get('images', '?')} photos) "
            f"| {training.get('crop')} | {training.get('stage1_steps')} / {training.get('stage2_steps')} "
            f"| {training.get('train_hours')} | {s['quality']:g} | {s['beta']:g} | {s['bpp']:.3f} | {s['psnr']:.2f} "
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
