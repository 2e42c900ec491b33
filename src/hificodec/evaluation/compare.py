"""`hfc compare`: one self-contained HTML page per image to see the beta trade-off.

A page holds the original, the .hfc decode at a grid of betas behind a slider (every frame is
embedded, so moving the slider swaps images instantly), and AVIF, WebP and JPEG at the file size
of the .hfc (their quality setting searched per image, as `hfc eval` does), with a zoom row and
the numbers: bytes, bpp, PSNR and, when the metric weights are installed, LPIPS. No network and
no server are needed to view it; images are embedded as lossless WebP data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hificodec.evaluation.classical import CODECS, match_bpp
from hificodec.format import bitstream
from hificodec.imaging.images import atomic_write, load_rgb
from hificodec.metrics.quality import psnr

BETA_GRID = (0.0, 0.32, 0.64, 0.96, 1.28, 1.6, 1.92, 2.24, 2.56)
DEFAULT_CODECS = ("avif", "webp", "jpeg")


@dataclass
class Panel:
    name: str
    rgb8: np.ndarray
    bytes: int | None = None  # None: the original
    psnr: float | None = None
    lpips: float | None = None


def data_uri(rgb8: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "WEBP", lossless=True, quality=0, method=0)  # exact pixels, fast
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _lpips_metric():
    """LPIPS when its weights are installed (hfc setup-metrics), else None."""
    try:
        from hificodec.metrics.quality import LPIPSMetric

        return LPIPSMetric()
    except Exception:  # noqa: BLE001 - missing weights or lpips package: the page shows PSNR only
        return None


def build_page(codec, source: Path, outdir: Path, quality: float | None, codec_names=DEFAULT_CODECS,
               lpips=None) -> dict:
    """Writes OUTDIR/<stem>.html (and the .hfc beside it); returns its row for the index."""
    rgb = load_rgb(source).rgb8
    height, width = rgb.shape[:2]
    data = codec.encode(rgb, quality)
    hfc = bitstream.parse(data)
    y_hat = codec.latent(hfc)
    frames = [codec.generate(hfc, y_hat, beta) for beta in BETA_GRID]
    bpp = 8 * len(data) / (width * height)

    def scored(panel: Panel) -> Panel:
        panel.psnr = psnr(rgb, panel.rgb8)
        panel.lpips = lpips(rgb, panel.rgb8) if lpips else None
        return panel

    hfc_panels = [scored(Panel(f"hfc beta {beta:g}", frame, len(data))) for beta, frame in zip(BETA_GRID, frames)]
    others = []
    for name in codec_names:
        classical = CODECS[name]
        if not classical.available():
            continue
        _, coded = match_bpp(classical, rgb, bpp)
        others.append(scored(Panel(name.upper(), classical.decode(coded), len(coded))))

    stem = source.stem
    atomic_write(outdir / f"{stem}.hfc", data)
    page = _render(stem, width, height, codec.info.name, hfc.quality, Panel("Original", rgb), hfc_panels, others)
    atomic_write(outdir / f"{stem}.html", page.encode("utf-8"))
    return {"image": stem, "page": f"{stem}.html", "width": width, "height": height, "bytes": len(data), "bpp": bpp,
            "psnr_beta0": hfc_panels[0].psnr, "psnr_beta2.56": hfc_panels[-1].psnr,
            "lpips_beta0": hfc_panels[0].lpips, "lpips_beta2.56": hfc_panels[-1].lpips}


def detail_centre(rgb8: np.ndarray, block: int = 32) -> tuple[int, int]:
    """(x, y) of the block with the most fine detail (sum of absolute neighbour differences):
    where the zoom starts, so the first view shows texture rather than a flat area."""
    gray = rgb8.astype(np.float32).mean(axis=2)
    detail = np.zeros_like(gray)
    detail[:, 1:] += np.abs(np.diff(gray, axis=1))
    detail[1:, :] += np.abs(np.diff(gray, axis=0))
    h, w = (gray.shape[0] // block) * block, (gray.shape[1] // block) * block
    if h == 0 or w == 0:
        return rgb8.shape[1] // 2, rgb8.shape[0] // 2
    blocks = detail[:h, :w].reshape(h // block, block, w // block, block).sum(axis=(1, 3))
    row, col = np.unravel_index(int(blocks.argmax()), blocks.shape)
    return int(col * block + block // 2), int(row * block + block // 2)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(panel: Panel, pixels: int) -> str:
    size = "-" if panel.bytes is None else f"{panel.bytes:,}"
    bpp = "-" if panel.bytes is None else f"{8 * panel.bytes / pixels:.3f}"
    return (f"<tr><td>{html.escape(panel.name)}</td><td>{size}</td><td>{bpp}</td>"
            f"<td>{_fmt(panel.psnr, 2)}</td><td>{_fmt(panel.lpips, 4)}</td></tr>")


def _render(stem: str, width: int, height: int, model: str, quality: float, original: Panel,
            hfc_panels: list[Panel], others: list[Panel]) -> str:
    pixels = width * height
    frames = [data_uri(p.rgb8) for p in hfc_panels]
    panels = [("original", "Original", data_uri(original.rgb8))] + [
        (p.name.lower(), f"{p.name} ({p.bytes:,} bytes)", data_uri(p.rgb8)) for p in others]
    rows = "\n".join(_row(p, pixels) for p in [hfc_panels[0], hfc_panels[len(hfc_panels) // 2], hfc_panels[-1], *others])
    figures = "\n".join(
        f'<figure><img id="img-{key}" class="view" src="{uri}" alt="{html.escape(label)}">'
        f"<figcaption>{html.escape(label)}</figcaption></figure>" for key, label, uri in panels)
    zooms = "\n".join(f'<figure><div class="zoom" data-key="{key}"></div><figcaption>{label}</figcaption>'
                      "</figure>" for key, label, _ in [("hfc", 'hfc at beta <span class="beta-now"></span>', ""),
                                                         *[(k, html.escape(t), u) for k, t, u in panels]])
    scores = [{"beta": b, "psnr": p.psnr, "lpips": p.lpips} for b, p in zip(BETA_GRID, hfc_panels)]
    return PAGE.format(
        title=html.escape(f"{stem}: hificodec at {8 * hfc_panels[0].bytes / pixels:.3f} bpp"),
        stem=html.escape(stem), width=width, height=height, model=html.escape(model), quality=f"{quality:g}",
        hfc_bytes=f"{hfc_panels[0].bytes:,}", bpp=f"{8 * hfc_panels[0].bytes / pixels:.3f}",
        last=len(BETA_GRID) - 1, default=len(BETA_GRID) - 1, first_frame=frames[-1], figures=figures, zooms=zooms,
        rows=rows, frames_json=json.dumps(frames), betas_json=json.dumps(list(BETA_GRID)),
        scores_json=json.dumps(scores), sources_json=json.dumps({key: uri for key, _, uri in panels}),
        centre=json.dumps(list(detail_centre(original.rgb8))))


def write_index(outdir: Path, rows: list[dict]) -> Path:
    body = "\n".join(
        f'<tr><td><a href="{html.escape(r["page"])}">{html.escape(r["image"])}</a></td><td>{r["width"]}x{r["height"]}</td>'
        f'<td>{r["bytes"]:,}</td><td>{r["bpp"]:.3f}</td><td>{_fmt(r["psnr_beta0"], 2)}</td>'
        f'<td>{_fmt(r["psnr_beta2.56"], 2)}</td><td>{_fmt(r["lpips_beta0"], 4)}</td><td>{_fmt(r["lpips_beta2.56"], 4)}</td></tr>'
        for r in rows)
    path = outdir / "index.html"
    atomic_write(path, INDEX.format(rows=body).encode("utf-8"))
    return path


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px; }
.controls { display: flex; gap: 16px; align-items: center; margin: 8px 0 12px; }
.controls input[type=range] { width: 320px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 8px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #555; }
img.view { width: 100%; image-rendering: auto; cursor: crosshair; display: block; }
.zoom { width: 100%; aspect-ratio: 1; background-repeat: no-repeat; image-rendering: pixelated; border: 1px solid #ccc; }
table { border-collapse: collapse; margin: 12px 0; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>""" + STYLE.replace("{", "{{").replace("}", "}}") + """</style></head>
<body>
<h1>{stem}: {width}x{height}, {model} quality {quality}, {hfc_bytes} bytes ({bpp} bpp)</h1>
<div class="controls">
  <label for="beta">beta (realism, chosen when decoding)</label>
  <input type="range" id="beta" min="0" max="{last}" step="1" value="{default}">
  <output id="beta-value"></output>
  <span id="beta-scores"></span>
</div>
<p>Click any image to move the zoom. AVIF, WebP and JPEG are at the file size of the .hfc file.</p>
<div class="grid">
<figure><img id="img-hfc" class="view" src="{first_frame}" alt="hfc decode"><figcaption>hfc at beta <span class="beta-now"></span> ({hfc_bytes} bytes)</figcaption></figure>
{figures}
</div>
<h2>Zoom (4x)</h2>
<div class="grid" id="zooms">
{zooms}
</div>
<table><tr><th>image</th><th>bytes</th><th>bpp</th><th>PSNR (dB)</th><th>LPIPS</th></tr>
{rows}
</table>
<script>
const frames = {frames_json};
const betas = {betas_json};
const scores = {scores_json};
const sources = {sources_json};
const width = {width}, height = {height}, scale = 4;
const slider = document.getElementById("beta");
const hfcImage = document.getElementById("img-hfc");
let center = {centre};

function showBeta() {{
  const i = Number(slider.value);
  hfcImage.src = frames[i];
  document.getElementById("beta-value").textContent = betas[i].toFixed(2);
  for (const label of document.querySelectorAll(".beta-now")) label.textContent = betas[i].toFixed(2);
  const s = scores[i];
  document.getElementById("beta-scores").textContent =
    "PSNR " + s.psnr.toFixed(2) + " dB" + (s.lpips === null ? "" : ", LPIPS " + s.lpips.toFixed(4));
  drawZooms();
}}

function drawZooms() {{
  for (const box of document.querySelectorAll(".zoom")) {{
    const key = box.dataset.key;
    const src = key === "hfc" ? frames[Number(slider.value)] : sources[key];
    const side = box.clientWidth || 200;
    box.style.backgroundImage = "url(" + src + ")";
    box.style.backgroundSize = (width * scale) + "px " + (height * scale) + "px";
    box.style.backgroundPosition = (side / 2 - center[0] * scale) + "px " + (side / 2 - center[1] * scale) + "px";
  }}
}}

for (const img of document.querySelectorAll("img.view")) {{
  img.addEventListener("click", (event) => {{
    const rect = img.getBoundingClientRect();
    center = [(event.clientX - rect.left) / rect.width * width, (event.clientY - rect.top) / rect.height * height];
    drawZooms();
  }});
}}
slider.addEventListener("input", showBeta);
window.addEventListener("resize", drawZooms);
showBeta();
</script>
</body></html>
"""

INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hificodec comparisons</title>
<style>""" + STYLE.replace("{", "{{").replace("}", "}}") + """</style></head>
<body><h1>hificodec comparisons</h1>
<table><tr><th>image</th><th>size</th><th>bytes</th><th>bpp</th><th>PSNR beta 0</th><th>PSNR beta 2.56</th>
<th>LPIPS beta 0</th><th>LPIPS beta 2.56</th></tr>
{rows}
</table></body></html>
"""
