"""Release: a training checkpoint -> a weights file (hfc export).

The file holds the shipped weights (the run's average, if it kept one), optionally with its rate
levels re-placed at nominal bpp on whole photos (calibration.py), and the training record a
model card is written from. The weights it replaces are kept in previous/ (files made with them
must still decode), and the run's discriminator is written beside it so a later run can
continue the GAN.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from hificodec.nn.models import CONFIGS, HiFiC
from hificodec.training.config import TrainConfig
from hificodec.training.trainer import lineage_of, run_record, shipped_weights


def export_main(checkpoint: Path, name: str, out_dir: Path | None = None, raw: bool = False,
                calibrate_bpp: list[float] | None = None, calibrate_dir: Path | None = None) -> tuple[Path, str]:
    """Checkpoint -> weights/<name>.safetensors (CDF tables updated first). raw: the run's own
    weights even if it kept an average (an average can measure worse on a still-improving model).
    calibrate_bpp / calibrate_dir: override the run config's calibrate_bpp / calibrate_dir."""
    from hificodec.format.bitstream import MODEL_NAME
    from hificodec.zoo import export_dir, export_discriminator, export_weights, file_digest, previous_path

    if not MODEL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a model name (A-Z a-z 0-9 . _ -, not starting with . _ -)")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = TrainConfig(**state["config"])
    model = HiFiC(CONFIGS[cfg.architecture])
    averaged = state.get("ema") is not None and not raw
    model.load_state_dict(state["model"] if raw else shipped_weights(state))
    model.eval()
    calibration = None
    rates = list(calibrate_bpp if calibrate_bpp is not None else cfg.calibrate_bpp)
    if rates:
        from hificodec.training.calibration import calibrate, calibration_images

        folder = Path(calibrate_dir or cfg.calibrate_dir or cfg.train_dir)
        if not folder.is_dir():
            raise ValueError(f"calibration folder {folder} does not exist")
        # measure the encoder the file will hold: its weights go to fp16
        model.encoder.half().float()
        images_used = calibration_images(folder, cfg.calibrate_images)
        calibration = calibrate(model, name, images_used, rates, str(folder)).to_json()
    images = state.get("train_images")
    if images is None and Path(cfg.train_dir).is_dir():  # checkpoints from before train_images existed
        from hificodec.imaging.images import image_files

        images = len(image_files([Path(cfg.train_dir)]))
    training = {
        "config_name": cfg.name,
        "train_dir": cfg.train_dir,
        "images": images,
        "crop": cfg.crop,
        "batch_size": cfg.batch_size,
        "step": state["step"],
        "ema_decay": cfg.ema_decay if averaged else 0.0,  # of the weights in this file
    }
    this_run = run_record(cfg.name, state["step"], cfg.stage1_steps, state.get("train_seconds", 0.0))
    training.update({k: v for k, v in this_run.items() if k != "config"})
    # Runs this one continued (checkpoints from before "lineage" existed: followed via init_from)
    lineage = state.get("lineage")
    training["lineage"] = lineage if lineage is not None else lineage_of(cfg.init_from, cfg.init_from_name)
    everything = training["lineage"] + [training]
    training["total_stage1_steps"] = sum(p["stage1_steps"] for p in everything)
    training["total_stage2_steps"] = sum(p["stage2_steps"] for p in everything)
    training["total_train_hours"] = round(sum(p["train_hours"] for p in everything), 2)
    out = Path(out_dir or export_dir()) / f"{name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    superseded = None
    if out.is_file():  # keep the weights being replaced: files encoded with them must still decode
        old_digest = file_digest(out)
        superseded = previous_path(name, old_digest, out.parent)
        superseded.parent.mkdir(exist_ok=True)
        if not superseded.exists():
            shutil.copy2(out, superseded)
    digest = export_weights(model, out, name, cfg.architecture, cfg.targets, training, calibration)
    if superseded is not None and digest == old_digest:
        superseded.unlink()  # the same weights again: nothing was superseded
    export_discriminator(state["disc"], name, digest, out.parent)  # so a later phase can continue it anywhere
    return out, digest
