"""The OpenVINO runtime for the generator (runtime.py): the same images within rounding, the
same files (encoding never uses it), a conversion cached per weights file, and `auto`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import EXAMPLE, TINY, random_image
from hificodec.runtime import openvino_installed, resolve_runtime

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="OpenVINO is not installed")


def test_resolve_runtime():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("torch", cpu) == "torch"
    assert resolve_runtime("auto", cuda) == "torch"  # OpenVINO runs G on the CPU only
    assert resolve_runtime("auto", cpu) == ("openvino" if openvino_installed() else "torch")
    with pytest.raises(ValueError, match="CPU"):
        resolve_runtime("openvino", cuda)
    with pytest.raises(ValueError, match="unknown runtime"):
        resolve_runtime("onnx", cpu)


@needs_openvino
def test_openvino_decodes_what_torch_decodes(tiny_weights_dir):
    from hificodec.codec import Codec

    torch_codec = Codec.load(TINY, "cpu", tiny_weights_dir, runtime="torch")
    ov_codec = Codec.load(TINY, "cpu", tiny_weights_dir, runtime="openvino")
    img = random_image(80, 112, seed=7)
    data = torch_codec.encode(img)
    assert ov_codec.encode(img) == data  # the encoder stays in torch: the same file
    for beta in (0.0, 2.56):
        a, b = torch_codec.decode(data, beta).astype(int), ov_codec.decode(data, beta).astype(int)
        assert a.shape == b.shape == (80, 112, 3)
        assert np.abs(a - b).max() <= 4 and np.mean((a - b) ** 2) < 1.0  # bf16 rounding (> 48 dB), no more


@needs_openvino
def test_openvino_on_the_shipped_model_stays_within_the_quality_bounds(tmp_path):
    """docs/performance.md measures all of Kodak; here the example photo: PSNR within 0.05 dB."""
    from hificodec.codec import Codec
    from hificodec.imaging.images import load_rgb
    from hificodec.metrics.quality import psnr

    photo = load_rgb(EXAMPLE).rgb8
    torch_codec = Codec.load("hific-cpu-vbr", "cpu", runtime="torch")
    ov_codec = Codec.load("hific-cpu-vbr", "cpu", runtime="openvino")
    data = torch_codec.encode(photo)
    for beta in (0.0, 2.56):
        assert abs(psnr(photo, ov_codec.decode(data, beta)) - psnr(photo, torch_codec.decode(data, beta))) < 0.05


@needs_openvino
def test_conversion_is_cached_per_weights_file(tiny_weights_dir):
    from hificodec import zoo
    from hificodec.runtime import OpenVinoSynthesis

    info = zoo.find_model(TINY, tiny_weights_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OpenVinoSynthesis(lambda: zoo.load_model(info), info.digest)  # converts (this test's own cache)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]  # torch.jit's, not the user's concern

    def no_conversion():
        raise AssertionError("converted again")

    cached = OpenVinoSynthesis(no_conversion, info.digest)
    h = cached.trunk(torch.zeros(1, info.metadata["config"]["latent_channels"], 3, 5), torch.tensor([1.0]))
    assert cached.render(h).shape == (1, 3, 48, 80)


def test_cli_runtime_option(run, tmp_path):
    from PIL import Image

    Image.fromarray(random_image(48, 64, seed=2)).save(tmp_path / "a.png")
    assert run("encode", tmp_path / "a.png", "-m", TINY, "-o", tmp_path / "a.hfc").exit_code == 0
    r = run("decode", tmp_path / "a.hfc", "--runtime", "torch", "-o", tmp_path / "t.png", "-v")
    assert r.exit_code == 0 and ", torch, " in r.output
    r = run("decode", tmp_path / "a.hfc", "--runtime", "openvino", "-o", tmp_path / "o.png", "-v")
    if openvino_installed():
        assert r.exit_code == 0 and ", openvino, " in r.output
    else:
        assert r.exit_code == 2 and "needs OpenVINO" in r.output


@needs_openvino
def test_openvino_falls_back_to_torch_when_it_cannot_prepare(tiny_weights_dir, tmp_path, monkeypatch):
    """A cache folder that cannot be written (here: a file in its place) costs the speed, not the decode."""
    from hificodec.codec import Codec

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HFC_CACHE_DIR", str(blocker))
    codec = Codec.load(TINY, "cpu", tiny_weights_dir, runtime="openvino")
    data = codec.encode(random_image(32, 48, seed=1))
    with pytest.warns(UserWarning, match="decoding with torch"):
        out = codec.decode(data, 1.0)
    assert codec.runtime == "torch"
    assert np.array_equal(out, Codec.load(TINY, "cpu", tiny_weights_dir, runtime="torch").decode(data, 1.0))
