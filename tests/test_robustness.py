"""Hostile .hfc files: forged range-coder data and lying headers end in a clean error."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import TINY, random_image
from hificodec import bitstream
from hificodec.codec import CodecError
from hificodec.entropy import safe_rans_input
from hificodec.zoo import DEFAULT_MODEL


def test_forged_strings_never_crash_the_decoder():
    """Random z/y strings behind a valid header (CRC fixed up), with the shipped model.
    CompressAI's rANS decoder reads past the end of such strings and segfaulted within ~30
    cases before safe_rans_input; run in a child so a crash fails the test instead of killing
    pytest."""
    script = textwrap.dedent(f"""
        import os, random, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import torch
        from conftest import random_image
        from hificodec import bitstream
        from hificodec.codec import Codec, CodecError
        torch.set_num_threads(1)
        codec = Codec.load({DEFAULT_MODEL!r}, "cpu")
        rng = random.Random(0)
        outcomes = set()
        for case in range(80):
            h, w = rng.randint(1, 600), rng.randint(1, 600)
            if case % 2:  # forged z (refused before y is read)
                z = os.urandom(rng.choice([0, 1, 3, 4, 8, 50, 500]))
            else:  # genuine z of an image of this size, so the forged y reaches the rANS decoder
                z = bitstream.parse(codec.encode(random_image(h, w, seed=case))).z_string
            y = rng.choice([os.urandom, lambda n: b"\\xff" * n])(rng.choice([0, 1, 3, 4, 8, 50, 5000, 50000]))
            data = bitstream.HfcFile(codec.info.name, codec.info.digest, w, h, z, y).to_bytes()
            try:
                codec.decode(data, 0.0)
                outcomes.add("decoded")
            except CodecError:
                outcomes.add("refused")
        print(sorted(outcomes))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"decoder crashed (exit {result.returncode}): {result.stderr[-500:]}"
    assert result.stdout.strip() == "['refused']"  # forged data never re-encodes to itself


def test_padding_covers_the_worst_case_reads():
    assert safe_rans_input(b"abc", 10) == b"abc" + bytes(4 * 10 + 16 * 3 + 64)


def test_small_file_claiming_a_huge_image_is_refused_quickly(tiny_codec):
    """A real 64x64 file whose header is edited to claim 60000 x 1900 pixels (CRC fixed): the
    hyper-latent no longer re-encodes to itself, so no 114-megapixel decode is attempted."""
    hfc = bitstream.parse(tiny_codec.encode(random_image(64, 64)))
    lying = bitstream.HfcFile(hfc.model, hfc.weights_digest, 60000, 1900, hfc.z_string, hfc.y_string)
    t0 = time.monotonic()
    with pytest.raises(CodecError, match="corrupt latent data"):
        tiny_codec.decode(lying.to_bytes(), 0.0)
    assert time.monotonic() - t0 < 20


def test_valid_files_pass_the_re_encoding_check(tiny_codec):
    for h, w in ((1, 1), (65, 129), (200, 64)):
        data = tiny_codec.encode(random_image(h, w, seed=h))
        assert tiny_codec.decode(data, 0.0).shape == (h, w, 3)
