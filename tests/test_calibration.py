"""Rate calibration at export: a variable-rate model's levels re-placed at nominal bpp."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import random_image
from hificodec.codec import Codec
from hificodec.nn.models import CONFIGS, HiFiC
from hificodec.training.calibration import SHORT_SIDE, calibrate, calibration_images
from hificodec.zoo import ModelInfo


def codec_bpp(codec, images, quality) -> float:
    return float(np.mean([8 * len(codec.encode(im, quality)) / (im.shape[0] * im.shape[1]) for im in images]))


def mean_bpp(model, images, quality) -> float:
    """As calibrate measures it for a model named "m"."""
    codec = Codec(ModelInfo("m", Path("."), "0" * 64, "", (0.1, 0.2, 0.4), {}), model, torch.device("cpu"))
    return codec_bpp(codec, images, quality)


@pytest.fixture(scope="module")
def vbr_model():
    torch.manual_seed(0)
    model = HiFiC(CONFIGS["tiny-vbr"]).eval()
    model.latent_model.update_tables()
    return model


@pytest.fixture(scope="module")
def images():
    return [random_image(96, 128, seed=s) for s in range(3)]


def test_levels_move_to_the_asked_rates(vbr_model, images):
    model = copy.deepcopy(vbr_model)
    asked = [0.5, 1.25, 1.75]  # qualities of the untrained model's scale whose rates we ask for
    rates = [mean_bpp(model, images, q) for q in asked]
    assert rates[0] < rates[1] < rates[2], rates
    cal = calibrate(model, "m", images, rates)
    assert cal.rates == rates and cal.images == 3
    for level, (rate, got) in enumerate(zip(rates, cal.bpp)):
        assert got == pytest.approx(rate, rel=0.02), (level, got, rate)
        assert mean_bpp(model, images, float(level)) == pytest.approx(got)
    # each new level is the old scale's point it was placed at: same gain and inverse gain
    assert cal.positions == pytest.approx(asked, abs=0.1)
    for level, position in enumerate(cal.positions):
        old = vbr_model.gains(torch.tensor([position]))
        new = model.gains(torch.tensor([float(level)]))
        assert torch.allclose(old[0], new[0], rtol=1e-5) and torch.allclose(old[1], new[1], rtol=1e-5)


def test_rates_out_of_reach_are_refused_and_leave_the_model_alone(vbr_model, images):
    model = copy.deepcopy(vbr_model)
    top = mean_bpp(model, images, 2.0)
    with pytest.raises(ValueError, match="outside the rates"):
        calibrate(model, "m", images, [0.5 * top, top, 10 * top])
    assert torch.equal(model.log_gain, vbr_model.log_gain)
    with pytest.raises(ValueError, match="increasing"):
        calibrate(model, "m", images, [0.3, 0.2, 0.4])
    with pytest.raises(ValueError, match="variable-rate"):
        calibrate(HiFiC(CONFIGS["tiny"]), "m", images, [0.3])


def test_calibration_images_are_spread_and_scaled_down(tmp_path):
    for i, (h, w) in enumerate([(600, 800), (300, 200), (1024, 700), (520, 520)]):
        Image.fromarray(random_image(h, w, seed=i)).save(tmp_path / f"{i}.png")
    (tmp_path / "4.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipping"):
        got = calibration_images(tmp_path, 5)
    assert [im.shape[:2] for im in got] == [(SHORT_SIDE, 683), (300, 200), (749, SHORT_SIDE), (SHORT_SIDE, SHORT_SIDE)]
    with pytest.warns(UserWarning, match="skipping"):
        picked = calibration_images(tmp_path, 2)  # an even spread: the first and the last file
    assert [im.shape[:2] for im in picked] == [(SHORT_SIDE, 683)]  # the last one is unreadable
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        calibration_images(tmp_path / "empty", 3)


def test_export_calibrates_and_records_it(tmp_path, monkeypatch):
    from test_train import make_trainer

    from hificodec.cli import main
    from hificodec.training.export import export_main
    from hificodec.zoo import model_info

    training, photos = tmp_path / "training", tmp_path / "photos"
    for folder in (training, photos):
        folder.mkdir()
        for i in range(3):
            Image.fromarray(random_image(96, 128, seed=10 + i + len(folder.name))).save(folder / f"p{i}.png")
    (training / "unreadable.jpg").write_bytes(b"garbage")  # make_trainer expects one
    trainer = make_trainer(tmp_path / "run", training, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                           stage1_steps=2, stage2_steps=0)
    trainer.run(progress=False)
    plain, _ = export_main(trainer.checkpoint_path, "plain", tmp_path / "weights", calibrate_bpp=[])
    assert "calibration" not in model_info(plain).metadata
    shipped = Codec.load("plain", "cpu", tmp_path / "weights")
    rates = [codec_bpp(shipped, calibration_images(photos, 24), q) for q in (0.25, 1.0, 1.5)]
    path, _ = export_main(trainer.checkpoint_path, "calibrated", tmp_path / "weights", calibrate_bpp=rates,
                          calibrate_dir=photos)
    cal = model_info(path).metadata["calibration"]
    assert cal["rates"] == rates and cal["images"] == 3 and cal["folder"] == str(photos)
    assert cal["positions"] == pytest.approx([0.25, 1.0, 1.5], abs=0.1)
    codec = Codec.load("calibrated", "cpu", tmp_path / "weights")
    assert [codec_bpp(codec, calibration_images(photos, 24), q) for q in (0.0, 1.0, 2.0)] == pytest.approx(cal["bpp"])
    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tmp_path / "weights"))
    listing = CliRunner().invoke(main, ["models"]).output
    assert "calibrated: tiny-vbr, trained for 0.1, 0.2, 0.4 bpp, qualities 0..2 at " in listing
    assert "on 3 whole photos" in listing and "on 3 whole photos" not in listing.split("plain:")[1]
    # the CLI refuses a rate list of the wrong length with one line
    r = CliRunner().invoke(main, ["export", str(trainer.checkpoint_path), "--name", "x", "--outdir",
                                  str(tmp_path / "weights"), "--calibrate-bpp", "0.1,0.2",
                                  "--calibrate-on", str(photos)])
    assert r.exit_code != 0 and "increasing positive bpp" in r.output and "Traceback" not in r.output
