import struct
import zlib

import pytest

from hificodec.format import bitstream
from hificodec.format.bitstream import BitstreamError, HfcFile, parse

DIGEST = "ab" * 32


def sample(**kw) -> bytes:
    fields = dict(model="hific-cpu-mi", weights_digest=DIGEST, width=17, height=33, z_string=b"\x01\x02\x03", y_string=b"y" * 40)
    fields.update(kw)
    return HfcFile(**fields).to_bytes()


def test_round_trip_fields():
    data = sample()
    hfc = parse(data)
    assert (hfc.model, hfc.weights_digest, hfc.width, hfc.height) == ("hific-cpu-mi", DIGEST, 17, 33)
    assert hfc.z_string == b"\x01\x02\x03" and hfc.y_string == b"y" * 40
    assert data[:4] == b"\x89HFC" and data[4] == bitstream.VERSION


def test_layout_matches_docs():
    data = sample()
    name = b"hific-cpu-mi"
    assert data[5] == 0 and data[6] == len(name) and data[7 : 7 + len(name)] == name
    pos = 7 + len(name) + 32
    assert struct.unpack(">II", data[pos : pos + 8]) == (17, 33)
    assert struct.unpack(">H", data[pos + 8 : pos + 10]) == (0,)
    assert struct.unpack(">I", data[pos + 10 : pos + 14]) == (3,)  # z_len
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_wrong_magic():
    with pytest.raises(BitstreamError, match="not a .hfc file"):
        parse(b"\x89PNG\r\n\x1a\n" + sample()[8:])


def test_unknown_version():
    data = bytearray(sample())
    data[4] = 3
    with pytest.raises(BitstreamError, match="unsupported .hfc format version 3"):
        parse(bytes(data))


def test_quality_round_trip():
    hfc = parse(sample(quality_code=2 * bitstream.QUALITY_SCALE + 128))
    assert hfc.quality == 2.5


def test_version_1_files_are_read():
    # Version 1 had no quality field; such files decode at quality 0.
    body = (struct.pack(">4sBBB", b"\x89HFC", 1, 0, 1) + b"m" + bytes.fromhex(DIGEST) + struct.pack(">II", 5, 6)
            + struct.pack(">I", 2) + b"zz" + struct.pack(">I", 3) + b"yyy")
    hfc = parse(body + struct.pack(">I", zlib.crc32(body)))
    assert (hfc.model, hfc.width, hfc.height, hfc.z_string, hfc.y_string, hfc.quality) == ("m", 5, 6, b"zz", b"yyy", 0.0)


def test_every_truncation_is_refused():
    data = sample()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            parse(data[:n])


def test_every_flipped_byte_is_refused():
    data = sample()
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(data)
            corrupt[i] ^= mask
            with pytest.raises(BitstreamError):
                parse(bytes(corrupt))


def test_trailing_bytes_refused():
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        parse(sample() + b"\0")


def test_absurd_dimensions_refused_before_allocation():
    # A 30-odd byte header that claims 100000 x 100000 pixels: refused from the header alone.
    header = struct.pack(">4sBBB", b"\x89HFC", 1, 0, 1) + b"m" + bytes(32) + struct.pack(">II", 100000, 100000)
    with pytest.raises(BitstreamError, match="outside 1..65535"):
        parse(header + struct.pack(">I", 0))


def test_huge_string_length_refused():
    header = struct.pack(">4sBBB", b"\x89HFC", 1, 0, 1) + b"m" + bytes(32) + struct.pack(">II", 8, 8)
    with pytest.raises(BitstreamError, match="truncated"):
        parse(header + struct.pack(">I", 4_000_000_000) + b"x" * 10)


def test_pixel_limit():
    data = sample(width=4000, height=4000)
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        parse(data, max_pixels=1_000_000)
    assert parse(data, max_pixels=None).width == 4000


def test_writer_validates():
    with pytest.raises(ValueError):
        sample(width=0)
    with pytest.raises(ValueError):
        sample(model="")
    with pytest.raises(ValueError):
        sample(model="../weights/x")


@pytest.mark.parametrize("name", [b"../../etc/x", b"a/b", b".hidden", b"-x", b"a b", b"a\\b"])
def test_model_names_that_are_paths_refused(name):
    """The model name picks a file under weights/: a file must not point anywhere else."""
    good = sample(model="x" * len(name))
    at = 7
    forged = good[:at] + name + good[at + len(name) : -4]
    forged += struct.pack(">I", zlib.crc32(forged))
    with pytest.raises(BitstreamError, match="model name"):
        parse(forged)


# Property test: any mutation of a valid file is either refused with BitstreamError or is itself a
# canonical .hfc file (it re-serializes to the very same bytes); no other exception escapes.
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.integers(0, 200),
    st.binary(max_size=16),
)
def test_mutated_files_never_escape(edits, cut, splice):
    data = bytearray(sample())
    for pos, value in edits:
        data[pos % len(data)] = value
    mutated = bytes(data[: len(data) - cut % (len(data) + 1)]) + splice
    try:
        parsed = parse(mutated)
    except BitstreamError:
        return
    assert parsed.to_bytes() == mutated


def test_fast_scale_indexes_match_compressai():
    """entropy.GaussianConditional.build_indexes (one binary search) picks the same CDF table
    as CompressAI's (one comparison per table entry), ties and out-of-range scales included."""
    import torch
    from compressai.entropy_models import GaussianConditional as CompressAIGaussianConditional

    from hificodec.nn.entropy import SCALES_MIN, GaussianConditional, scale_table

    ours, theirs = GaussianConditional(scale_table(), scale_bound=SCALES_MIN), \
        CompressAIGaussianConditional(scale_table(), scale_bound=SCALES_MIN)
    table = ours.scale_table
    torch.manual_seed(0)
    scales = torch.cat([torch.rand(50000) * 300, table, table - 1e-6, table + 1e-6,
                        torch.tensor([0.0, -1.0, 1e9, SCALES_MIN])]).reshape(1, -1, 1, 1)
    assert torch.equal(ours.build_indexes(scales), theirs.build_indexes(scales))


def test_chunked_range_coding_writes_and_reads_compressais_bytes(monkeypatch):
    """entropy.GaussianConditional codes the latent in pieces (bounded memory): the strings must
    be CompressAI's to the byte, and decoding must give back its values, whether the latent is
    one piece or many (a chunk may split the stream anywhere)."""
    import torch
    from compressai.entropy_models import GaussianConditional as CompressAIGaussianConditional

    from hificodec.nn.entropy import SCALES_MIN, GaussianConditional, scale_table

    ours, theirs = GaussianConditional(scale_table(), scale_bound=SCALES_MIN), \
        CompressAIGaussianConditional(scale_table(), scale_bound=SCALES_MIN)
    ours.update()
    theirs.update()
    torch.manual_seed(1)
    scales = torch.rand(2, 6, 17, 23) * 20 + 0.05
    means = torch.randn(2, 6, 17, 23) * 3
    y = means + torch.randn(2, 6, 17, 23) * scales * 1.5  # some symbols far in the tails
    indexes = ours.build_indexes(scales)
    reference = theirs.compress(y, indexes, means=means)
    expected = theirs.decompress(reference, indexes, means=means)
    for chunk in (1 << 20, 1000, 777):
        monkeypatch.setattr(GaussianConditional, "CHUNK", chunk)
        assert ours.compress(y, indexes, means=means) == reference
        assert torch.equal(ours.decompress(reference, indexes, means=means), expected)


def test_tiled_entropy_parameters_match_one_pass(monkeypatch):
    """The hyper-synthesis of a large latent runs in tiles (bounded memory): the means and scales
    it predicts must be the one-pass values on the 1/256 grid, and images up to PARAM_TILE side
    latents are computed in one pass exactly as before."""
    import torch

    from hificodec.nn import entropy

    torch.manual_seed(2)
    model = entropy.HyperpriorLatentModel(8, 8).eval()
    for module in (model.mean_synthesis, model.scale_synthesis):  # larger outputs than at init
        for p in module.parameters():
            p.data.mul_(3.0)
    z_hat = torch.randn(1, 8, 37, 45).mul(4).round()
    tiled = model.entropy_parameters(z_hat)
    monkeypatch.setattr(entropy, "PARAM_TILE", 1000)  # one pass
    whole = model.entropy_parameters(z_hat)
    assert all(torch.equal(a, b) for a, b in zip(tiled, whole))
    assert whole[0].abs().max() > 1 and whole[1].max() > 1


def test_file_size_counts_what_to_bytes_writes():
    """Calibration measures rates with file_size before a digest exists: it must agree with the
    real file, with and without a metadata section."""
    for name, meta in (("m", bitstream.Metadata()), ("hific-cpu-vbr", bitstream.Metadata(exif=b"II*\0", icc_note="p"))):
        hfc = bitstream.HfcFile(name, "ab" * 32, 640, 480, b"z" * 17, b"y" * 1234, 300, meta)
        assert bitstream.file_size(name, hfc.z_string, hfc.y_string, meta) == len(hfc.to_bytes())
