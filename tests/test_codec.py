import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, random_image
from hificodec.codec import Codec, CodecError, CodecPool, decode
from hificodec.format import bitstream


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.mark.parametrize("h,w", [(1, 1), (33, 17), (3, 1000), (64, 64)])
def test_round_trip_odd_sizes(shipped_codec, h, w):
    img = random_image(h, w)
    data = shipped_codec.encode(img)
    hfc = bitstream.parse(data)
    assert (hfc.width, hfc.height) == (w, h)
    out = shipped_codec.decode(data, beta=0.0)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_photo_reconstruction_is_recognizable(shipped_codec, photo):
    data = shipped_codec.encode(photo)
    bpp = 8 * len(data) / (photo.shape[0] * photo.shape[1])
    assert 0.02 < bpp < 1.5
    low = shipped_codec.decode(data, beta=0.0)
    high = shipped_codec.decode(data, beta=2.56)
    assert low.shape == high.shape == photo.shape
    # Both ends of the beta range must resemble the input (a trained model, not noise: an
    # untrained one gives ~11 dB, the shipped one 25.4 dB on this photo) ...
    assert psnr(photo, low) > 21.0
    assert psnr(photo, high) > 21.0
    # ... and beta must change the picture (weakly so far: 0.42 levels on average, see docs/models.md).
    assert np.abs(low.astype(int) - high.astype(int)).mean() > 0.2


def test_encoding_is_byte_identical_when_repeated(shipped_codec, photo):
    crop = photo[:200, :300]
    assert shipped_codec.encode(crop) == shipped_codec.encode(crop)


def test_memory_layouts_interoperate(shipped_codec, photo):
    """The CPU codec runs encoder and generator channels-last; a file it writes must decode the
    same with standard (NCHW) tensors, as on CUDA, and the other way round."""
    assert shipped_codec.memory_format == torch.channels_last
    nchw = Codec.from_info(shipped_codec.info, "cpu", channels_last=False)
    crop = photo[:160, :224]
    for writer, reader in [(shipped_codec, nchw), (nchw, shipped_codec)]:
        data = writer.encode(crop)
        a, b = writer.decode(data, 2.56), reader.decode(data, 2.56)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_decoding_is_repeatable(shipped_codec):
    data = shipped_codec.encode(random_image(40, 70, seed=3))
    assert np.array_equal(shipped_codec.decode(data, 1.0), shipped_codec.decode(data, 1.0))


def test_two_betas_one_latent(tiny_codec):
    data = tiny_codec.encode(random_image(50, 90))
    hfc = bitstream.parse(data)
    y_hat = tiny_codec.latent(hfc)
    a = tiny_codec.generate(hfc, y_hat, 0.0)
    b = tiny_codec.generate(hfc, y_hat, 2.56)
    assert a.shape == b.shape == (50, 90, 3)


@pytest.mark.parametrize("beta", [-0.1, 2.57, float("nan")])
def test_beta_out_of_range(tiny_codec, beta):
    data = tiny_codec.encode(random_image(8, 8))
    with pytest.raises(CodecError, match="beta"):
        tiny_codec.decode(data, beta)


def test_file_for_other_model_refused(tiny_codec, shipped_codec):
    data = tiny_codec.encode(random_image(16, 16))
    with pytest.raises(CodecError, match="needs model"):
        shipped_codec.decode(data, 0.0)


def test_unknown_model_refused(tiny_weights_dir):
    hfc = bitstream.HfcFile("no-such-model", "00" * 32, 4, 4, b"", b"")
    with pytest.raises(CodecError, match="not installed"):
        decode(hfc.to_bytes(), 0.0, "cpu", tiny_weights_dir)


def test_wrong_weights_digest_refused(tiny_weights_dir, tiny_codec):
    good = bitstream.parse(tiny_codec.encode(random_image(16, 16)))
    bad = bitstream.HfcFile(good.model, "11" * 32, good.width, good.height, good.z_string, good.y_string)
    with pytest.raises(CodecError, match="different version"):
        CodecPool("cpu", tiny_weights_dir).for_file(bad)


def test_files_of_superseded_weights_still_decode(tiny_weights_dir, tmp_path):
    """Retrained weights replace weights/<model>.safetensors; the old file moves to
    weights/previous/ and the .hfc files made with it keep decoding, bit for bit."""
    import shutil

    import torch

    from hificodec.nn.models import CONFIGS, HiFiC
    from hificodec.zoo import export_weights, previous_path

    shutil.copy(tiny_weights_dir / f"{TINY}.safetensors", tmp_path)
    old_codec = Codec.load(TINY, "cpu", tmp_path)
    img = random_image(24, 40)
    old_file = old_codec.encode(img)
    expected = old_codec.decode(old_file, 1.0)
    previous = previous_path(TINY, old_codec.info.digest, tmp_path)
    previous.parent.mkdir()
    shutil.move(tmp_path / f"{TINY}.safetensors", previous)
    torch.manual_seed(1)
    export_weights(HiFiC(CONFIGS["tiny"]).eval(), tmp_path / f"{TINY}.safetensors", TINY, "tiny", [0.3], {})
    new_codec = Codec.load(TINY, "cpu", tmp_path)
    assert new_codec.info.digest != old_codec.info.digest
    np.testing.assert_array_equal(decode(old_file, 1.0, "cpu", tmp_path), expected)
    new_file = new_codec.encode(img)
    assert bitstream.parse(new_file).weights_digest == new_codec.info.digest
    assert decode(new_file, 1.0, "cpu", tmp_path).shape == img.shape
    previous.unlink()
    with pytest.raises(CodecError, match="different version"):
        decode(old_file, 1.0, "cpu", tmp_path)


def test_files_of_retired_weights_are_refused_with_where_to_get_them(tiny_weights_dir, tmp_path, monkeypatch):
    """Weights retired from the tree (zoo.RETIRED_WEIGHTS) are refused by name: one line with the
    digest the file needs and the commit that still holds it."""
    import shutil

    from hificodec import zoo
    from hificodec.nn.models import CONFIGS, HiFiC

    shutil.copy(tiny_weights_dir / f"{TINY}.safetensors", tmp_path)
    old_codec = Codec.load(TINY, "cpu", tmp_path)
    old_file = old_codec.encode(random_image(24, 40))
    digest = old_codec.info.digest
    torch.manual_seed(7)  # retrained: the model is still installed, in another version
    zoo.export_weights(HiFiC(CONFIGS["tiny"]).eval(), tmp_path / f"{TINY}.safetensors", TINY, "tiny", [0.3], {})
    monkeypatch.setitem(zoo.RETIRED_WEIGHTS, TINY, {digest[:12]: "0123456789ab" * 3})
    with pytest.raises(CodecError) as error:
        decode(old_file, 1.0, "cpu", tmp_path)
    message = str(error.value)
    assert "\n" not in message and "retired" in message
    assert f"git show 0123456789ab:weights/previous/{TINY}-{digest[:12]}.safetensors" in message


def test_retired_weights_left_the_tree_and_their_commits_hold_them():
    """Every retired file is gone from weights/previous/, and (in a full git checkout) the commit
    the refusal names holds it, with the digest its name promises."""
    import hashlib
    import subprocess

    from hificodec.zoo import RETIRED_WEIGHTS

    git = ["git", "-C", str(ROOT)]
    shallow = subprocess.run(git + ["rev-parse", "--is-shallow-repository"], capture_output=True, text=True)
    history = (ROOT / ".git").exists() and shallow.stdout.strip() == "false"
    for name, retired in RETIRED_WEIGHTS.items():
        for prefix, commit in retired.items():
            path = f"weights/previous/{name}-{prefix}.safetensors"
            assert not (ROOT / path).exists(), path
            if history:
                blob = subprocess.run(git + ["show", f"{commit}:{path}"], capture_output=True)
                assert blob.returncode == 0, blob.stderr.decode()
                assert hashlib.sha256(blob.stdout).hexdigest().startswith(prefix), path


def test_pool_loads_model_once(tiny_weights_dir, tiny_codec):
    pool = CodecPool("cpu", tiny_weights_dir)
    files = [bitstream.parse(tiny_codec.encode(random_image(8, 8, seed=i))) for i in range(3)]
    assert len({id(pool.for_file(f)) for f in files}) == 1


def test_tampered_weights_refused(tiny_weights_dir, tmp_path):
    from hificodec.zoo import WeightsError, find_model, load_model

    src = tiny_weights_dir / f"{TINY}.safetensors"
    data = bytearray(src.read_bytes())
    info = find_model(TINY, tiny_weights_dir)
    data[-10] ^= 0xFF  # flip a byte inside a tensor
    (tmp_path / src.name).write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        load_model(find_model(TINY, tmp_path), expected_digest=info.digest)
    (tmp_path / src.name).write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsError):
        load_model(find_model(TINY, tmp_path))


def test_device_auto_resolves():
    from hificodec.codec import resolve_device

    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(CodecError):
        resolve_device("tpu")


def test_codec_import_skips_compressai_package_init_and_compressai_stays_whole():
    # CompressAI's __init__ imports all of it (torch_geometric, its zoo): seconds of every
    # `hfc decode`. The codec loads only the entropy models; the rest loads when asked for.
    import subprocess
    import sys

    script = (
        "import sys, hificodec.codec\n"
        "print('torch_geometric' in sys.modules, 'compressai.zoo' in sys.modules)\n"
        "import compressai\n"
        "compressai.set_entropy_coder('ans')\n"
        "print(compressai.get_entropy_coder(), 'compressai.zoo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.split() == ["False", "False", "ans", "True"]


def test_coding_does_not_import_scipy_stats_but_table_building_still_can():
    """scipy.stats (about 1 s of start-up) is imported only when CDF tables are built."""
    import subprocess
    import sys

    code = ("import sys, hificodec.codec; from hificodec.nn.entropy import GaussianConditional, scale_table; "
            "print('scipy.stats' in sys.modules); g = GaussianConditional(scale_table()); g.update(); "
            "print('scipy.stats' in sys.modules, int(g._cdf_length.max()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split("\n")[:2]
    assert first == "False" and second.startswith("True ") and int(second.split()[1]) > 2


def test_weights_are_hashed_once_per_process_and_rehashed_when_replaced(tiny_weights_dir, tmp_path, monkeypatch):
    """Finding, loading and matching a file's digest hash the weights once (issue 44); a file
    replaced since is hashed again, so its new digest is what gets checked."""
    import hashlib
    import shutil

    from hificodec import zoo
    from hificodec.nn.models import CONFIGS, HiFiC

    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy2(tiny_weights_dir / f"{TINY}.safetensors", folder / f"{TINY}.safetensors")
    calls, sha256 = [], hashlib.sha256

    def counting_sha256(*args):
        calls.append(1)
        return sha256(*args)

    monkeypatch.setattr(zoo, "_DIGESTS", {})
    monkeypatch.setattr(zoo.hashlib, "sha256", counting_sha256)
    pool = CodecPool("cpu", folder)
    data = pool.for_model(TINY).encode(random_image(32, 32))
    assert CodecPool("cpu", folder).for_file(bitstream.parse(data)).decode(data, 0.0).shape == (32, 32, 3)
    assert len(calls) == 1
    replacement = folder / "new.safetensors"  # other weights under the same name, moved into place
    zoo.export_weights(HiFiC(CONFIGS["tiny"]).eval(), replacement, TINY, "tiny", [0.3], {})
    replacement.replace(folder / f"{TINY}.safetensors")
    with pytest.raises(CodecError, match="different version"):
        CodecPool("cpu", folder).for_file(bitstream.parse(data))
