"""What `hfc eval` leaves for people: plots, side-by-side crop sheets and a Markdown report.

All of it is drawn from summary.json / the CSV rows, so a report can be regenerated without
re-running the benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hificodec.evaluation.analysis import DECODE_BOUND_S, HIFIC_PUBLISHED

CODEC_COLORS = {"jpeg": "#8c564b", "webp": "#2ca02c", "avif": "#1f77b4", "jxl": "#9467bd", "heic": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rate_plots(summary: dict, out_dir: Path) -> list[Path]:
    """bpp vs PSNR / MS-SSIM / LPIPS (and FID / KID when measured): one curve per codec, one
    curve per beta across each model's rate levels, the beta chain at each rate level."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    metrics = [("psnr", "PSNR (dB, higher is better)"), ("ms_ssim", "MS-SSIM (higher is better)"),
               ("lpips", "LPIPS-Alex (lower is better)")]
    if any("fid" in s for s in summary["models"]):
        metrics += [("fid", "FID, 256px patches (lower is better)"), ("kid", "KID (lower is better)")]
    for key, label in metrics:
        fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
        for codec in sorted({c["codec"] for c in summary["classical"]}):
            pts = sorted((c["bpp"], c.get(key, math.nan)) for c in summary["classical"] if c["codec"] == codec)
            pts = [p for p in pts if not math.isnan(p[1])]
            if pts:
                ax.plot(*zip(*pts), "-o", ms=3, lw=1.2, color=CODEC_COLORS.get(codec), label=codec)
        for model in sorted({m["model"] for m in summary["models"]}):
            rows = [m for m in summary["models"] if m["model"] == model and not math.isnan(m.get(key, math.nan))]
            betas = sorted({m["beta"] for m in rows})
            cmap = plt.get_cmap("Reds")
            for i, beta in enumerate(betas):
                pts = sorted((m["bpp"], m[key]) for m in rows if m["beta"] == beta)
                shade = cmap(0.35 + 0.65 * i / max(1, len(betas) - 1))
                ax.plot(*zip(*pts), "-s", ms=4, lw=1.5, color=shade, label=f"{model} beta={beta:g}")
            for quality in sorted({m["quality"] for m in rows}):  # the beta chain at one rate
                chain = sorted(((m["beta"], m["bpp"], m[key]) for m in rows if m["quality"] == quality))
                ax.plot([c[1] for c in chain], [c[2] for c in chain], ":", color="black", lw=0.8)
        if key == "lpips":
            ax.plot(*zip(*HIFIC_PUBLISHED), "k*--", ms=7, lw=0.8, label="HiFiC (published)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # e.g. MS-SSIM is NaN on images under 161 px
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"bpp_vs_{key}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    if any("fid" in s for s in summary["models"]):
        written.append(_psnr_vs_fid(summary, out_dir, plt))
    return written


def _psnr_vs_fid(summary: dict, out_dir: Path, plt) -> Path:
    """The multi-realism paper's Fig. 4: at a fixed rate, beta trades PSNR for FID."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    for model in sorted({m["model"] for m in summary["models"]}):
        for quality in sorted({m["quality"] for m in summary["models"] if m["model"] == model}):
            chain = sorted((m["beta"], m["fid"], m["psnr"], m["bpp"]) for m in summary["models"]
                           if m["model"] == model and m["quality"] == quality and "fid" in m)
            if not chain:
                continue
            ax.plot([c[1] for c in chain], [c[2] for c in chain], "-o", ms=4,
                    label=f"{model} q={quality:g} ({np.mean([c[3] for c in chain]):.2f} bpp)")
            for beta, fid, p, _ in (chain[0], chain[-1]):
                ax.annotate(f"beta={beta:g}", (fid, p), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for c in summary["classical"]:
        if "fid" in c:
            ax.plot(c["fid"], c["psnr"], "^", ms=5, color=CODEC_COLORS.get(c["codec"]))
            ax.annotate(f"{c['codec']} {c['bpp']:.2f}", (c["fid"], c["psnr"]), fontsize=6, xytext=(3, -8),
                        textcoords="offset points")
    ax.set_xlabel("FID (lower is more realistic)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "psnr_vs_fid.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def detailed_crop(rgb8: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most texture (gradient energy)."""
    gray = rgb8.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    h, w = energy.shape
    best, corner = -1.0, (0, 0)
    step = max(8, size // 4)
    for top in range(0, max(1, h - size + 1), step):
        for left in range(0, max(1, w - size + 1), step):
            e = float(energy[top : top + size, left : left + size].sum())
            if e > best:
                best, corner = e, (top, left)
    return corner


def crop_sheet(panels: list[tuple[str, np.ndarray]], path: Path, size: int = 256, zoom: int = 2) -> Path:
    """One row of equally cropped panels (original first), each labelled, zoomed for viewing."""
    from PIL import Image, ImageDraw

    from hificodec.imaging.images import atomic_write, encode_image

    top, left = detailed_crop(panels[0][1], size)
    label_h = 22
    tiles = []
    for label, rgb in panels:
        crop = Image.fromarray(np.ascontiguousarray(rgb[top : top + size, left : left + size]))
        crop = crop.resize((crop.width * zoom, crop.height * zoom), Image.NEAREST)
        tile = Image.new("RGB", (crop.width, crop.height + label_h), "white")
        tile.paste(crop, (0, label_h))
        ImageDraw.Draw(tile).text((4, 4), label, fill="black")
        tiles.append(tile)
    gap = 6
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode_image(np.asarray(sheet), "PNG"))
    return path


def _fmt(v, digits: int) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _metric_table(rows: list[dict], keys: dict[str, str], has_fid: bool) -> list[str]:
    """A Markdown table: the identifying ``keys`` (name -> format), then the metrics."""
    metrics = [("bpp", 3), ("psnr", 2), ("ms_ssim", 4), ("lpips", 4)] + ([("fid", 1), ("kid", 4)] if has_fid else [])
    titles = {"bpp": "bpp", "psnr": "PSNR", "ms_ssim": "MS-SSIM", "lpips": "LPIPS", "fid": "FID", "kid": "KID"}
    header = list(keys) + [titles[k] for k, _ in metrics] + ["decode s (median)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [fmt.format(r[k]) for k, fmt in keys.items()]
        cells += [_fmt(r.get(k), digits) for k, digits in metrics] + [_fmt(r["decode_s_median"], 3)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def markdown(summary: dict, plots: list[Path], sheets: list[Path], base: Path, notes: str = "",
             sheet_source: str = "") -> str:
    """The report: tables of every point, the matched-rate comparison, plots and crop sheets.
    Links are relative to ``base`` (the folder the Markdown file lives in)."""
    def rel(p: Path) -> str:
        return str(Path(p).resolve().relative_to(base.resolve())) if base else str(p)

    has_fid = any("fid" in m for m in summary["models"])
    lines = [f"Dataset: `{summary['dataset']}` ({summary['images']} images). bpp from real file sizes; "
             "PSNR over RGB; MS-SSIM (pytorch-msssim); LPIPS-Alex v0.1"
             + ("; FID/KID on 256x256 patches (grid + half-shifted grid, HiFiC appendix A.7)." if has_fid else "."),
             ""]
    if summary.get("machine"):
        lines += [f"Timings (encode/decode seconds) measured on: {summary['machine']}.", ""]
    patches = max((m.get("patches", 0) for m in summary["models"] + summary["classical"]), default=0)
    if has_fid and patches < 2048:
        lines += [f"FID/KID here use {patches} patches per point, fewer than the 2048 Inception features: "
                  "compare them within this report only, not with published values.", ""]
    if notes:
        lines += [notes, ""]
    lines += ["## hificodec models", ""]
    lines += _metric_table(summary["models"], {"model": "{}", "quality": "{:g}", "beta": "{:g}"}, has_fid)
    if summary["classical"]:
        lines += ["", "## Classical codecs (setting closest to each target, per image)", ""]
        lines += _metric_table(summary["classical"], {"codec": "{}", "target": "{:g}"}, has_fid)
        lines += ["", "Versions: " + "; ".join(f"{k}: {v}" for k, v in summary["codec_versions"].items()),
                  "Settings: " + "; ".join(f"{k}: {v}" for k, v in summary["codec_settings"].items())]
    if summary.get("targets"):

        lines += ["", "## Against the quality bars", "",
                  "Per rate level (docs/models.md): at the highest beta, LPIPS below every classical codec at "
                  "the same bpp and below AVIF and HEIC at twice it; at beta 0, PSNR at least WebP's at the same "
                  "bpp (both from the per-image interpolated curves below); PSNR and LPIPS falling at every step "
                  f"of the beta grid; median decode within {DECODE_BOUND_S:g} s. *HiFiC* is the published Kodak "
                  "LPIPS of Mentzer et al. 2020 interpolated at this bpp (– outside 0.183-0.538 bpp).", "",
                  "| model q | bpp | LPIPS (beta max) | best codec LPIPS, same bpp | below all? | AVIF / HEIC "
                  "LPIPS, 2x bpp | below both? | PSNR beta 0 | WebP PSNR | at least WebP? | beta monotonic? "
                  "| decode s | HiFiC LPIPS |",
                  "|" + "---|" * 13]
        yes = {True: "yes", False: "**no**", None: "–"}
        for t in summary["targets"]:
            double = " / ".join(_fmt(t["lpips_2x"].get(c), 4) for c in ("avif", "heic"))
            best = f"{_fmt(t['best_codec_lpips'], 4)} ({t['best_codec']})" if t["best_codec"] else "–"
            lines.append(f"| {t['model']} q{t['quality']:g} | {t['bpp']:.3f} | {t['lpips']:.4f} | {best} | "
                         f"{yes[t['lpips_below_all']]} | {double} | {yes[t['lpips_below_2x']]} | "
                         f"{t['psnr_beta0']:.2f} | {_fmt(t['webp_psnr'], 2)} | {yes[t['psnr_at_least_webp']]} | "
                         f"{yes[t['beta_monotonic']]} | {t['decode_s']:.2f} {yes[t['decode_ok']]} | "
                         f"{_fmt(t['hific_lpips'], 3)} |")
    if summary["matched"]:
        lines += ["", "## At the bpp each image actually got", "",
                  "Each codec's per-image curve interpolated (over log bpp) at the model's bpp on that image "
                  "(1x) and at twice it (2x); means over the images the curve covers. *wins* counts images "
                  "where the model is better (LPIPS lower / PSNR at least as high).", "",
                  "| model q | beta | codec | x bpp | images | bpp | codec PSNR | model PSNR | PSNR wins "
                  "| codec LPIPS | model LPIPS | LPIPS wins |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        betas = sorted({m["beta"] for m in summary["matched"]})
        shown = {betas[0], betas[-1]}
        for m in summary["matched"]:
            if m["beta"] not in shown:
                continue
            lines.append(f"| {m['model']} q{m['quality']:g} | {m['beta']:g} | {m['codec']} | {m['factor']:g}x | "
                         f"{m['images']}/{m['of_images']} | {m['bpp']:.3f} | {m['psnr']:.2f} | {m['model_psnr']:.2f} | "
                         f"{m['psnr_wins']} | {m['lpips']:.4f} | {m['model_lpips']:.4f} | {m['lpips_wins']} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({rel(p)})" for p in plots]
    if sheets:
        source = f", coded with {sheet_source}" if sheet_source else ""
        lines += ["", "## Side by side", "",
                  f"Most detailed 256x256 region of each image, zoomed 2x{source}: original | beta 0 | beta 2.56 | "
                  "the classical codec with the lowest LPIPS at the same bpp | the same codec at twice the bpp.", ""]
        lines += [f"![{Path(p).stem}]({rel(p)})" for p in sheets]
    return "\n".join(lines) + "\n"
