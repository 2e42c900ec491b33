import io

import numpy as np
import pytest
from PIL import Image

from hificodec.images import ImageError, atomic_write, load_rgb


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grayscale_palette_cmyk():
    gray = Image.new("L", (5, 4), 100)
    assert load_rgb(encode(gray)).rgb8.shape == (4, 5, 3)
    pal = Image.new("RGB", (6, 3), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert tuple(load_rgb(encode(pal)).rgb8[0, 0]) == (10, 200, 30)
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))
    assert load_rgb(encode(cmyk, "JPEG")).rgb8.mean() > 240  # white


def test_alpha_is_flattened_onto_white():
    rgba = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    loaded = load_rgb(encode(rgba))
    assert (loaded.rgb8 == 255).all()
    assert any("transparency" in n for n in loaded.notes)
    la = Image.new("LA", (3, 3), (0, 255))
    assert (load_rgb(encode(la)).rgb8 == 0).all()


def test_16_bit_is_rounded_to_8_bit():
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 257 * 100
    img = Image.fromarray(arr)  # mode I;16
    out = load_rgb(encode(img)).rgb8
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 100


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when viewing
    out = load_rgb(encode(img, "JPEG", exif=exif)).rgb8
    assert out.shape == (40, 20, 3)


def test_corrupt_and_non_images():
    png = encode(Image.new("RGB", (64, 64), (1, 2, 3)))
    with pytest.raises(ImageError, match="not a recognized image"):
        load_rgb(b"hello world")
    with pytest.raises(ImageError):
        load_rgb(png[: len(png) // 2])


def test_decompression_bomb_limit():
    png = encode(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageError, match="too large"):
        load_rgb(png, max_pixels=1000)
    assert load_rgb(png, max_pixels=None).rgb8.shape == (100, 100, 3)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp files left
