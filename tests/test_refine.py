"""Encoder-side latent refinement (refine.py): a slower encode that any decoder reads."""

import numpy as np
import pytest

from conftest import random_image
from hificodec import refine
from hificodec.codec import CodecError
from hificodec.format import bitstream


def objective(codec, rgb8: np.ndarray, data: bytes, quality: float) -> float:
    """Refinement's own loss measured on the real file: coded bits and the beta-0 pixels."""
    h, w = rgb8.shape[:2]
    mse = np.mean((codec.decode(data, 0.0).astype(np.float64) - rgb8) ** 2)
    return refine.MSE_WEIGHT * mse + refine.rate_weight(quality, codec.model.rate_levels) * 8 * len(data) / (h * w)


def test_refined_file_scores_better_on_the_loss_it_optimizes(shipped_codec, photo):
    crop = photo[:192, :256]
    plain = shipped_codec.encode(crop, 2.0)
    refined = shipped_codec.encode(crop, 2.0, refine_steps=8)
    assert refined != plain
    # Same header, same decoder: only the latent differs.
    a, b = bitstream.parse(plain), bitstream.parse(refined)
    assert (a.model, a.weights_digest, a.width, a.height, a.quality) == (b.model, b.weights_digest, b.width, b.height, b.quality)
    assert objective(shipped_codec, crop, refined, 2.0) < objective(shipped_codec, crop, plain, 2.0)


def test_refined_encoding_is_repeatable(shipped_codec):
    img = random_image(70, 90, seed=5)
    assert shipped_codec.encode(img, 1.0, refine_steps=2) == shipped_codec.encode(img, 1.0, refine_steps=2)


def test_windows_cover_the_latent_and_align_with_side_latents(shipped_codec, monkeypatch):
    """Large images are refined window by window; with tiny windows every latent must still move
    and the file must decode to the right size."""
    monkeypatch.setattr(refine, "TILE", 4)
    monkeypatch.setattr(refine, "MARGIN", 4)
    grid = refine.windows(16, 8)
    assert [t.core_rows for t in grid[::2]] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert [t.core_cols for t in grid[:2]] == [(0, 4), (4, 8)]
    assert all(v % 4 == 0 for t in grid for span in (t.window_rows, t.window_cols) for v in span)
    img = random_image(130, 250, seed=1)  # latent 12 x 16 after padding to 192 x 256
    y = shipped_codec.analyse(img)
    refined = shipped_codec.refine(img, y, 1.0, 2)
    assert refined.shape == y.shape
    changed = (refined - y).abs().amax(dim=1)[0] > 0
    assert changed.all()
    data = shipped_codec.pack(refined, 250, 130, 1.0)
    assert shipped_codec.decode(data, 2.56).shape == (130, 250, 3)


def test_rate_weight_follows_the_levels():
    assert refine.rate_weight(0.0, 3) == pytest.approx(refine.RATE_WEIGHTS[0])
    assert refine.rate_weight(1.0, 3) == pytest.approx(refine.RATE_WEIGHTS[1])
    assert refine.rate_weight(2.0, 3) == pytest.approx(refine.RATE_WEIGHTS[2])
    middle = refine.rate_weight(0.5, 3)
    assert min(refine.RATE_WEIGHTS[:2]) < middle < max(refine.RATE_WEIGHTS[:2])
    assert refine.rate_weight(0.0, 1) == pytest.approx(refine.RATE_WEIGHTS[1])


def test_negative_steps_refused(tiny_codec):
    with pytest.raises(CodecError, match="refine_steps"):
        tiny_codec.encode(random_image(16, 16), refine_steps=-1)


def test_refine_leaves_the_weights_untouched(tiny_vbr_codec):
    before = {k: v.clone() for k, v in tiny_vbr_codec.model.state_dict().items()}
    tiny_vbr_codec.encode(random_image(40, 40), 1.0, refine_steps=2)
    after = tiny_vbr_codec.model.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert all(p.grad is None for p in tiny_vbr_codec.model.parameters())
