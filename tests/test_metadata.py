"""Photo metadata (EXIF, XMP, ICC note) through encode and decode, and the format's section."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import TINY, random_image
from hificodec.format import bitstream
from hificodec.format.bitstream import BitstreamError, HfcFile, Metadata, parse

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'tiff:Orientation="6"><dc:creator>Ann Example</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')


@pytest.fixture
def camera_jpeg(tmp_path):
    """A camera-style JPEG: make, model, dates, orientation 6 (stored sideways), an ICC
    profile and an XMP packet."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = "Canon", "EOS 5D", "2024:05:06 07:08:09", 6
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:00"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "camera.jpg"
    Image.fromarray(random_image(40, 64)).save(path, exif=exif, icc_profile=icc, xmp=XMP, quality=95)
    return path


def _read_back(path):
    im = Image.open(path)
    exif = im.getexif()
    xmp = im.info.get("xmp", b"")
    return im, exif, (xmp.encode() if isinstance(xmp, str) else xmp)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_camera_jpeg_keeps_its_metadata_through_hfc(run, camera_jpeg, tmp_path, ext):
    hfc, out = tmp_path / "c.hfc", tmp_path / f"out.{ext}"
    assert run("encode", camera_jpeg, "-o", hfc, "--model", TINY).exit_code == 0
    assert run("decode", hfc, "-o", out).exit_code == 0
    im, exif, xmp = _read_back(out)
    assert im.size == (40, 64)  # orientation 6 applied to the pixels ...
    assert exif[0x0112] == 1  # ... so the kept EXIF and XMP say upright
    assert (exif[0x010F], exif[0x0110], exif[0x0132]) == ("Canon", "EOS 5D", "2024:05:06 07:08:09")
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:00"
    assert b'tiff:Orientation="1"' in xmp and b"<dc:creator>Ann Example</dc:creator>" in xmp
    assert im.info.get("icc_profile")  # tagged sRGB: the pixels were converted from the input's profile
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"])))


def test_metadata_none_and_subsets(run, camera_jpeg, tmp_path):
    plain = tmp_path / "plain.hfc"
    assert run("encode", camera_jpeg, "-o", plain, "--model", TINY, "--metadata", "none").exit_code == 0
    data = plain.read_bytes()
    assert data[5] == 0 and not parse(data).metadata  # no section: the file as before metadata existed
    assert run("decode", plain, "-o", tmp_path / "plain.jpg").exit_code == 0
    _, exif, xmp = _read_back(tmp_path / "plain.jpg")
    assert len(exif) == 0 and not xmp

    full = tmp_path / "full.hfc"
    assert run("encode", camera_jpeg, "-o", full, "--model", TINY).exit_code == 0
    assert parse(full.read_bytes()).z_string == parse(data).z_string  # the pixels' bits are unchanged
    assert run("decode", full, "-o", tmp_path / "stripped.jpg", "--metadata", "none").exit_code == 0
    _, exif, xmp = _read_back(tmp_path / "stripped.jpg")
    assert len(exif) == 0 and not xmp

    only = tmp_path / "exif.hfc"
    assert run("encode", camera_jpeg, "-o", only, "--model", TINY, "--metadata", "exif").exit_code == 0
    meta = parse(only.read_bytes()).metadata
    assert meta.exif and not meta.xmp and not meta.icc_note
    assert run("encode", camera_jpeg, "-o", tmp_path / "x.hfc", "--metadata", "gps").exit_code == 2


def test_info_shows_what_a_file_holds(run, camera_jpeg, tmp_path):
    hfc = tmp_path / "c.hfc"
    run("encode", camera_jpeg, "-o", hfc, "--model", TINY)
    text = run("info", hfc).output
    assert "Canon EOS 5D, 2024:05:06 07:08:00" in text and "EXIF" in text and "XMP" in text
    record = json.loads(run("info", hfc, "--json").output)["metadata"]
    assert record["camera"] == "Canon EOS 5D" and record["xmp_bytes"] == len(XMP) and record["icc_note"]


def test_exif_orientation_is_patched_in_place():
    from hificodec.imaging.metadata import upright_exif

    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "Nikon", 8
    raw = exif.tobytes()[6:]  # without the "Exif\0\0" prefix
    patched = upright_exif(raw)
    assert len(patched) == len(raw) and sum(a != b for a, b in zip(raw, patched)) == 1
    check = Image.Exif()
    check.load(patched)
    assert check[0x0112] == 1 and check[0x010F] == "Nikon"
    assert upright_exif(b"garbage") == b"garbage"


def _sample(metadata: Metadata) -> bytes:
    return HfcFile("m", "ab" * 32, 7, 9, b"z", b"yyy", 256, metadata).to_bytes()


def _with_section(section: bytes) -> bytes:
    """A file whose metadata section is ``section`` (valid CRC), to forge sections."""
    body = _sample(Metadata(xmp=b"x"))[:-4]
    start = body.index(b"yyy") + 3
    body = body[:start] + struct.pack(">I", len(section)) + section
    return body + struct.pack(">I", zlib.crc32(body))


def test_section_round_trips_and_is_covered_by_the_crc():
    meta = Metadata(b"II*\x00" + b"\x00" * 20, XMP, "Display P3")
    data = _sample(meta)
    assert data[5] == bitstream.FLAG_METADATA and parse(data).metadata == meta
    for i in range(len(data) - 60, len(data) - 4):  # every byte of the section
        with pytest.raises(BitstreamError):
            parse(data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:])


@pytest.mark.parametrize("section,message", [
    (b"\x02\x01\x00\x00\x00\x01x", "section version 2"),
    (b"\x01\x01\x00\x00\x00\x09abc", "bad entry length"),
    (b"\x01\x01\x00\x00\x00\x00", "bad entry length"),
    (b"\x01\x01\x00\x00", "cut short"),
    (b"\x01\x02\x00\x00\x00\x01a\x02\x00\x00\x00\x01b", "twice"),
    (b"\x01\x03\x00\x00\x00\x01\xff", "not UTF-8"),
])
def test_forged_sections_are_refused(section, message):
    with pytest.raises(BitstreamError, match=message):
        parse(_with_section(section))


def test_section_limits_and_unknown_kinds():
    assert parse(_with_section(b"\x01\x09\x00\x00\x00\x02ab\x02\x00\x00\x00\x01x")).metadata == Metadata(xmp=b"x")
    huge = _with_section(b"\x01" + b"\x00" * bitstream.MAX_METADATA)
    with pytest.raises(BitstreamError, match="limit"):
        parse(huge)
    data = bytearray(_sample(Metadata(xmp=b"x")))
    data[5] = 0x03  # an unknown flag bit beside the metadata one
    with pytest.raises(BitstreamError, match="flags"):
        parse(bytes(data))
    with pytest.raises(ValueError, match="limit"):
        Metadata(xmp=b"x" * bitstream.MAX_METADATA).to_bytes()


def test_pillow_plugin_carries_metadata(tiny_weights_dir, camera_jpeg, tmp_path, monkeypatch):
    from hificodec import pillow_plugin

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    monkeypatch.setattr(pillow_plugin, "_pools", {})
    pillow_plugin.register_hfc_opener()
    Image.open(camera_jpeg).save(tmp_path / "p.hfc", model=TINY)  # the image's own EXIF and XMP by default
    im = Image.open(tmp_path / "p.hfc")
    assert im.getexif()[0x010F] == "Canon" and im.getexif()[0x0112] == 1 and b"Ann Example" in im.info["xmp"]
    Image.open(camera_jpeg).save(tmp_path / "q.hfc", model=TINY, exif=b"", xmp=b"")
    assert not parse((tmp_path / "q.hfc").read_bytes()).metadata
    assert np.asarray(im).shape == (64, 40, 3)


def test_a_tiff_input_gives_its_photo_tags_not_its_layout(run, camera_jpeg, tmp_path):
    """A TIFF keeps EXIF in its own directory beside its layout tags (strip offsets, sizes);
    only the photo's tags and the Exif sub-directory go into the .hfc file."""
    assert run("encode", camera_jpeg, "-o", tmp_path / "a.hfc", "--model", TINY).exit_code == 0
    assert run("decode", tmp_path / "a.hfc", "-o", tmp_path / "a.tif").exit_code == 0
    assert run("encode", tmp_path / "a.tif", "-o", tmp_path / "b.hfc", "--model", TINY).exit_code == 0
    exif = Image.Exif()
    exif.load(parse((tmp_path / "b.hfc").read_bytes()).metadata.exif)
    assert exif[0x010F] == "Canon" and exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:00"
    assert 0x0111 not in exif and 0x0100 not in exif  # no StripOffsets, no ImageWidth
