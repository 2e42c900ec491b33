"""The .hfc container, version 2 (specified byte by byte in docs/bitstream.md).

Pure Python, no torch: ``hfc info`` and every refusal (bad magic, unknown version, truncation,
checksum mismatch, absurd dimensions) happen before any model or large buffer is touched.

    magic        4  b"\\x89HFC"
    version      1  2 (version 1 is read too: it has no quality field)
    flags        1  bit 0: a metadata section follows y; other bits reserved (0)
    name_len     1  length of the model name, 1..64
    name         n  model name, ASCII
    digest      32  SHA-256 of the weights file the decoder must use
    width        4  uint32, big-endian, >= 1
    height       4  uint32, big-endian, >= 1
    quality      2  uint16, big-endian: the rate level times 256 (0 for single-rate models)
    z_len        4  uint32, length of the hyper-latent string
    z            .  range-coded hyper-latent z (CompressAI ans)
    y_len        4  uint32, length of the latent string
    y            .  range-coded latent y
    [meta_len    4  uint32, length of the metadata section    (only with flags bit 0)
     metadata    .  version 1, then entries: kind, uint32 length, bytes]
    crc32        4  CRC-32 (zlib) of every byte before it

beta is deliberately absent: the receiver chooses it.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"\x89HFC"
VERSION = 2
READABLE_VERSIONS = (1, 2)
QUALITY_SCALE = 256  # quality is stored in 1/256 steps
MAX_NAME = 64
# A model name is also a file name under weights/: no separators, no leading dot.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SIDE = 65535  # like JPEG; also bounds the latent sizes a decoder will allocate
DEFAULT_MAX_PIXELS = 120_000_000
_FIXED = struct.Struct(">4sBBB")  # magic, version, flags, name_len
_DIMS = struct.Struct(">II")
_LEN = struct.Struct(">I")
_QUALITY = struct.Struct(">H")
DIGEST_BYTES = 32
FLAG_METADATA = 0x01
METADATA_VERSION = 1
# Entry kinds of the metadata section. A reader skips kinds it does not know, so later kinds can
# be added without a new section version.
META_EXIF, META_XMP, META_ICC_NOTE = 1, 2, 3
MAX_METADATA = 1 << 20  # bytes in all: EXIF is at most 64 KiB in a JPEG; XMP is text
_ENTRY = struct.Struct(">BI")


@dataclass(frozen=True)
class Metadata:
    """Photo metadata carried beside the pixels (docs/bitstream.md, "Metadata section")."""

    exif: bytes = b""  # a TIFF-structured EXIF block (no "Exif\0\0" prefix), orientation 1
    xmp: bytes = b""  # an XMP packet (UTF-8 XML), orientation 1
    icc_note: str = ""  # description of the ICC profile the pixels were converted to sRGB from

    def __bool__(self) -> bool:
        return bool(self.exif or self.xmp or self.icc_note)

    def to_bytes(self) -> bytes:
        entries = [(META_EXIF, self.exif), (META_XMP, self.xmp), (META_ICC_NOTE, self.icc_note.encode("utf-8"))]
        body = bytes([METADATA_VERSION]) + b"".join(_ENTRY.pack(k, len(v)) + v for k, v in entries if v)
        if len(body) > MAX_METADATA:
            raise ValueError(f"metadata of {len(body)} bytes exceeds the limit of {MAX_METADATA}")
        return body

    @classmethod
    def parse(cls, section: bytes) -> "Metadata":
        """Bounds are checked before every slice; each known kind may appear once."""
        if not section or section[0] != METADATA_VERSION:
            raise BitstreamError(f"unsupported metadata section version {section[0] if section else 'none'}")
        found: dict[int, bytes] = {}
        pos = 1
        while pos < len(section):
            if pos + _ENTRY.size > len(section):
                raise BitstreamError("corrupt metadata section (entry header cut short)")
            kind, length = _ENTRY.unpack_from(section, pos)
            pos += _ENTRY.size
            if length == 0 or pos + length > len(section):
                raise BitstreamError("corrupt metadata section (bad entry length)")
            if kind in found:
                raise BitstreamError(f"corrupt metadata section (entry kind {kind} twice)")
            found[kind] = section[pos : pos + length]
            pos += length
        try:
            note = found.get(META_ICC_NOTE, b"").decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError("corrupt metadata section (ICC note is not UTF-8)") from None
        return cls(bytes(found.get(META_EXIF, b"")), bytes(found.get(META_XMP, b"")), note)


class BitstreamError(ValueError):
    """The bytes are not a valid .hfc file this decoder can read (one-line message)."""


@dataclass(frozen=True)
class HfcFile:
    model: str
    weights_digest: str  # hex
    width: int
    height: int
    z_string: bytes
    y_string: bytes
    quality_code: int = 0  # rate level * QUALITY_SCALE
    metadata: Metadata = Metadata()  # empty: no section, flags 0 (the file as before metadata existed)

    @property
    def quality(self) -> float:
        return self.quality_code / QUALITY_SCALE

    def to_bytes(self) -> bytes:
        if not (1 <= len(self.model) <= MAX_NAME and MODEL_NAME.fullmatch(self.model)):
            raise ValueError(f"model name must be 1..{MAX_NAME} of A-Z a-z 0-9 . _ - (not starting with . _ -)")
        name = self.model.encode("ascii")
        digest = bytes.fromhex(self.weights_digest)
        if len(digest) != DIGEST_BYTES:
            raise ValueError("weights digest must be a SHA-256 (32 bytes)")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise ValueError(f"image sides must be 1..{MAX_SIDE}")
        if not 0 <= self.quality_code <= 0xFFFF:
            raise ValueError("quality code must fit in 16 bits")
        section = self.metadata.to_bytes() if self.metadata else b""
        body = b"".join(
            [
                _FIXED.pack(MAGIC, VERSION, FLAG_METADATA if section else 0, len(name)),
                name,
                digest,
                _DIMS.pack(self.width, self.height),
                _QUALITY.pack(self.quality_code),
                _LEN.pack(len(self.z_string)),
                self.z_string,
                _LEN.pack(len(self.y_string)),
                self.y_string,
                _LEN.pack(len(section)) + section if section else b"",
            ]
        )
        return body + _LEN.pack(zlib.crc32(body))

    @property
    def pixels(self) -> int:
        return self.width * self.height


def file_size(model: str, z_string: bytes, y_string: bytes, metadata: Metadata = Metadata()) -> int:
    """The bytes of the file ``HfcFile.to_bytes`` writes for these strings (whatever the digest,
    size and quality: their fields have fixed widths), for rate measurements before export."""
    section = metadata.to_bytes() if metadata else b""
    return (_FIXED.size + len(model.encode("ascii")) + DIGEST_BYTES + _DIMS.size + _QUALITY.size
            + 2 * _LEN.size + len(z_string) + len(y_string) + (_LEN.size + len(section) if section else 0) + _LEN.size)


def parse(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> HfcFile:
    """Validates and splits a .hfc file. Every check is done on the header and the total
    length before anything proportional to the claimed sizes is allocated."""
    if len(data) < _FIXED.size or data[:4] != MAGIC:
        if len(data) < 4 and MAGIC.startswith(bytes(data)):
            raise BitstreamError("truncated file (ends inside the header)")
        raise BitstreamError("not a .hfc file (wrong magic bytes)")
    _, version, flags, name_len = _FIXED.unpack_from(data, 0)
    if version not in READABLE_VERSIONS:
        raise BitstreamError(
            f"unsupported .hfc format version {version} (this hfc reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    quality_bytes = _QUALITY.size if version >= 2 else 0
    if flags & ~FLAG_METADATA or (flags and version < 2):
        raise BitstreamError(f"unsupported .hfc flags 0x{flags:02x}")
    if not 1 <= name_len <= MAX_NAME:
        raise BitstreamError("corrupt header (bad model name length)")
    pos = _FIXED.size
    header_end = pos + name_len + DIGEST_BYTES + _DIMS.size + quality_bytes + _LEN.size
    if len(data) < header_end:
        raise BitstreamError("truncated file (ends inside the header)")
    try:
        model = data[pos : pos + name_len].decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt header (model name is not ASCII)") from None
    if not MODEL_NAME.fullmatch(model):
        raise BitstreamError("corrupt header (model name has characters a model name cannot have)")
    pos += name_len
    digest = data[pos : pos + DIGEST_BYTES].hex()
    pos += DIGEST_BYTES
    width, height = _DIMS.unpack_from(data, pos)
    pos += _DIMS.size
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise BitstreamError(f"corrupt header (image size {width}x{height} outside 1..{MAX_SIDE})")
    if max_pixels is not None and width * height > max_pixels:
        raise BitstreamError(
            f"image of {width}x{height} exceeds the limit of {max_pixels} pixels (raise it with --max-pixels)"
        )
    quality_code = 0
    if quality_bytes:
        (quality_code,) = _QUALITY.unpack_from(data, pos)
        pos += quality_bytes
    z_string, pos = _length_prefixed(data, pos, "hyper-latent string")
    y_string, pos = _length_prefixed(data, pos, "latent string")
    section = b""
    if flags & FLAG_METADATA:
        section, pos = _length_prefixed(data, pos, "metadata section", limit=MAX_METADATA)
    end = pos + _LEN.size
    if end < len(data):
        raise BitstreamError(f"corrupt file ({len(data) - end} unexpected bytes after the end)")
    (crc,) = _LEN.unpack_from(data, pos)
    if zlib.crc32(data[:pos]) != crc:
        raise BitstreamError("corrupt file (checksum mismatch)")
    metadata = Metadata.parse(section) if section else Metadata()  # after the CRC: bytes are as written
    return HfcFile(model, digest, width, height, bytes(z_string), bytes(y_string), quality_code, metadata)


def _length_prefixed(data: bytes, pos: int, what: str, limit: int | None = None) -> tuple[bytes, int]:
    """The uint32-length-prefixed field at ``pos`` and the position after it; the CRC must
    still fit behind it. ``limit``: the field may not be empty or longer."""
    (length,) = _LEN.unpack_from(data, pos)
    pos += _LEN.size
    if limit is not None and not 1 <= length <= limit:
        raise BitstreamError(f"corrupt file ({what} of {length} bytes, limit {limit})")
    if pos + length + _LEN.size > len(data):
        raise BitstreamError(f"truncated file ({what} cut short)")
    return data[pos : pos + length], pos + length
