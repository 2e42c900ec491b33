"""The package outside the checkout: a wheel (and `pip install .`, not editable) installed into a
fresh venv, run from another folder, finds the default model it carries and round-trips an
image. Dependencies come from this environment (a .pth line: no network, no editable hook)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT

DEFAULT_WEIGHTS = ROOT / "weights" / "hific-cpu-vbr.safetensors"


def _source_tree(dst: Path) -> Path:
    """What a release is built from (as an sdist carries it), away from this checkout's build/."""
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dst / "weights").mkdir()
    shutil.copy2(DEFAULT_WEIGHTS, dst / "weights" / DEFAULT_WEIGHTS.name)
    return dst


def _fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=False)
    site = Path(subprocess.check_output([str(path / "bin" / "python"), "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # a plain path line: this environment's packages become importable, its .pth files (the
    # editable install of hificodec among them) are not run
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True)


@pytest.mark.parametrize("how", ["wheel", "pip install ."])
def test_installed_package_finds_its_model_and_round_trips(tmp_path, how):
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("the default weights are not in this checkout")
    (tmp_path / "src").mkdir()
    src = _source_tree(tmp_path / "src")
    env_dir = _fresh_venv(tmp_path / "venv")
    python = str(env_dir / "bin" / "python")
    if how == "wheel":
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(src))
        (wheel,) = (tmp_path / "dist").glob("hificodec-*.whl")
        target = str(wheel)
    else:
        target = str(src)
    _pip("--python", python, "install", "--no-deps", "--no-build-isolation", "-q", target)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HFC_WEIGHTS_DIR", "PYTHONPATH")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # no user weights folder
    hfc = [str(env_dir / "bin" / "hfc")]

    def run(*args):
        r = subprocess.run([*hfc, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    listing = run("models")
    assert "hific-cpu-vbr (default)" in listing
    assert str(env_dir) in listing and str(ROOT) not in listing  # the wheel's copy, not the checkout's
    shutil.copy2(EXAMPLE, work / "photo.png")
    run("encode", "photo.png", "-o", "photo.hfc", "-q")
    run("decode", "photo.hfc", "--beta", "0", "-o", "back.png", "-q")
    from PIL import Image

    with Image.open(work / "back.png") as im:
        assert im.size == Image.open(EXAMPLE).size
    # and the library, from the same install
    code = ("import hificodec, numpy as np; d = hificodec.encode('photo.png', quality=0); "
            "print(hificodec.__file__); print(hificodec.decode(d, beta=0).shape, len(d) > 100)")
    out = subprocess.run([python, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    module_file, shape_line = out.stdout.strip().splitlines()[-2:]
    assert module_file.startswith(str(env_dir)) and shape_line == f"{Image.open(EXAMPLE).size[::-1] + (3,)} True"
