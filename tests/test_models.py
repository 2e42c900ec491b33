import pytest
import torch

from hificodec.layers import ChannelNorm2d, FourierFeatures
from hificodec.models import CONFIGS, Discriminator, HiFiC, count_parameters


def test_channel_norm_normalizes_each_pixel_across_channels():
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    y = ChannelNorm2d(8)(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 5, 7), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=True), torch.ones(2, 5, 7), atol=1e-3)


def test_fourier_features_of_beta():
    f = FourierFeatures(10, scale=1 / 5.12)(torch.tensor([0.0, 2.56]))
    assert f.shape == (2, 21)
    assert torch.equal(f[0, 1:11], torch.zeros(10)) and torch.equal(f[0, 11:], torch.ones(10))


@pytest.mark.parametrize("name", ["tiny", "hific-cpu", "hific"])
def test_forward_pass_shapes(name):
    torch.manual_seed(0)
    cfg = CONFIGS[name]
    model, disc = HiFiC(cfg), Discriminator(cfg)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x, torch.tensor([1.0]))
        logits = disc(out["x_hat"], out["y_hat"])
    assert out["x_hat"].shape == x.shape
    assert out["y_hat"].shape == (1, cfg.latent_channels, 4, 4)
    assert set(out["likelihoods"]) == {"y", "z"}
    assert logits.shape[0] == 1 and logits.shape[1] == 1
    if name == "hific":  # the paper's generator: 9 blocks of 960 channels, ~180M parameters in E+G+hyperprior
        assert count_parameters(model) > 150e6


def test_beta_changes_output_once_projections_are_nonzero():
    torch.manual_seed(0)
    model = HiFiC(CONFIGS["tiny"]).eval()
    for block in model.generator.blocks:
        torch.nn.init.normal_(block.proj1.weight)
    y = torch.randn(1, CONFIGS["tiny"].latent_channels, 2, 2)
    with torch.no_grad():
        a = model.generator(y, torch.tensor([0.0]))
        b = model.generator(y, torch.tensor([2.56]))
    assert not torch.allclose(a, b)
