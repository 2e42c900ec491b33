"""Photo metadata through the codec: EXIF, XMP and a note of the ICC profile, read from an input
image and written back to the formats that carry them (PNG, JPEG, WebP, TIFF), as cwebp
-metadata, avifenc and cjxl do. The section's byte layout is in bitstream.py.

The coded pixels are already upright and sRGB (images.py applies the EXIF orientation and
converts an ICC profile), so the orientation kept in EXIF and XMP is set to 1 (as libjxl does),
and decoded images are tagged sRGB rather than with the original profile.
"""

from __future__ import annotations

import functools
import io
import re
import struct

from PIL import Image, ImageCms, PngImagePlugin

from hificodec.format.bitstream import MAX_METADATA, Metadata

KINDS = ("exif", "xmp", "icc")
EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>\s*)([1-8])')


def parse_selection(text: str) -> set[str]:
    """--metadata: 'all', 'none', or a comma-separated subset of exif, xmp, icc."""
    text = text.strip().lower()
    if text == "all":
        return set(KINDS)
    if text == "none":
        return set()
    chosen = {k.strip() for k in text.split(",") if k.strip()}
    unknown = chosen - set(KINDS)
    if unknown or not chosen:
        raise ValueError(f"--metadata takes all, none, or some of {', '.join(KINDS)} (got {text!r})")
    return chosen


def upright_exif(tiff: bytes) -> bytes:
    """The EXIF block with IFD0's orientation entry set to 1, patched in place so every other
    byte (maker notes and their offsets included) stays as the camera wrote it. Blocks that do
    not parse are returned unchanged."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return tiff
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return tiff
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    out = bytearray(tiff)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag == ORIENTATION_TAG and kind == 3 and n == 1:  # one SHORT, stored in the entry itself
            struct.pack_into(order + "H", out, entry + 8, 1)
    return bytes(out)


def upright_xmp(xmp: bytes) -> bytes:
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)


def upright(exif, xmp, icc_note: str = "") -> Metadata:
    """Metadata as stored beside upright pixels, from EXIF as Pillow gives it (bytes with or
    without JPEG's "Exif\0\0", or an Image.Exif) and XMP (bytes or text): the prefix dropped,
    the orientation of both set to 1."""
    exif = exif.tobytes() if isinstance(exif, Image.Exif) else bytes(exif or b"")
    exif = exif[len(EXIF_PREFIX):] if exif.startswith(EXIF_PREFIX) else exif
    xmp = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp or b"")
    return Metadata(upright_exif(exif), upright_xmp(xmp), icc_note)


def _raw_xmp(img: Image.Image):
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    if not xmp and hasattr(img, "tag_v2"):  # TIFF keeps XMP as tag 700
        xmp = img.tag_v2.get(700, b"")
    return xmp


def _raw_exif(img: Image.Image) -> bytes:
    exif = img.info.get("exif", b"")
    if not exif and img.format == "TIFF":  # EXIF tags live in the TIFF's own directory
        exif = _tiff_exif(img)
    return exif


# The tags of a TIFF's own directory that describe the photo rather than the file's layout
# (strip offsets, sizes, compression): description, make, model, orientation, software, date,
# artist, copyright; and its Exif and GPS sub-directories.
_TIFF_PHOTO_TAGS = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_SUB_DIRECTORIES = (0x8769, 0x8825)


def _tiff_exif(img: Image.Image) -> bytes:
    source = img.getexif()
    exif = Image.Exif()
    for tag in _TIFF_PHOTO_TAGS:
        if tag in source:
            exif[tag] = source[tag]
    for tag in _SUB_DIRECTORIES:
        directory = source.get_ifd(tag)
        if directory:
            exif[tag] = dict(directory)
    return exif.tobytes() if len(exif) else b""


def read_metadata(img: Image.Image) -> Metadata:
    """What an opened input image carries, orientation normalised to the upright pixels."""
    exif, xmp, note = _raw_exif(img), _raw_xmp(img), ""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            note = (ImageCms.getProfileDescription(profile) or "").strip() or "unnamed ICC profile"
        except (ImageCms.PyCMSError, OSError, ValueError):
            note = "unreadable ICC profile"
    metadata = upright(exif, xmp, note[:200])
    if len(metadata.to_bytes()) > MAX_METADATA:  # keep what fits rather than refusing the photo
        metadata = Metadata(metadata.exif if len(metadata.exif) < MAX_METADATA // 2 else b"", b"", metadata.icc_note)
    return metadata


def select(metadata: Metadata, kinds: set[str]) -> Metadata:
    return Metadata(metadata.exif if "exif" in kinds else b"", metadata.xmp if "xmp" in kinds else b"",
                    metadata.icc_note if "icc" in kinds else "")


@functools.cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def save_options(metadata: Metadata, fmt: str) -> dict:
    """Pillow save() keywords that write ``metadata`` into an image of format ``fmt``; formats
    that carry none of it (BMP, PPM) get nothing."""
    if fmt not in ("PNG", "JPEG", "WEBP", "TIFF") or not metadata:
        return {}
    options: dict = {}
    if fmt == "TIFF":  # EXIF and XMP are tags of the TIFF's own directory
        exif = Image.Exif()
        if metadata.exif:
            try:  # unlike the other formats, TIFF parses the EXIF it writes: a damaged block is left out
                exif.load(metadata.exif)
                exif[0x8769] = dict(exif.get_ifd(0x8769))  # the Exif sub-directory, written as one
            except Exception:  # noqa: BLE001 - Pillow's parser raises many kinds on forged data
                exif = Image.Exif()
        if metadata.xmp:
            exif[700] = metadata.xmp
        options["exif"] = exif
    else:
        if metadata.exif:
            options["exif"] = EXIF_PREFIX + metadata.exif
        if metadata.xmp and fmt == "PNG":  # PNG keeps XMP in an iTXt chunk of this keyword
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = info
        elif metadata.xmp:
            options["xmp"] = metadata.xmp
    if metadata.icc_note:  # the pixels are sRGB now: say so
        options["icc_profile"] = srgb_profile()
    return options


def describe(metadata: Metadata) -> dict:
    """What `hfc info` shows of a file's metadata: sizes, and the camera and date from EXIF."""
    out: dict = {"exif_bytes": len(metadata.exif), "xmp_bytes": len(metadata.xmp), "icc_note": metadata.icc_note}
    if metadata.exif:
        exif = Image.Exif()
        try:
            exif.load(metadata.exif)
            camera = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in (0x010F, 0x0110)).strip()  # Make, Model
            date = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
        except (OSError, ValueError, SyntaxError, struct.error, KeyError, TypeError):
            camera, date = "", None
        out["camera"] = camera or None
        out["date"] = str(date).strip("\x00 ") if date else None
    return out
