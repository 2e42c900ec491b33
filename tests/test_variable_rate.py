"""A variable-rate model: one weights file, the rate level (quality) chosen per file."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import TINY, TINY_VBR, random_image
from hificodec.cli import main
from hificodec.codec import CodecError
from hificodec.format import bitstream
from hificodec.nn.models import CONFIGS, HiFiC


def test_gains_interpolate_between_levels_in_the_log_domain():
    model = HiFiC(CONFIGS["tiny-vbr"])
    with torch.no_grad():
        model.log_gain.copy_(torch.tensor([[0.0], [1.0], [3.0]]).expand_as(model.log_gain))
        model.log_inverse_gain.zero_()
    gain, inverse = model.gains(torch.tensor([0.0, 0.5, 1.0, 1.75, 2.0]))
    assert gain.shape == (5, model.config.latent_channels, 1, 1)
    assert torch.allclose(gain[:, 0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 2.5, 3.0]).exp())
    assert torch.allclose(inverse, torch.ones_like(inverse))


def test_single_rate_model_has_unit_gains():
    gain, inverse = HiFiC(CONFIGS["tiny"]).gains(torch.tensor([0.0]))
    assert torch.equal(gain, torch.ones_like(gain)) and torch.equal(inverse, gain)


def test_higher_quality_costs_more_bits(tiny_vbr_codec):
    img = random_image(64, 96, seed=4)
    sizes = [len(tiny_vbr_codec.encode(img, q)) for q in (0.0, 1.0, 2.0)]
    assert sizes[0] <= sizes[1] < sizes[2], sizes


def test_quality_is_stored_and_used_by_the_decoder(tiny_vbr_codec):
    img = random_image(40, 56, seed=1)
    data = tiny_vbr_codec.encode(img, 1.5)
    hfc = bitstream.parse(data)
    assert hfc.quality == 1.5
    # The decoder applies the inverse gain of the stored quality: same latent, other quality,
    # other picture.
    other = bitstream.HfcFile(hfc.model, hfc.weights_digest, hfc.width, hfc.height, hfc.z_string,
                              hfc.y_string, quality_code=0)
    assert not np.array_equal(tiny_vbr_codec.decode(hfc, 0.0), tiny_vbr_codec.decode(other, 0.0))


def test_default_quality_is_the_middle_level(tiny_vbr_codec):
    assert bitstream.parse(tiny_vbr_codec.encode(random_image(8, 8))).quality == 1.0


@pytest.mark.parametrize("quality", [-0.5, 2.01, float("nan")])
def test_quality_outside_the_model_is_refused(tiny_vbr_codec, quality):
    with pytest.raises(CodecError, match="quality"):
        tiny_vbr_codec.encode(random_image(8, 8), quality)


def test_single_rate_model_refuses_other_qualities(tiny_codec):
    with pytest.raises(CodecError, match="single rate"):
        tiny_codec.encode(random_image(8, 8), 1.0)


def test_file_claiming_a_missing_quality_is_refused(tiny_codec):
    hfc = bitstream.parse(tiny_codec.encode(random_image(8, 8)))
    bad = bitstream.HfcFile(hfc.model, hfc.weights_digest, 8, 8, hfc.z_string, hfc.y_string, quality_code=256)
    with pytest.raises(CodecError, match="outside"):
        tiny_codec.decode(bad.to_bytes(), 0.0)


def test_cli_quality(tmp_path, tiny_weights_dir, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    src = tmp_path / "a.png"
    Image.fromarray(random_image(30, 40)).save(src)
    r = CliRunner().invoke(main, ["encode", str(src), "-o", str(tmp_path / "a.hfc"), "--model", TINY_VBR, "-Q", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", str(tmp_path / "a.hfc"), "--json"])
    assert '"quality": 2.0' in r.output
    r = CliRunner().invoke(main, ["encode", str(src), "-o", str(tmp_path / "b.hfc"), "--model", TINY, "-Q", "1"])
    assert r.exit_code == 2 and "single rate" in r.output
    assert not (tmp_path / "b.hfc").exists()


def test_shipped_model_spans_three_rates(shipped_codec, photo):
    """The shipped variable-rate model: more bits at each higher level, and they buy fidelity."""
    assert shipped_codec.model.rate_levels == 3
    pixels = photo.shape[0] * photo.shape[1]
    files = [shipped_codec.encode(photo, q) for q in (0.0, 1.0, 2.0)]
    bpp = [8 * len(f) / pixels for f in files]
    assert bpp[0] < bpp[1] < bpp[2], bpp
    mse = [np.mean((shipped_codec.decode(f, 0.0).astype(float) - photo) ** 2) for f in files]
    assert mse[2] < mse[0], mse
    half = shipped_codec.encode(photo, 0.5)  # an interpolated level lands in between
    assert len(files[0]) <= len(half) <= len(files[1])
