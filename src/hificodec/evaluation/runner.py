"""The rate-distortion-realism benchmark: hificodec models against classical codecs.

    hfc eval ../shared/data/kodak -o /tmp/eval [--models ...] [--betas ...] [--codecs ...]

* Models: each image is encoded once per quality (rate level); every beta is decoded from that
  same file. Real file sizes, PSNR (RGB), MS-SSIM, LPIPS-Alex, encode/decode wall-clock.
* Classical codecs: each image is coded at a ladder of target rates (the setting whose file is
  closest to each target, found by a search over the setting), which gives a per-image rate-distortion
  curve. A model's result on an image is compared with the codecs' curves interpolated at the
  bpp the model actually got there, and at twice that bpp.
* FID / KID (HiFiC appendix A.7): 256x256 patches on a grid plus the half-shifted grid, pooled
  over the folder, for every model point and for the classical codecs at ``fid_targets``.

Everything is cached in the output folder (CSV rows, patch features), so an interrupted run
resumes without recomputing finished images.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from hificodec.evaluation.analysis import matched_comparison, quality_targets, summarize, summarize_classical
from hificodec.metrics.quality import LPIPSMetric, ms_ssim, psnr

DEFAULT_TARGETS = (0.07, 0.1, 0.14, 0.2, 0.3, 0.45, 0.6, 0.9, 1.2)
DEFAULT_FID_TARGETS = (0.14, 0.3, 0.45, 0.9)
MIN_FID_PATCHES = 100  # below this FID is not worth reporting (it needs many samples)


class PatchFeatures:
    """Inception features of the FID patches of every image, cached on disk per configuration
    (``original``, ``<model>@q<quality>@b<beta>``, ``<codec>@<target>``)."""

    def __init__(self, out_dir: Path, device: str = "cpu"):
        self.dir = out_dir / "features"
        self.device = device
        self._net = None

    def _path(self, config: str, image: str) -> Path:
        return self.dir / config / f"{image}.npy"

    def add(self, config: str, image: str, rgb8: np.ndarray) -> None:
        from hificodec.imaging.images import atomic_write
        from hificodec.metrics.quality import InceptionFeatures, patches

        path = self._path(config, image)
        if path.is_file():
            return
        if self._net is None:
            self._net = InceptionFeatures(self.device)
        buf = io.BytesIO()
        np.save(buf, self._net(patches(rgb8)).astype(np.float32))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buf.getvalue())

    def has(self, config: str, image: str) -> bool:
        return self._path(config, image).is_file()

    def load(self, config: str, images: list[str]) -> np.ndarray | None:
        """All patches of ``images`` for one configuration, or None if any image is missing."""
        if not all(self.has(config, i) for i in images):
            return None
        return np.concatenate([np.load(self._path(config, i)).astype(np.float64) for i in images])


def model_config(model: str, quality: float, beta: float, weights: str = "") -> str:
    """Feature-cache name of a model point; ``weights`` (digest prefix) keeps the features of
    retrained weights apart from those of the file they replace."""
    return f"{model}@q{quality:g}@b{beta:g}" + (f"@{weights}" if weights else "")


def weights_tag(codec, refine_steps: int = 0) -> str:
    """The ``weights`` column: the weights' digest prefix, plus ``+r<steps>`` for files encoded
    with latent refinement (refine.py), whose rows must not mix with plain encodes."""
    return codec.info.digest[:12] + (f"+r{refine_steps}" if refine_steps else "")


def classical_config(codec: str, target: float) -> str:
    return f"{codec}@{target:g}"


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def model_qualities(codec) -> list[float]:
    """The trained rate levels of a model: 0 for a single-rate model, 0, 1, 2 for lo/mi/hi."""
    return [float(q) for q in range(codec.model.rate_levels)]


def evaluate_model(codec, images: list[Path], betas: list[float], out_dir: Path | None = None,
                   progress: bool = True, qualities: list[float] | None = None,
                   features: PatchFeatures | None = None, refine_steps: int = 0,
                   encoded: dict | None = None) -> list[dict]:
    """One row per (quality, image, beta), each file encoded with ``refine_steps`` of latent
    refinement. Rows already in out_dir/per_image.csv are reused if they were measured with the
    same weights file and refinement (both in the ``weights`` column). Each file it encodes is
    also kept in ``encoded`` under (image name, quality), for make_sheets."""
    from tqdm import tqdm

    from hificodec.format import bitstream
    from hificodec.imaging.images import load_rgb

    lpips_metric = LPIPSMetric()
    qualities = model_qualities(codec) if qualities is None else qualities
    csv_path = out_dir / "per_image.csv" if out_dir else None
    name, weights = codec.info.name, weights_tag(codec, refine_steps)
    cached = _read_csv(csv_path) if csv_path else []
    done = {_row_key(r): r for r in cached if r["model"] != name or r.get("weights") == weights}
    rows: list[dict] = []
    for path in tqdm(images, disable=not progress, desc=name, unit="img"):
        keys = [(name, float(q), path.name, float(b)) for q in qualities for b in betas]
        configs = [model_config(name, q, b, weights) for q in qualities for b in betas] + ["original"]
        if all(k in done for k in keys) and (features is None or all(features.has(c, path.name) for c in configs)):
            rows += [done[k] for k in keys]
            continue
        original = load_rgb(path).rgb8
        h, w = original.shape[:2]
        if features:
            features.add("original", path.name, original)
        for quality in qualities:
            t0 = time.perf_counter()
            data = codec.encode(original, quality, refine_steps)
            encode_s = time.perf_counter() - t0
            if encoded is not None:
                encoded[(path.name, float(quality))] = data
            t0 = time.perf_counter()
            hfc = bitstream.parse(data)
            y_hat = codec.latent(hfc)  # entropy-decoded once; every beta reuses it
            latent_s = time.perf_counter() - t0
            for beta in betas:
                t0 = time.perf_counter()
                recon = codec.generate(hfc, y_hat, beta)
                decode_s = latent_s + time.perf_counter() - t0  # what a single-beta decode costs
                rows.append({
                    "model": name, "weights": weights, "quality": float(quality), "image": path.name,
                    "beta": float(beta),
                    "width": w, "height": h, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                    "psnr": psnr(original, recon), "ms_ssim": ms_ssim(original, recon),
                    "lpips": lpips_metric(original, recon), "encode_s": encode_s, "decode_s": decode_s,
                })
                if features:
                    features.add(model_config(name, quality, beta, weights), path.name, recon)
        if csv_path:
            others = [r for k, r in done.items() if k[0] != name]  # other models' rows
            _write_csv(csv_path, rows + others)
    return rows


def _row_key(row: dict) -> tuple[str, float, str, float]:
    return row["model"], float(row.get("quality", 0.0)), row["image"], float(row["beta"])


def _write_csv(path: Path, rows: list[dict]) -> None:
    from hificodec.imaging.images import atomic_write

    if not rows:
        return
    fields = list(rows[0].keys())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def evaluate_classical(codecs, images: list[Path], targets: list[float], out_dir: Path, progress: bool = True,
                       features: PatchFeatures | None = None, fid_targets: tuple[float, ...] = ()) -> list[dict]:
    """One row per (codec, target, image): the setting closest to the target and its metrics.
    Rows already in out_dir/classical.csv are reused."""
    from tqdm import tqdm

    from hificodec.evaluation.classical import match_bpp
    from hificodec.imaging.images import load_rgb

    lpips_metric = LPIPSMetric()
    csv_path = out_dir / "classical.csv"
    done = {(r["codec"], float(r["target"]), r["image"]): r for r in _read_csv(csv_path)}
    rows: list[dict] = []
    bar = tqdm(total=len(codecs) * len(images), disable=not progress, desc="classical", unit="img")
    for codec in codecs:
        for path in images:
            bar.update(1)
            keys = [(codec.name, float(t), path.name) for t in targets]
            missing = [t for t in targets if features and t in fid_targets
                       and not features.has(classical_config(codec.name, t), path.name)]
            if all(k in done for k in keys) and _refill_features(codec, path, missing, done, features):
                rows += [done[k] for k in keys]
                continue
            original = load_rgb(path).rgb8
            h, w = original.shape[:2]
            cache: dict[int, bytes] = {}
            for target in targets:
                t0 = time.perf_counter()
                setting, data = match_bpp(codec, original, target, cache)
                search_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                recon = codec.decode(data)
                decode_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                codec.encode(original, setting)  # one clean encode for the timing
                encode_s = time.perf_counter() - t0
                rows.append({
                    "codec": codec.name, "target": float(target), "image": path.name, "setting": setting,
                    "width": w, "height": h, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                    "psnr": psnr(original, recon), "ms_ssim": ms_ssim(original, recon),
                    "lpips": lpips_metric(original, recon), "encode_s": encode_s, "decode_s": decode_s,
                    "search_s": search_s,
                })
                if features and target in fid_targets:
                    features.add(classical_config(codec.name, target), path.name, recon)
            _write_csv(csv_path, _merge(done, rows))
    bar.close()
    return rows


def _refill_features(codec, path: Path, targets: list[float], done: dict, features) -> bool:
    """FID patches of cached classical rows (e.g. a classical.csv copied from docs/results/ into
    a new output folder): re-encode at each row's setting instead of searching it again. False
    (so the caller measures the image anew) if a file does not come out as the row recorded."""
    from hificodec.imaging.images import load_rgb

    if not targets:
        return True
    original = load_rgb(path).rgb8
    recons = {}
    for target in targets:
        row = done[(codec.name, float(target), path.name)]
        data = codec.encode(original, int(row["setting"]))
        if len(data) != int(row["bytes"]):  # another encoder version: the row no longer holds
            return False
        recons[target] = codec.decode(data)
    for target, recon in recons.items():
        features.add(classical_config(codec.name, target), path.name, recon)
    return True


def _merge(done: dict, rows: list[dict]) -> list[dict]:
    """Cached rows updated with fresh ones (fresh win), for rewriting the CSV."""
    merged = dict(done)
    for r in rows:
        merged[(r["codec"], float(r["target"]), r["image"])] = r
    return list(merged.values())


def machine_description() -> str:
    """CPU model and torch thread count: the context every timing in a report needs."""
    import platform

    import torch

    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads"


def realism_scores(features: PatchFeatures, configs: list[str], images: list[str]) -> dict[str, dict]:
    """FID and KID of each configuration's patches against the originals' patches."""
    from hificodec.metrics.quality import frechet_distance, kernel_inception_distance

    reference = features.load("original", images)
    if reference is None or len(reference) < MIN_FID_PATCHES:
        return {}
    out = {}
    for config in configs:
        feats = features.load(config, images)
        if feats is not None:
            out[config] = {"fid": frechet_distance(reference, feats),
                           "kid": kernel_inception_distance(reference, feats), "patches": len(feats)}
    return out


def make_sheets(codec, images: list[Path], classical_rows: list[dict], codecs: list,
                out_dir: Path, count: int, quality: float, refine_steps: int = 0,
                encoded: dict | None = None) -> list[Path]:
    """Crop sheets for the first ``count`` images at one model quality:
    original | beta 0 | beta 2.56 | best classical codec at the same bpp | it at twice the bpp.
    Files evaluate_model already made (``encoded``) are reused: a refined encode costs a minute."""
    from hificodec.evaluation.classical import interpolate_log_bpp, match_bpp
    from hificodec.evaluation.report import crop_sheet
    from hificodec.format import bitstream
    from hificodec.imaging.images import load_rgb
    from hificodec.nn.models import BETA_MAX

    by_codec = {c.name: c for c in codecs}
    sheets = []
    for path in images[:count]:
        original = load_rgb(path).rgb8
        data = (encoded or {}).get((path.name, float(quality))) or codec.encode(original, quality, refine_steps)
        hfc = bitstream.parse(data)
        bpp = 8 * len(data) / (original.shape[0] * original.shape[1])
        y_hat = codec.latent(hfc)
        panels = [("original", original),
                  (f"hfc beta 0, {bpp:.3f} bpp", codec.generate(hfc, y_hat, 0.0)),
                  (f"hfc beta {BETA_MAX:g}, {bpp:.3f} bpp", codec.generate(hfc, y_hat, BETA_MAX))]
        scores = {}
        for name in by_codec:
            curve = [(float(r["bpp"]), float(r["lpips"])) for r in classical_rows
                     if r["codec"] == name and r["image"] == path.name]
            scores[name] = interpolate_log_bpp(curve, bpp)
        scores = {k: v for k, v in scores.items() if not math.isnan(v)}
        if scores:
            best = by_codec[min(scores, key=scores.get)]
            cache: dict[int, bytes] = {}
            for factor in (1, 2):
                setting, data = match_bpp(best, original, factor * bpp, cache)
                got = 8 * len(data) / (original.shape[0] * original.shape[1])
                panels.append((f"{best.name} q{setting}, {got:.3f} bpp", best.decode(data)))
        sheets.append(crop_sheet(panels, out_dir / "sheets" / f"{path.stem}.png"))
    return sheets


def eval_main(dataset: Path, model_names: list[str], betas: list[float], out_dir: Path, device: str = "cpu",
              codecs: list | None = None, targets: tuple[float, ...] = DEFAULT_TARGETS,
              fid: bool = True, fid_targets: tuple[float, ...] = DEFAULT_FID_TARGETS, progress: bool = True,
              sheet_count: int = 24, report: Path | None = None, report_notes: str = "",
              refine_steps: int = 0) -> dict:
    """Runs the whole benchmark into out_dir: per_image.csv, classical.csv, summary.json,
    plots/, sheets/ and report.md (or ``report``). Returns the summary."""
    from hificodec.codec import Codec
    from hificodec.imaging.images import atomic_write, image_files
    from hificodec.metrics.quality import patches

    images = image_files([dataset])
    if not images:
        raise ValueError(f"no images in {dataset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    features = None
    if fid:
        from hificodec.imaging.images import load_rgb
        from hificodec.metrics.weights import require_inception

        require_inception()  # fail before hours of work, not after
        # FID needs many patches; a small folder gets no FID rather than a meaningless one.
        n_patches = sum(len(patches(load_rgb(p).rgb8)) for p in images[:4]) * len(images) / min(4, len(images))
        if n_patches >= MIN_FID_PATCHES:
            features = PatchFeatures(out_dir, device)
    model_rows: list[dict] = []
    model_points: list[str] = []
    loaded = {}
    encoded: dict[str, dict] = {}  # model -> the files evaluate_model made, for the sheets
    for name in model_names:
        codec = loaded[name] = Codec.load(name, device)
        model_rows += evaluate_model(codec, images, betas, out_dir, progress, features=features,
                                     refine_steps=refine_steps, encoded=encoded.setdefault(name, {}))
        model_points += [model_config(name, q, b, weights_tag(codec, refine_steps)) for q in model_qualities(codec) for b in betas]
    classical_rows = evaluate_classical(codecs or [], images, list(targets), out_dir, progress, features,
                                        tuple(fid_targets)) if codecs else []
    names = [p.name for p in images]
    realism = realism_scores(features, model_points + [classical_config(c.name, t) for c in codecs or []
                                                          for t in fid_targets], names) if features else {}
    models = summarize(model_rows)
    for s in models:
        s.update(realism.get(model_config(s["model"], s["quality"], s["beta"], weights_tag(loaded[s["model"]], refine_steps)), {}))
    classical = summarize_classical(classical_rows)
    for s in classical:
        s.update(realism.get(classical_config(s["codec"], s["target"]), {}))
    summary = {
        "dataset": str(dataset), "images": len(images), "machine": machine_description(),
        "codec_versions": {c.name: c.version() for c in codecs or []},
        "codec_settings": {c.name: c.options for c in codecs or []},
        "models": models, "classical": classical,
        "matched": matched_comparison(model_rows, classical_rows),
    }
    summary["targets"] = quality_targets(summary)
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2, default=str).encode())

    from hificodec.evaluation.report import markdown, rate_plots

    # A report published elsewhere (docs/results.md) gets its plots, sheets and data beside it
    # (docs/results/); the caches (features) stay in out_dir.
    publish = report.with_suffix("") if report else out_dir
    publish.mkdir(parents=True, exist_ok=True)
    if publish != out_dir:
        for name in ("summary.json", "per_image.csv", "classical.csv"):
            if (out_dir / name).is_file():
                atomic_write(publish / name, (out_dir / name).read_bytes())
    plots = rate_plots(summary, publish / "plots")
    sheets, sheet_source = [], ""
    if sheet_count and model_names:
        # the sheets show what a user gets by default, whatever order the models were listed in
        from hificodec.codec import default_quality
        from hificodec.zoo import DEFAULT_MODEL

        sheet_model = DEFAULT_MODEL if DEFAULT_MODEL in loaded else model_names[0]
        quality = default_quality(loaded[sheet_model].model)
        sheets = make_sheets(loaded[sheet_model], images, classical_rows, codecs or [],
                             publish, sheet_count, quality, refine_steps, encoded.get(sheet_model))
        sheet_source = f"{sheet_model} q{quality:g}"
    report_path = report or out_dir / "report.md"
    atomic_write(report_path, ("# hificodec benchmark\n\n" + markdown(summary, plots, sheets, report_path.parent,
                                                                      report_notes, sheet_source)).encode())
    return summary

