"""Widening a model keeps what it computes, and breaks the symmetry of the copies."""

from dataclasses import replace

import pytest
import torch

from hificodec.nn.layers import ChannelNorm2d
from hificodec.nn.models import CONFIGS, HiFiC
from hificodec.training.widen import needs_widening, widen_state_dict


def outputs(model: HiFiC, x: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        return model(x, beta=torch.tensor([0.0, 2.56]), quality=torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("channels", [(8, 16, 8, 16, 16), (12, 8, 16, 16, 32)])
def test_widened_model_computes_the_same(channels, monkeypatch):
    torch.manual_seed(0)
    narrow = HiFiC(CONFIGS["tiny-vbr"])
    for p in narrow.parameters():  # away from the initialisation's exact zeros and ones
        p.data.add_(torch.randn_like(p) * 0.05)
    wide = HiFiC(replace(CONFIGS["tiny-vbr"], channels=channels))
    assert needs_widening(wide, narrow.state_dict())
    wide.load_state_dict(widen_state_dict(wide, narrow.state_dict()))
    x = torch.rand(2, 3, 64, 64)
    # ChannelNorm's epsilon is the one thing copying cannot carry over exactly: equal without it,
    # close with it (and closer on a trained model, whose activations vary more than 1e-3).
    close = outputs(narrow, x)["x_hat"] - outputs(wide, x)["x_hat"]
    assert 0 < close.abs().max() < 0.01
    for model in (narrow, wide):
        for module in model.modules():
            if isinstance(module, ChannelNorm2d):
                monkeypatch.setattr(module, "eps", 0.0)
    with torch.no_grad():
        assert torch.allclose(narrow.encoder(x), wide.encoder(x), atol=1e-5)
    assert torch.allclose(outputs(narrow, x)["x_hat"], outputs(wide, x)["x_hat"], atol=1e-5)


def test_copies_are_not_identical_and_sum_to_the_old_weight():
    narrow = HiFiC(CONFIGS["tiny"])
    wide = HiFiC(replace(CONFIGS["tiny"], channels=(8, 8, 8, 16, 16)))
    state = widen_state_dict(wide, narrow.state_dict())
    old = narrow.state_dict()["encoder.net.3.weight"]  # conv ch0 -> ch1: reads the widened ch0
    new = state["encoder.net.3.weight"]
    assert new.shape == (8, 8, 3, 3)
    assert torch.allclose(new[:, :4] + new[:, 4:], old, atol=1e-6)
    assert not torch.allclose(new[:, :4], new[:, 4:])
    assert not needs_widening(narrow, narrow.state_dict())


def test_refuses_what_is_not_a_widening():
    narrow = HiFiC(CONFIGS["tiny"])
    with pytest.raises(ValueError, match="whole multiple"):
        widen_state_dict(HiFiC(replace(CONFIGS["tiny"], channels=(6, 8, 8, 16, 16))), narrow.state_dict())
