import io

import numpy as np
import pytest
from PIL import Image

from hificodec.imaging.images import ImageError, atomic_write, load_rgb


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


def test_one_bit_images():
    bits = Image.new("1", (9, 5), 1)
    bits.putpixel((0, 0), 0)
    out = load_rgb(encode(bits)).rgb8
    assert out.shape == (5, 9, 3) and tuple(out[0, 0]) == (0, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)


def test_animated_images_code_the_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    loaded = load_rgb(buf.getvalue())
    assert loaded.rgb8[0, 0, 0] > 200 and loaded.rgb8[0, 0, 2] < 50  # red, the first frame
    assert any("first of 2 frames" in n for n in loaded.notes)


def test_icc_profiles_are_converted_or_reported():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.new("RGB", (6, 6), (200, 120, 40))
    loaded = load_rgb(encode(img, icc_profile=srgb))
    assert "converted ICC profile to sRGB" in loaded.notes
    assert np.abs(loaded.rgb8.astype(int) - (200, 120, 40)).max() <= 2  # sRGB -> sRGB: unchanged
    broken = load_rgb(encode(img, icc_profile=b"not a profile"))
    assert "ignored an unreadable ICC profile" in broken.notes and tuple(broken.rgb8[0, 0]) == (200, 120, 40)


def test_truncated_jpeg_is_refused():
    jpeg = encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")
    with pytest.raises(ImageError):
        load_rgb(jpeg[:100])
