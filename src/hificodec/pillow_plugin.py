"""Pillow plugin: open and save .hfc files through Pillow, as pillow-heif and pillow-jxl do.

    from PIL import Image
    from hificodec.pillow_plugin import register_hfc_opener

    register_hfc_opener()                 # once; beta=0.0 here sets the default realism
    im = Image.open("photo.hfc")          # size and mode come from the header, nothing decoded yet
    im.beta = 0.0                         # per image, before the pixels are read (default 2.56)
    im.convert("L").save("gray.png")      # decoded on first use of the pixels
    Image.open("photo.png").save("photo.hfc", quality=1)   # encode; also model=, refine=, device=,
                                                           # exif=, xmp= (default: the image's own)

Pillow has no entry-point discovery for third-party formats, so the registration call is needed.
Errors are Pillow's own: a file that is not .hfc is an ``UnidentifiedImageError``; a damaged one
raises ``ValueError`` with the decoder's one-line reason; a missing model, ``OSError``.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFile

from hificodec.format import bitstream
from hificodec.imaging.metadata import EXIF_PREFIX, upright

FORMAT = "HFC"
EXTENSION = ".hfc"
MIME = "image/x-hfc"

_settings = {"beta": None, "device": "auto"}
_pools: dict = {}  # one CodecPool per device: each model is loaded once per process


def _pool(device: str):
    from hificodec.codec import CodecPool

    if device not in _pools:
        _pools[device] = CodecPool(device, runtime="auto")  # OpenVINO where installed, as hfc decodes
    return _pools[device]


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == bitstream.MAGIC


class HfcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "hificodec generative image (HiFiC, realism chosen at decode)"

    def _open(self) -> None:
        self._hfc = bitstream.parse(self.fp.read())  # damaged data: BitstreamError, a ValueError
        self._size = (self._hfc.width, self._hfc.height)
        self._mode = "RGB"
        self.info["model"] = self._hfc.model
        self.info["quality"] = self._hfc.quality
        if self._hfc.metadata.exif:  # so that im.getexif() and a later save carry them on
            self.info["exif"] = EXIF_PREFIX + self._hfc.metadata.exif
        if self._hfc.metadata.xmp:
            self.info["xmp"] = self._hfc.metadata.xmp
        self.beta = _settings["beta"]  # None: the codec's default (2.56)
        self.tile = [("raw", (0, 0) + self._size, 0, ("RGB", 0, 1))]  # a plain tuple: Pillow 10 has no _Tile
        self._decoded = False

    def load(self):
        if self.tile and not self._decoded:
            from hificodec.codec import DEFAULT_BETA, CodecError

            beta = DEFAULT_BETA if self.beta is None else float(self.beta)
            try:
                rgb8 = _pool(_settings["device"]).for_file(self._hfc).decode(self._hfc, beta)
            except CodecError as exc:  # no such model installed, wrong weights, beta out of range
                raise OSError(str(exc)) from None
            if self._exclusive_fp and self.fp is not None:
                self.fp.close()
            # the decoded pixels become the "file" the raw tile reads
            self.fp, self._exclusive_fp = io.BytesIO(rgb8.tobytes()), True
            self._decoded = True
        return super().load()


def _save(im: Image.Image, fp, filename) -> None:
    from hificodec.codec import CodecError
    from hificodec.imaging.images import pil_to_rgb8
    from hificodec.zoo import DEFAULT_MODEL, ModelNotFound, WeightsError

    options = im.encoderinfo
    # the image's own EXIF and XMP unless exif=/xmp= say otherwise; the pixels are coded upright
    # (pil_to_rgb8 applies the orientation), so the tags say 1
    metadata = upright(options.get("exif", im.info.get("exif")), options.get("xmp", im.info.get("xmp")))
    try:
        codec = _pool(options.get("device", _settings["device"])).for_model(options.get("model", DEFAULT_MODEL))
        data = codec.encode(pil_to_rgb8(im), options.get("quality"), int(options.get("refine", 0)), metadata)
    except (ModelNotFound, WeightsError) as exc:
        raise OSError(str(exc)) from None
    except CodecError as exc:
        raise ValueError(str(exc)) from None
    fp.write(data)


def register_hfc_opener(beta: float | None = None, device: str = "auto") -> None:
    """Lets Pillow open and save .hfc files. ``beta``: the default realism of every opened
    file (None: 2.56; set ``im.beta`` per image instead); ``device``: where models run."""
    _settings["beta"] = beta
    _settings["device"] = device
    Image.register_open(FORMAT, HfcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
