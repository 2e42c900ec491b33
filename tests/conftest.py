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


def _register_test_architectures() -> None:
    """Tiny architectures (seconds to train) for tests only: not in the shipped registry."""
    from dataclasses import replace

    from hificodec.nn.models import CONFIGS, ModelConfig

    tiny = ModelConfig(channels=(4, 8, 8, 16, 16), latent_channels=8, hyper_channels=8, residual_blocks=1,
                       beta_embed_width=16, disc_channels=(4, 8, 8, 8), disc_latent_channels=2)
    CONFIGS["tiny"] = tiny
    CONFIGS["tiny-vbr"] = replace(tiny, rate_levels=3)
    CONFIGS["tiny-gdn"] = replace(tiny, norm="gdn")
    CONFIGS["tiny-vbr-wide"] = replace(CONFIGS["tiny-vbr"], channels=(8, 16, 8, 16, 16))  # widen.py
    CONFIGS["tiny-vbr-e2"] = replace(CONFIGS["tiny-vbr"], encoder_blocks=2)  # growing the encoder


_register_test_architectures()


@pytest.fixture(autouse=True)
def no_user_weights(tmp_path_factory, monkeypatch):
    """Tests see the checkout's weights and their own folders, never this machine's user folder,
    and keep converted OpenVINO models in a cache of the test session's own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
    monkeypatch.setenv("HFC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """A weights folder holding a tiny (untrained) model, exported by the real export path."""
    import torch

    from hificodec.nn.models import CONFIGS, HiFiC
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
    from hificodec.imaging.images import load_rgb

    return load_rgb(EXAMPLE).rgb8


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish content: a gradient plus noise, like a photo rather than pure noise
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), np.full((h, w), 128)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
