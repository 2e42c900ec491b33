import pytest
import torch

from hificodec.nn.layers import ChannelNorm2d, FourierFeatures, RowSplitConv2d, conv
from hificodec.nn.models import CONFIGS, Discriminator, HiFiC, count_parameters


def test_channel_norm_normalizes_each_pixel_across_channels():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    norm = ChannelNorm2d(8)
    y = norm(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 5, 7), atol=1e-5)
    # Unit variance but for epsilon, which matters on a pixel whose channels happen to be close.
    var = x.var(1, unbiased=True)
    assert torch.allclose(y.var(1, unbiased=True), var / (var + norm.eps), atol=1e-5)


def test_channel_norm_inference_path_on_channels_last_matches_the_training_path():
    torch.manual_seed(0)
    norm = ChannelNorm2d(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    reference = norm(x.requires_grad_()).detach()  # the per-pixel mean/var formula
    with torch.no_grad():
        fused = norm(x.detach().contiguous(memory_format=torch.channels_last))
    assert fused.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fused, reference, atol=1e-5)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_row_split_conv_computes_the_convolution_it_replaces(layout):
    torch.manual_seed(0)
    rgb_layer = conv(6, 3, 7)  # reflect-padded, like the generator's last layer
    x = torch.randn(2, 6, 5, 9).contiguous(memory_format=layout)  # a map smaller than the kernel's reach
    with torch.no_grad():
        expected, got = rgb_layer(x), RowSplitConv2d(rgb_layer)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError):
        RowSplitConv2d(conv(6, 3, 3, stride=2))


def test_fourier_features_of_beta():
    f = FourierFeatures(10, scale=1 / 5.12)(torch.tensor([0.0, 2.56]))
    assert f.shape == (2, 21)
    assert torch.equal(f[0, 1:11], torch.zeros(10)) and torch.equal(f[0, 11:], torch.ones(10))


@pytest.mark.parametrize("name", ["tiny", "tiny-vbr-e2", "hific-cpu", "hific"])
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


def test_gdn_divides_by_the_weighted_magnitudes_and_igdn_multiplies():
    from hificodec.nn.layers import GDN

    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 5)
    gdn, igdn = GDN(4), GDN(4, inverse=True)
    norm = 1.0 + 0.1 * x.abs()  # the initial state: beta 1, gamma 0.1 * identity
    assert torch.allclose(gdn(x), x / norm, atol=1e-6) and torch.allclose(igdn(x), x * norm, atol=1e-6)
    with torch.no_grad():
        gdn.gamma.fill_(-1.0)  # negative weights act as 0, and their gradient can still raise them
    y = gdn(x.requires_grad_())
    assert torch.allclose(y, x / (1.0 + 1e-6), atol=1e-6)
    y.pow(2).sum().backward()
    assert (gdn.gamma.grad < 0).any()  # a step would raise gamma, back toward having an effect


def test_gdn_architecture_codes_through_the_codec(tmp_path):
    """norm = "gdn" is a model config like any other: exported, loaded from its metadata, and
    coded to a file that decodes (the pilots' architecture, tiny)."""
    import numpy as np

    from hificodec.codec import Codec
    from hificodec.zoo import export_weights

    torch.manual_seed(0)
    model = HiFiC(CONFIGS["tiny-gdn"]).eval()
    assert any(type(m).__name__ == "GDN" for m in model.generator.modules())
    export_weights(model, tmp_path / "g.safetensors", "g", "tiny-gdn", [0.3], {})
    codec = Codec.load("g", "cpu", tmp_path)
    assert codec.model.config.norm == "gdn"
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    assert codec.decode(codec.encode(rgb), 0.0).shape == (40, 56, 3)


def test_rgb_upconv_generator_codes_through_the_codec(tmp_path):
    """rgb_layer = "upconv5": G's last layer is a transposed convolution to RGB (no full-resolution
    feature maps); exported, loaded and tiled like the others, its CPU form left as it is."""
    from dataclasses import replace

    import numpy as np

    from hificodec import codec as codec_module
    from hificodec.codec import Codec
    from hificodec.zoo import export_weights

    torch.manual_seed(0)
    model = HiFiC(replace(CONFIGS["tiny-gdn"], rgb_layer="upconv5")).eval()
    assert isinstance(model.generator.tail[-1], torch.nn.ConvTranspose2d)
    assert not any(isinstance(m, torch.nn.Conv2d) and m.out_channels == 3 for m in model.generator.modules())
    export_weights(model, tmp_path / "u.safetensors", "u", "tiny-gdn-rgbup", [0.3], {})
    codec = Codec.load("u", "cpu", tmp_path)
    rgb = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    data = codec.encode(rgb)
    whole = codec.decode(data, 0.0)
    old = codec_module.TAIL_TILE
    try:
        codec_module.TAIL_TILE = 2  # the upsampling path in many tiles: the same pixels
        tiled = codec.decode(data, 0.0)
    finally:
        codec_module.TAIL_TILE = old
    assert whole.shape == (70, 90, 3) and np.abs(whole.astype(int) - tiled).max() <= 1
    with pytest.raises(ValueError, match="rgb_layer"):
        HiFiC(replace(CONFIGS["tiny"], rgb_layer="conv9"))


def test_layer_scaled_trunk_starts_as_the_identity_and_learns():
    """trunk_layer_scale: each trunk block's residual is scaled by a per-channel scale that
    starts at zero, so a new G's trunk passes the head's output through (plus the global skip)
    and the scale gets a gradient."""
    from dataclasses import replace

    torch.manual_seed(0)
    generator = HiFiC(replace(CONFIGS["tiny-gdn"], trunk_layer_scale=True)).generator
    y, beta = torch.randn(2, CONFIGS["tiny-gdn"].latent_channels, 3, 5), torch.tensor([0.0, 3.0])
    torch.testing.assert_close(generator.trunk(y, beta), 2 * generator.head(y))
    generator.trunk(y, beta).square().mean().backward()
    assert all(float(block.scale.grad.abs().max()) > 0 for block in generator.blocks)
    assert all(block.scale is None for block in HiFiC(CONFIGS["tiny-gdn"]).generator.blocks)  # old weights load


def test_balle_encoder_is_compressai_analysis_and_codes_through_the_codec(tmp_path):
    """encoder = "balle": CompressAI's bmshj2018 analysis, layer for layer (its weights load and
    give its latent), in front of the project's G, coded through the codec."""
    from dataclasses import replace

    import numpy as np
    from compressai.models import ScaleHyperprior

    from hificodec.codec import Codec
    from hificodec.zoo import export_weights

    torch.manual_seed(0)
    cfg = replace(CONFIGS["tiny-gdn"], encoder="balle", rate_levels=3, channels=(4, 8, 8, 8, 16))
    model = HiFiC(cfg).eval()
    reference = ScaleHyperprior(cfg.channels[1], cfg.latent_channels).g_a
    model.encoder.net.load_state_dict(reference.state_dict())
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x), reference(x))
    export_weights(model, tmp_path / "b.safetensors", "b", "tiny-balle", [0.1, 0.2, 0.3], {})
    codec = Codec.load("b", "cpu", tmp_path)
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    assert codec.decode(codec.encode(rgb, quality=0.5), 0.0).shape == (40, 56, 3)
    with pytest.raises(ValueError, match="encoder_blocks"):
        HiFiC(replace(cfg, encoder_blocks=1))
