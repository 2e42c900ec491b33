"""The Pillow plugin: .hfc files opened, converted and saved through Pillow alone."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from conftest import TINY, TINY_VBR, random_image


@pytest.fixture
def plugin(tiny_weights_dir, monkeypatch):
    from hificodec import pillow_plugin

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    monkeypatch.setattr(pillow_plugin, "_pools", {})  # codecs loaded from this weights folder only
    pillow_plugin.register_hfc_opener()
    yield pillow_plugin
    pillow_plugin.register_hfc_opener()  # back to the defaults


def test_open_reads_the_header_and_decodes_on_first_use(plugin, tmp_path, monkeypatch):
    from hificodec.codec import Codec

    Image.fromarray(random_image(21, 35)).save(tmp_path / "a.png")
    Image.open(tmp_path / "a.png").save(tmp_path / "a.hfc", model=TINY_VBR, quality=0.5)
    decodes = []
    original = Codec.decode
    monkeypatch.setattr(Codec, "decode", lambda self, data, beta=2.56: decodes.append(beta) or original(self, data, beta))
    im = Image.open(tmp_path / "a.hfc")
    assert (im.format, im.size, im.mode) == ("HFC", (35, 21), "RGB")
    assert im.info == {"model": TINY_VBR, "quality": 0.5} and decodes == []  # nothing decoded yet
    im.beta = 0.0
    gray = im.convert("L")
    assert gray.size == (35, 21) and decodes == [0.0]
    im.load()
    assert decodes == [0.0]  # decoded once


def test_beta_per_image_and_as_default(plugin, tmp_path, monkeypatch):
    """Per-image beta gives the codec's own pixels at that beta (the shipped model, whose
    output depends on beta)."""
    from hificodec.codec import Codec
    from hificodec.zoo import DEFAULT_MODEL

    monkeypatch.delenv("HFC_WEIGHTS_DIR")
    photo = random_image(48, 64, seed=4)
    Image.fromarray(photo).save(tmp_path / "p.hfc")  # default model, default quality
    codec = Codec.load(DEFAULT_MODEL, "cpu", runtime="auto")  # as the plugin (and hfc) decode
    data = (tmp_path / "p.hfc").read_bytes()
    low, high = Image.open(tmp_path / "p.hfc"), Image.open(tmp_path / "p.hfc")
    low.beta = 0.0
    assert np.array_equal(np.asarray(low), codec.decode(data, 0.0))
    assert np.array_equal(np.asarray(high), codec.decode(data, 2.56))  # the default
    assert not np.array_equal(np.asarray(low), np.asarray(high))
    plugin.register_hfc_opener(beta=1.28)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.hfc")), codec.decode(data, 1.28))


def test_errors_are_pillows_own(plugin, tmp_path):
    (tmp_path / "text.hfc").write_text("not an image")
    with pytest.raises(UnidentifiedImageError):
        Image.open(tmp_path / "text.hfc")
    Image.fromarray(random_image(16, 16)).save(tmp_path / "a.hfc", model=TINY)
    data = (tmp_path / "a.hfc").read_bytes()
    (tmp_path / "bad.hfc").write_bytes(data[:-20] + bytes([data[-20] ^ 1]) + data[-19:])
    with pytest.raises(ValueError, match="checksum"):
        Image.open(tmp_path / "bad.hfc")
    with pytest.raises(OSError, match="not installed"):
        Image.fromarray(random_image(16, 16)).save(tmp_path / "b.hfc", model="no-such-model")
    with pytest.raises(ValueError, match="quality"):
        Image.fromarray(random_image(16, 16)).save(tmp_path / "c.hfc", model=TINY, quality=2)
    assert not (tmp_path / "c.hfc").exists() or (tmp_path / "c.hfc").stat().st_size == 0


def test_save_follows_the_input_policy(plugin, tmp_path):
    """RGBA is flattened onto white, as `hfc encode` does: the same bytes as the CLI's path."""
    from hificodec.codec import Codec

    rgba = np.dstack([random_image(20, 20), np.full((20, 20), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.hfc", model=TINY)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    from hificodec.imaging.images import load_rgb

    expected = Codec.load(TINY, "cpu").encode(load_rgb(tmp_path / "a.png").rgb8)
    assert (tmp_path / "a.hfc").read_bytes() == expected


def test_a_pillow_only_script(tiny_weights_dir, tmp_path):
    """What a user writes: Pillow, one registration line, nothing else of hificodec."""
    Image.fromarray(random_image(30, 40, seed=2)).save(tmp_path / "in.png")
    script = textwrap.dedent(f"""
        from PIL import Image
        from hificodec.pillow_plugin import register_hfc_opener
        register_hfc_opener(beta=0.0)

        Image.open("in.png").save("photo.hfc", model="{TINY}")
        im = Image.open("photo.hfc")
        print(im.format, im.size, im.mode)
        im.convert("L").save("gray.png")
        im.save("again.hfc", model="{TINY}")
        im.save("copy.webp")
        print(Image.open("again.hfc").size, Image.open("copy.webp").size, Image.open("gray.png").mode)
    """)
    env = {**os.environ, "HFC_WEIGHTS_DIR": str(tiny_weights_dir)}
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["HFC (40, 30) RGB", "(40, 30) (40, 30) L"]
    assert (tmp_path / "photo.hfc").read_bytes()[:4] == b"\x89HFC"
