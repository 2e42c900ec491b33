"""The public API in hificodec/__init__.py: encode, decode, Codec, list_models."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import EXAMPLE, TINY, TINY_VBR, random_image


def test_encode_decode_list_models_with_an_installed_tiny_model(tiny_weights_dir, monkeypatch, tmp_path):
    import hificodec
    from hificodec.codec import Codec, CodecError
    from hificodec.format.bitstream import BitstreamError, parse

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    names = [m.name for m in hificodec.list_models()]
    assert names[:2] == [TINY, TINY_VBR]  # $HFC_WEIGHTS_DIR first, then the checkout's models
    assert hificodec.Codec is Codec
    img = random_image(40, 56, seed=4)
    data = hificodec.encode(img, quality=2, model=TINY_VBR, device="cpu")
    assert parse(data).model == TINY_VBR and parse(data).quality == 2
    assert data == Codec.load(TINY_VBR, "cpu", tiny_weights_dir).encode(img, 2)  # the same file as the codec writes
    assert hificodec.decode(data, beta=0.0, device="cpu").shape == (40, 56, 3)
    path = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(img).save(path)
    assert hificodec.encode(str(path), model=TINY_VBR, quality=2, device="cpu") == data  # a path reads the same pixels
    with pytest.raises(CodecError):
        hificodec.decode(data, beta=3.0)
    with pytest.raises(BitstreamError):
        hificodec.decode(data[:-1])
    with pytest.raises(AttributeError):
        hificodec.no_such_name  # noqa: B018


def test_importing_the_package_loads_no_torch():
    code = "import sys, hificodec; print('torch' in sys.modules, callable(hificodec.encode))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["False", "True"], r.stderr


def test_default_model_is_the_same_in_setup_and_zoo():
    """setup.py copies the default model into a wheel; it cannot import the package to ask."""
    from conftest import ROOT
    from hificodec.zoo import DEFAULT_MODEL

    assert f'DEFAULT_MODEL = "{DEFAULT_MODEL}"' in (ROOT / "setup.py").read_text()
    assert f"include weights/{DEFAULT_MODEL}.safetensors" in (ROOT / "MANIFEST.in").read_text()
    assert EXAMPLE.is_file()


def test_weights_search_order(tmp_path, monkeypatch):
    """$HFC_WEIGHTS_DIR folders come first and hide a name in later folders; the user's folder
    comes next; a file still decodes with the exact weights it names wherever they are."""
    import torch

    from conftest import ROOT
    from hificodec import zoo
    from hificodec.nn.models import CONFIGS, HiFiC

    first, second, user = tmp_path / "a", tmp_path / "b", tmp_path / "xdg" / "hificodec" / "weights"
    for folder in (first, second, user):
        folder.mkdir(parents=True)
    torch.manual_seed(3)
    zoo.export_weights(HiFiC(CONFIGS["tiny"]).eval(), first / "hific-cpu-vbr.safetensors", "hific-cpu-vbr", "tiny", [0.3], {})
    zoo.export_weights(HiFiC(CONFIGS["tiny"]).eval(), second / "only-here.safetensors", "only-here", "tiny", [0.3], {})
    zoo.export_weights(HiFiC(CONFIGS["tiny"]).eval(), user / "mine.safetensors", "mine", "tiny", [0.3], {})
    monkeypatch.setenv("HFC_WEIGHTS_DIR", f"{first}{os.pathsep}{second}")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert zoo.weights_dirs()[:3] == [first, second, user]
    assert zoo.find_model("hific-cpu-vbr").file.parent == first  # hides the checkout's
    assert zoo.find_model("only-here").file.parent == second and zoo.find_model("mine").file.parent == user
    names = [m.name for m in zoo.list_models()]
    assert names.count("hific-cpu-vbr") == 1 and {"only-here", "mine", "hific-cpu-mi"} <= set(names)
    shipped = zoo.model_info(ROOT / "weights" / "hific-cpu-vbr.safetensors")
    assert zoo.find_weights("hific-cpu-vbr", shipped.digest).file == shipped.file  # files made with it still decode
    assert zoo.export_dir() == first
