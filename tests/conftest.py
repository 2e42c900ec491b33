"""Shared fixtures. Nothing here reads ../shared: tests use the bundled example photo,
synthetic images, a tiny model exported on the fly, and the shipped weights in weights/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "kodim23.png"
TINY = "tiny-test"
TINY_VBR = "tiny-vbr-test"


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """A weights folder holding a tiny (untrained) model, exported by the real export path."""
    import torch

    from hificodec.models import CONFIGS, HiFiC
    from hificodec.zoo import export_weights

    torch.manual_seed(0)
    model = HiFiC(CONFIGS["tiny"]).eval()
    out = tmp_path_factory.mktemp("weights")
    export_weights(model, out / f"{TINY}.safetensors", TINY, "tiny", [0.3], {"note": "untrained, for tests"})
    torch.manual_seed(0)
    vbr = HiFiC(CONFIGS["tiny-vbr"]).eval()
    export_weights(vbr, out / f"{TINY_VBR}.safetensors", TINY_VBR, "tiny-vbr", [0.1, 0.2, 0.4], {"note": "untrained"})
    return out


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights_dir):
    from hificodec.codec import Codec

    return Codec.load(TINY, "cpu", tiny_weights_dir)


@pytest.fixture(scope="session")
def tiny_vbr_codec(tiny_weights_dir):
    from hificodec.codec import Codec

    return Codec.load(TINY_VBR, "cpu", tiny_weights_dir)


@pytest.fixture
def run(tiny_weights_dir, monkeypatch):
    """The hfc CLI in-process, with the tiny test models installed: run("encode", ...)."""
    from click.testing import CliRunner

    from hificodec.cli import main

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))

    def invoke(*args, input=None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def shipped_codec():
    from hificodec.codec import Codec
    from hificodec.zoo import DEFAULT_MODEL

    return Codec.load(DEFAULT_MODEL, "cpu")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    from hificodec.images import load_rgb

    return load_rgb(EXAMPLE).rgb8


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish content: a gradient plus noise, like a photo rather than pure noise
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), np.full((h, w), 128)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
