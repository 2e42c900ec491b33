"""What a benchmark run's rows say: means per configuration, models against the classical
codecs' per-image curves at matched bpp, weights against weights, and the project's quality
bars (docs/models.md). Pure functions of rows; no I/O."""

from __future__ import annotations

import math

import numpy as np

from hificodec.evaluation.classical import interpolate_log_bpp


def summarize(rows: list[dict]) -> list[dict]:
    """Means per (model, quality, beta) over images; times as medians."""
    groups: dict[tuple[str, float, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], float(r.get("quality", 0.0)), float(r["beta"])), []).append(r)
    out = []
    for (model, quality, beta), rs in sorted(groups.items()):
        out.append({
            "model": model, "quality": quality, "beta": beta, "images": len(rs),
            **{k: _mean(rs, k) for k in ("bpp", "psnr", "ms_ssim", "lpips")},
            "encode_s_median": float(np.median([float(r["encode_s"]) for r in rs])),
            "decode_s_median": float(np.median([float(r["decode_s"]) for r in rs])),
        })
    return out


def summarize_classical(rows: list[dict]) -> list[dict]:
    """Means per (codec, target) over images."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["codec"], float(r["target"])), []).append(r)
    out = []
    for (codec, target), rs in sorted(groups.items()):
        out.append({"codec": codec, "target": target, "images": len(rs),
                    **{k: _mean(rs, k) for k in ("bpp", "psnr", "ms_ssim", "lpips")},
                    "encode_s_median": float(np.median([float(r["encode_s"]) for r in rs])),
                    "decode_s_median": float(np.median([float(r["decode_s"]) for r in rs]))})
    return out


def _mean(rows: list[dict], key: str) -> float:
    vals = [float(r[key]) for r in rows if not math.isnan(float(r[key]))]
    return sum(vals) / len(vals) if vals else float("nan")


def matched_comparison(model_rows: list[dict], classical_rows: list[dict], factors=(1.0, 2.0)) -> list[dict]:
    """For every model point (model, quality, beta) and codec: the codec's per-image curve
    interpolated (over log bpp) at the bpp the model got on each image, times each factor;
    averaged over the images where the curve covers that bpp."""

    curves: dict[tuple[str, str], list[dict]] = {}
    for r in classical_rows:
        curves.setdefault((r["codec"], r["image"]), []).append(r)
    codecs = sorted({r["codec"] for r in classical_rows})
    points: dict[tuple[str, float, float], list[dict]] = {}
    for r in model_rows:
        points.setdefault((r["model"], float(r.get("quality", 0.0)), float(r["beta"])), []).append(r)
    out = []
    for (model, quality, beta), rs in sorted(points.items()):
        for codec in codecs:
            for factor in factors:
                per_image = []
                for r in rs:
                    curve = curves.get((codec, r["image"]), [])
                    bpp = float(r["bpp"]) * factor
                    vals = {k: interpolate_log_bpp([(float(c["bpp"]), float(c[k])) for c in curve], bpp)
                            for k in ("psnr", "ms_ssim", "lpips")}
                    if not math.isnan(vals["psnr"]):
                        per_image.append({"bpp": bpp, **vals, "model_psnr": float(r["psnr"]),
                                          "model_lpips": float(r["lpips"]), "model_bpp": float(r["bpp"])})
                if not per_image:
                    continue
                # means over the images the codec's curve covers, for the model and the codec alike
                keys = ("bpp", "psnr", "ms_ssim", "lpips", "model_bpp", "model_psnr", "model_lpips")
                out.append({"model": model, "quality": quality, "beta": beta, "codec": codec, "factor": factor,
                            "images": len(per_image), "of_images": len(rs),
                            **{k: _mean(per_image, k) for k in keys},
                            "lpips_wins": sum(p["model_lpips"] < p["lpips"] for p in per_image),
                            "psnr_wins": sum(p["model_psnr"] >= p["psnr"] for p in per_image)})
    return out


def compare_weights(candidate_rows: list[dict], reference_rows: list[dict]) -> list[dict]:
    """Is a candidate's weights file better than the reference's *at the same rate*? (Training
    phases land at other bpp than their predecessors on Kodak, so means at each quality mislead.)
    Per image and beta, the reference's curve over its qualities is interpolated over log bpp
    at the bpp the candidate got; beyond the reference's lowest or highest rate it is extended
    along its last segment, and the images where that happened are counted. One row per
    candidate (quality, beta): means over the images, with the differences candidate - reference."""

    curves: dict[tuple[str, float], list[dict]] = {}
    for r in reference_rows:
        curves.setdefault((r["image"], float(r["beta"])), []).append(r)
    points: dict[tuple[float, float], list[dict]] = {}
    for r in candidate_rows:
        points.setdefault((float(r.get("quality", 0.0)), float(r["beta"])), []).append(r)
    out = []
    for (quality, beta), rows in sorted(points.items()):
        per_image, extended = [], 0
        for r in rows:
            curve = curves.get((r["image"], beta), [])
            bpp = float(r["bpp"])
            ref = {k: interpolate_log_bpp([(float(c["bpp"]), float(c[k])) for c in curve], bpp, extend=True)
                   for k in ("psnr", "lpips")}
            if math.isnan(ref["psnr"]):  # fewer than two reference points
                continue
            extended += not min(float(c["bpp"]) for c in curve) <= bpp <= max(float(c["bpp"]) for c in curve)
            per_image.append({"bpp": bpp, "psnr": float(r["psnr"]), "lpips": float(r["lpips"]),
                              "reference_psnr": ref["psnr"], "reference_lpips": ref["lpips"]})
        if not per_image:
            continue
        row = {"quality": quality, "beta": beta, "images": len(per_image), "extended": extended,
               **{k: _mean(per_image, k) for k in per_image[0]},
               "lpips_wins": sum(p["lpips"] < p["reference_lpips"] for p in per_image)}
        row["psnr_gain"] = row["psnr"] - row["reference_psnr"]
        row["lpips_gain"] = row["reference_lpips"] - row["lpips"]
        out.append(row)
    return out


DECODE_BOUND_S = 1.5  # per Kodak image on 2 CPU cores


def quality_targets(summary: dict) -> list[dict]:
    """Per model rate level, the project's quality bars (docs/models.md) checked on this run:
    at the highest beta, LPIPS below every classical codec at the same bpp and below AVIF's and
    HEIC's at twice the bpp; at beta 0, PSNR at least WebP's at the same bpp; PSNR and LPIPS both
    falling at every step of the beta grid; median decode within DECODE_BOUND_S. Comparisons
    use the per-image interpolated means of ``summary["matched"]``."""

    out = []
    points = sorted({(m["model"], m["quality"]) for m in summary["models"]})
    for model, quality in points:
        chain = sorted((m for m in summary["models"] if (m["model"], m["quality"]) == (model, quality)),
                       key=lambda m: m["beta"])
        low, high = chain[0], chain[-1]
        matched = {(m["beta"], m["codec"], m["factor"]): m for m in summary["matched"]
                   if (m["model"], m["quality"]) == (model, quality)}
        same_rate = {c: m for (b, c, f), m in matched.items() if b == high["beta"] and f == 1.0}
        double = {c: m for (b, c, f), m in matched.items()
                  if b == high["beta"] and f == 2.0 and c in ("avif", "heic")}
        webp = matched.get((low["beta"], "webp", 1.0))
        row = {"model": model, "quality": quality, "bpp": high["bpp"], "beta": high["beta"], "lpips": high["lpips"],
               "best_codec": None, "best_codec_lpips": float("nan"), "lpips_below_all": None,
               "lpips_2x": {c: m["lpips"] for c, m in double.items()}, "lpips_below_2x": None,
               "psnr_beta0": low["psnr"], "webp_psnr": webp["psnr"] if webp else float("nan"),
               "psnr_at_least_webp": (webp["model_psnr"] >= webp["psnr"]) if webp else None,
               "beta_monotonic": len(chain) > 1 and all(a["psnr"] > b["psnr"] and a["lpips"] > b["lpips"]
                                                        for a, b in zip(chain, chain[1:])),
               "decode_s": max(m["decode_s_median"] for m in chain),
               "hific_lpips": interpolate_log_bpp(HIFIC_PUBLISHED, high["bpp"])}
        if same_rate:
            best = min(same_rate.values(), key=lambda m: m["lpips"])
            row.update(best_codec=best["codec"], best_codec_lpips=best["lpips"],
                       lpips_below_all=all(m["model_lpips"] < m["lpips"] for m in same_rate.values()))
        if double:
            row["lpips_below_2x"] = all(m["model_lpips"] < m["lpips"] for m in double.values())
        row["decode_ok"] = row["decode_s"] <= DECODE_BOUND_S
        out.append(row)
    return out


HIFIC_PUBLISHED = [(0.183, 0.069), (0.351, 0.043), (0.538, 0.028)]  # Kodak (bpp, LPIPS), HiFiC lo/mi/hi
