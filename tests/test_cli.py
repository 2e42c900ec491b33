import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import EXAMPLE, TINY, TINY_VBR, random_image
from hificodec.cli import main


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 30), (17, 33), (3, 100)]):
        Image.fromarray(random_image(h, w, seed=i)).save(folder / f"img{i}.png")
    return folder


def test_encode_decode_info(run, images, tmp_path):
    src = images / "img0.png"
    out = tmp_path / "a.hfc"
    r = run("encode", src, "-o", out, "--model", TINY)
    assert r.exit_code == 0, r.output
    r = run("decode", out, "-o", tmp_path / "a.png", "--beta", "0")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "a.png").size == (30, 20)
    r = run("info", out, "--json")
    meta = json.loads(r.output)
    assert meta["model"] == TINY and meta["width"] == 30 and meta["model_installed"]
    assert "beta" not in meta
    r = run("info", out)
    assert "30 x 20" in r.output


def test_default_output_names_and_no_overwrite(run, images):
    src = images / "img1.png"
    assert run("encode", src, "--model", TINY).exit_code == 0
    hfc = images / "img1.hfc"
    assert hfc.is_file()
    before = hfc.read_bytes()
    r = run("encode", src, "--model", TINY)
    assert r.exit_code == 1 and "exists" in r.output and "--force" in r.output
    assert run("encode", src, "--model", TINY, "--force").exit_code == 0
    assert hfc.read_bytes() == before  # deterministic


def test_folder_batch_with_one_bad_file(run, images, tmp_path):
    (images / "broken.png").write_bytes(b"not a png at all")
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = run("encode", images, "-d", outdir, "--model", TINY, "-q")
    assert r.exit_code == 1
    assert "broken.png" in r.output and "1 of 4 inputs failed" in r.output
    assert sorted(p.name for p in outdir.iterdir()) == ["img0.hfc", "img1.hfc", "img2.hfc"]
    dec = tmp_path / "dec"
    dec.mkdir()
    (outdir / "junk.hfc").write_bytes(b"\x89HFC\x01")
    r = run("decode", outdir, "-d", dec, "--beta", "1.0")
    assert r.exit_code == 1 and "junk.hfc" in r.output
    assert sorted(p.name for p in dec.iterdir()) == ["img0.png", "img1.png", "img2.png"]


def test_stdin_stdout(run, images):
    png = (images / "img0.png").read_bytes()
    r = CliRunner().invoke(main, ["encode", "-", "--model", TINY], input=png)
    assert r.exit_code == 0
    hfc = r.stdout_bytes
    assert hfc[:4] == b"\x89HFC"
    r = CliRunner().invoke(main, ["decode", "-", "--beta", "2.56"], input=hfc)
    assert r.exit_code == 0
    assert r.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("beta", ["-1", "2.6", "abc", "nan"])
def test_bad_beta_is_usage_error(run, images, beta):
    r = run("decode", images / "x.hfc", "--beta", beta)
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_usage_errors(run, images, tmp_path):
    assert run("encode", images / "img0.png", images / "img1.png", "-o", tmp_path / "x.hfc").exit_code == 2
    assert run("encode", images / "img0.png", "-o", "x", "-d", tmp_path).exit_code == 2
    assert run("encode").exit_code == 2
    assert run("decode", images / "img0.png", "-o", tmp_path / "out.xyz").exit_code == 2
    assert run("encode", images / "img0.png", "--refine", "-1", "-o", tmp_path / "y.hfc").exit_code == 2
    assert run("eval", images, "-o", tmp_path / "ev", "--refine", "2", "--card", tmp_path / "card.md").exit_code == 2


def test_encode_with_refinement(run, images, tmp_path, monkeypatch):
    """--refine reaches the codec's refinement (whose effect tests/test_refine.py measures on the
    shipped model) for every input, and the file decodes."""
    from hificodec.codec import Codec

    calls = []
    original = Codec.refine

    def spy(self, rgb8, y, quality, steps):
        calls.append(steps)
        return original(self, rgb8, y, quality, steps)

    monkeypatch.setattr(Codec, "refine", spy)
    r = run("encode", images / "img0.png", images / "img1.png", "-d", tmp_path, "--model", TINY_VBR, "--refine", "3")
    assert r.exit_code == 0, r.output
    assert calls == [3, 3]
    assert run("decode", tmp_path / "img0.hfc", "-o", tmp_path / "out.png").exit_code == 0
    assert Image.open(tmp_path / "out.png").size == (30, 20)
    run("encode", images / "img2.png", "-d", tmp_path, "--model", TINY_VBR)
    assert calls == [3, 3]  # the default codes E's latent as it is


def test_missing_model_exit_code(run, images):
    r = run("encode", images / "img0.png", "--model", "nope")
    assert r.exit_code == 3 and "not installed" in r.output


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: b"GIF89a" + d[6:], "not a .hfc file"),
        (lambda d: d[:4] + b"\x07" + d[5:], "version 7"),
        (lambda d: d[: len(d) - 9], "truncated"),
        (lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:], "checksum"),
    ],
)
def test_decoder_refusals_write_nothing(run, images, tmp_path, mutate, message):
    good = tmp_path / "good.hfc"
    assert run("encode", images / "img0.png", "-o", good, "--model", TINY).exit_code == 0
    bad = tmp_path / "bad.hfc"
    bad.write_bytes(mutate(good.read_bytes()))
    out = tmp_path / "bad.png"
    r = run("decode", bad, "-o", out)
    assert r.exit_code == 1 and message in r.output
    assert len(r.output.strip().splitlines()) == 1  # one clear line, no traceback
    assert not out.exists()


def test_input_never_overwritten(run, images, tmp_path):
    src = images / "img0.png"
    before = src.read_bytes()
    r = run("decode", tmp_path / "x.hfc", "-o", src)  # missing input: fails, src untouched
    assert r.exit_code == 1
    fake = images / "img0.hfc"
    assert run("encode", src, "-o", fake, "--model", TINY).exit_code == 0
    r = run("encode", src, "-o", src, "--model", TINY, "--force")
    assert r.exit_code == 1 and "overwrite the input" in r.output
    assert src.read_bytes() == before


def test_models_json(run):
    r = run("models", "--json")
    models = json.loads(r.output)
    names = [m["name"] for m in models]
    assert names[:2] == [TINY, TINY_VBR] and "hific-cpu-vbr" in names  # $HFC_WEIGHTS_DIR first, then the checkout's
    assert {"name", "file", "digest", "target_bpp"} <= set(models[0])


def test_shipped_models_listed():
    r = CliRunner().invoke(main, ["models", "--json"], env={"HFC_WEIGHTS_DIR": ""})
    names = [m["name"] for m in json.loads(r.output)]
    assert "hific-cpu-vbr" in names


def test_version_is_fast():
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "hificodec.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "hfc, version" in r.stdout
    assert time.monotonic() - t < 5  # generous: the point is that torch is not imported


def test_real_pipe_with_shipped_model():
    # a real OS pipe: encode the example photo from stdin to stdout with the shipped model
    env = dict(os.environ, HFC_WEIGHTS_DIR="")
    enc = subprocess.run([sys.executable, "-m", "hificodec.cli", "encode", "-"], input=EXAMPLE.read_bytes(),
                         capture_output=True, env=env)
    assert enc.returncode == 0, enc.stderr
    dec = subprocess.run([sys.executable, "-m", "hificodec.cli", "decode", "-", "--beta", "0"], input=enc.stdout,
                         capture_output=True, env=env)
    assert dec.returncode == 0, dec.stderr
    assert Image.open(__import__("io").BytesIO(dec.stdout)).size == (768, 512)


def test_cli_does_not_import_torch_for_help():
    code = "import sys; import hificodec.cli; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False"


def test_eval_command_writes_report_and_model_card(run, tmp_path, monkeypatch):
    card = tmp_path / "models.md"
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(random_image(64, 96, seed=3)).save(data / "a.png")
    r = run("eval", data, "-o", tmp_path / "out", "--models", TINY, "--betas", "0,1.28,2.56", "--codecs", "none",
            "--no-fid", "--sheets", "0", "--card", card)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "report.md").is_file() and "model card rows updated" in r.output
    rows = [line for line in card.read_text().splitlines() if line.startswith(f"| {TINY} |")]
    assert [row.split("|")[7].strip() for row in rows] == ["0", "2.56"]  # lowest and highest beta only


def test_shell_completion():
    """click's completion, as documented in the README: the script, and a completed command."""
    env = {**os.environ, "_HFC_COMPLETE": "bash_source"}
    hfc = [sys.executable, "-c", "from hificodec.cli import main; main(prog_name='hfc')"]
    script = subprocess.run(hfc, env=env, capture_output=True, text=True)
    assert script.returncode == 0 and "complete -o nosort -F _hfc_completion hfc" in script.stdout
    env = {**os.environ, "_HFC_COMPLETE": "bash_complete", "COMP_WORDS": "hfc dec", "COMP_CWORD": "1"}
    words = subprocess.run(hfc, env=env, capture_output=True, text=True)
    assert "plain,decode" in words.stdout.splitlines()
    env = {**env, "COMP_WORDS": "hfc decode --be", "COMP_CWORD": "2"}
    assert "plain,--beta" in subprocess.run(hfc, env=env, capture_output=True, text=True).stdout.splitlines()
