"""Training on tiny synthetic images: losses fall, checkpoints resume exactly, export works."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import random_image
from hificodec.training.config import TrainConfig
from hificodec.training.data import PhotoFolder
from hificodec.training.export import export_main
from hificodec.training.losses import RateController
from hificodec.training.trainer import Trainer


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(random_image(80, 96, seed=i)).save(folder / f"p{i}.png")
    (folder / "unreadable.jpg").write_bytes(b"garbage")
    return folder


def make_trainer(tmp_path, photo_dir, **overrides) -> Trainer:
    settings = dict(name="t", architecture="tiny", train_dir=str(photo_dir), crop=64, short_side_min=64,
                    short_side_max=96, batch_size=2, stage1_steps=3, stage2_steps=3, lr=1e-3, lr_stage2=1e-3,
                    bf16=True, log_every=1, val_every=0, checkpoint_minutes=1000)
    cfg = TrainConfig(**{**settings, **overrides})
    trainer = Trainer(cfg, tmp_path / "run")
    with pytest.warns(UserWarning, match="unreadable"):
        folder = PhotoFolder(photo_dir, min_side=64)
    trainer.attach_data(folder)
    return trainer


def test_unreadable_files_are_skipped(photo_dir):
    with pytest.warns(UserWarning):
        folder = PhotoFolder(photo_dir)
    assert len(folder) == 4 and len(folder.skipped) == 1


ROOT = Path(__file__).resolve().parents[1]


def test_config_files_load():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        cfg = TrainConfig.load(path)
        assert cfg.name == path.stem


def test_config_extends_another(tmp_path):
    (tmp_path / "base.toml").write_text('name = "base"\n[rate]\ntarget_bpp = [0.1, 0.2]\n'
                                        '[run]\nseed = 3\ncompile = true\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\nname = "child"\n[run]\nseed = 4\n')
    (tmp_path / "grandchild.toml").write_text('extends = "child.toml"\nname = "grandchild"\n'
                                              '[rate]\ntarget_bpp = 0.3\n')
    child = TrainConfig.load(tmp_path / "child.toml")
    assert (child.name, child.seed, child.compile, child.targets) == ("child", 4, True, [0.1, 0.2])
    grandchild = TrainConfig.load(tmp_path / "grandchild.toml")
    assert (grandchild.name, grandchild.seed, grandchild.targets) == ("grandchild", 4, [0.3])


@pytest.mark.parametrize("text, error, match", [
    ('extends = "loop.toml"\nname = "loop"\n', ValueError, "cycle"),
    ('extends = "base.toml"\n[run]\nseed = 4\n', ValueError, "its own name"),
    ('extends = "missing.toml"\nname = "loop"\n', FileNotFoundError, "missing.toml"),
    ('extends = 3\nname = "loop"\n', ValueError, "path"),
    ('extends = "base.toml"\nname = "loop"\nsede = 4\n', ValueError, "unknown config keys"),
    ('name = "loop\n', ValueError, "TOML"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, error, match):
    (tmp_path / "base.toml").write_text('name = "base"\n')
    (tmp_path / "loop.toml").write_text(text)
    with pytest.raises(error, match=match):
        TrainConfig.load(tmp_path / "loop.toml")


def test_show_config_prints_the_resolved_config_as_toml():
    import tomllib

    from click.testing import CliRunner

    from hificodec.cli import main

    path = ROOT / "configs" / "hific-cpu-vbr.toml"
    result = CliRunner().invoke(main, ["train", str(path), "--show-config"])
    assert result.exit_code == 0, result.output
    assert TrainConfig(**tomllib.loads(result.output)) == TrainConfig.load(path)


def test_configs_match_the_runs_recorded_in_shipped_weights():
    """Each run in a shipped model's lineage has its config here, with the steps it ran: a change
    to a config that others extend cannot silently change what they reproduce."""
    import json

    from safetensors import safe_open

    for weights in sorted((ROOT / "weights").glob("*.safetensors")):
        with safe_open(str(weights), "pt") as f:
            training = json.loads(f.metadata()["training"])
        runs = training.get("lineage", []) + [{"config": weights.stem, "stage1_steps": training["stage1_steps"],
                                       "stage2_steps": training["stage2_steps"]}]
        for run in runs:  # the shipped configs, or the runs before them in configs/history/
            path = ROOT / "configs" / f"{run['config']}.toml"
            cfg = TrainConfig.load(path if path.is_file() else ROOT / "configs" / "history" / path.name)
            assert (cfg.stage1_steps, cfg.stage2_steps) == (run["stage1_steps"], run["stage2_steps"]), run
        cfg = TrainConfig.load(ROOT / "configs" / f"{weights.stem}.toml")
        assert (cfg.crop, cfg.batch_size, cfg.train_dir) == (training["crop"], training["batch_size"],
                                                             training["train_dir"])


def test_loss_decreases_in_both_stages(tmp_path, photo_dir):
    trainer = make_trainer(tmp_path, photo_dir, stage1_steps=25, stage2_steps=25)
    losses = {1: [], 2: []}
    while trainer.step < trainer.cfg.total_steps:
        stage = trainer.stage()
        out = trainer.train_step()
        trainer.step += 1
        losses[stage].append(out["loss"])
        if stage == 2:
            assert "d_loss" in out and np.isfinite(out["d_loss"])
    for stage, values in losses.items():
        first, last = np.mean(values[:5]), np.mean(values[-5:])
        assert last < first, f"stage {stage}: {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("variant", [{}, {"architecture": "tiny-vbr", "target_bpp": [0.1, 0.2, 0.4], "rate_ema": 0.9},
                                     {"ema_decay": 0.5}, {"compile": True, "channels_last": True},
                                     {"architecture": "tiny-vbr", "target_bpp": [0.1, 0.2, 0.4],
                                      "rate_weights": [0.5, 1.0, 2.0], "rate_weight_control": 0.05}])
def test_resume_continues_identically(tmp_path, photo_dir, variant):
    a = make_trainer(tmp_path / "a", photo_dir, **variant)
    for _ in range(4):  # into stage 2, so D and its optimizer state matter too
        a.train_step()
        a.step += 1
    a.save_checkpoint()
    expected = a.train_step()

    b = make_trainer(tmp_path / "b", photo_dir, **variant)
    b.load_checkpoint(a.checkpoint_path)
    b.attach_data(b.sampler.folder)
    assert b.step == 4
    got = b.train_step()
    assert got == expected
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    if a.ema is not None:
        for (name, p), q in zip(a.ema.state_dict().items(), b.ema.state_dict().values()):
            assert torch.equal(p, q), name


def test_run_loop_writes_checkpoint_and_log(tmp_path, photo_dir):
    trainer = make_trainer(tmp_path, photo_dir)
    trainer.run(progress=False)
    assert trainer.step == 6
    assert trainer.checkpoint_path.is_file() and (trainer.run_dir / "stage1.pt").is_file()
    assert len(trainer.log_file.read_text().splitlines()) == 6


def test_export_then_encode_decode(tmp_path, photo_dir):
    from hificodec.codec import Codec, decode

    trainer = make_trainer(tmp_path, photo_dir)
    trainer.run(progress=False)
    path, digest = export_main(trainer.checkpoint_path, "exported-tiny", tmp_path / "weights")
    assert path.name == "exported-tiny.safetensors" and len(digest) == 64
    codec = Codec.load("exported-tiny", "cpu", tmp_path / "weights")
    img = random_image(30, 40)
    out = codec.decode(codec.encode(img), beta=1.0)
    assert out.shape == img.shape
    assert Codec.load("exported-tiny", "cpu", tmp_path / "weights").info.metadata["training"]["lineage"] == []
    # the discriminator is kept beside the weights, named by their digest, for later phases
    assert (tmp_path / "weights" / "discriminators" / f"exported-tiny-{digest[:12]}.safetensors").is_file()
    # exporting over it keeps the superseded file, so .hfc files made with it still decode
    old_file = codec.encode(img)
    trainer.cfg.stage2_steps += 1
    trainer.run(progress=False)
    _, new_digest = export_main(trainer.checkpoint_path, "exported-tiny", tmp_path / "weights")
    assert new_digest != digest
    assert (tmp_path / "weights" / "previous" / f"exported-tiny-{digest[:12]}.safetensors").is_file()
    assert decode(old_file, 1.0, "cpu", tmp_path / "weights").shape == img.shape
    with pytest.raises(ValueError, match="not a model name"):
        export_main(trainer.checkpoint_path, "../elsewhere", tmp_path / "weights")


def test_weight_average_is_validated_exported_and_continued(tmp_path, photo_dir):
    from hificodec.zoo import load_model, model_info

    trainer = make_trainer(tmp_path, photo_dir, ema_decay=0.9)
    trainer.run(progress=False)
    raw, average = trainer.model.state_dict(), trainer.ema.state_dict()
    name = "encoder.net.0.weight"
    lag = float((raw[name] - average[name]).abs().max())
    assert lag > 1e-3  # the average trails the raw weights
    trainer.val_images = [torch.rand(3, 64, 64)]
    assert set(trainer.validate()) == {"bpp", "psnr_beta0", "lpips_beta0", "lpips_beta2.56"}
    trainer.cfg.beta_max_train = 0.0  # a core stage: beta 0 alone, no LPIPS to measure
    assert set(trainer.validate()) == {"bpp", "psnr_beta0"}
    trainer.cfg.beta_max_train = 5.12
    assert not trainer.ema.training and trainer.model.training
    path, _ = export_main(trainer.checkpoint_path, "averaged", tmp_path / "weights")
    info = model_info(path)
    assert info.metadata["training"]["ema_decay"] == 0.9
    shipped = load_model(info).state_dict()[name].float()
    assert float((shipped - average[name]).abs().max()) < lag / 10  # fp16 of the average, not the raw
    raw_info = model_info(export_main(trainer.checkpoint_path, "unaveraged", tmp_path / "weights", raw=True)[0])
    assert raw_info.metadata["training"]["ema_decay"] == 0.0
    assert float((load_model(raw_info).state_dict()[name].float() - raw[name]).abs().max()) < lag / 10
    # a run continuing this checkpoint starts from the average, for the model and its own average
    after = make_trainer(tmp_path / "next", photo_dir, stage1_steps=0, ema_decay=0.9,
                         init_from=str(trainer.checkpoint_path))
    assert torch.equal(after.model.state_dict()[name], average[name])
    assert torch.equal(after.ema.state_dict()[name], average[name])


def test_continued_runs_record_their_lineage(tmp_path, photo_dir):
    """init_from a checkpoint, then from weights: the export counts the whole chain."""
    from hificodec.zoo import model_info

    first = make_trainer(tmp_path / "one", photo_dir, name="one")  # 3 + 3 steps
    first.run(progress=False)
    second = make_trainer(tmp_path / "two", photo_dir, name="two", stage1_steps=0, stage2_steps=2,
                          init_from=str(first.checkpoint_path))
    second.run(progress=False)
    path, _ = export_main(second.checkpoint_path, "two", tmp_path / "weights")
    training = model_info(path).metadata["training"]
    assert [p["config"] for p in training["lineage"]] == ["one"]
    assert (training["total_stage1_steps"], training["total_stage2_steps"]) == (3, 5)
    third = make_trainer(tmp_path / "three", photo_dir, name="three", stage1_steps=0, stage2_steps=1,
                         init_from=str(path))
    assert [p["config"] for p in third.lineage] == ["one", "two"]
    # starting from the weights file brings the discriminator exported beside it (fp16)
    assert third.disc_restored
    for (key, trained), restored in zip(second.disc.state_dict().items(), third.disc.state_dict().values()):
        assert torch.allclose(trained, restored, atol=1e-2, rtol=1e-2), key
    third.run(progress=False)
    resumed = make_trainer(tmp_path / "three", photo_dir, name="three", stage1_steps=0, stage2_steps=1)
    resumed.load_checkpoint(third.checkpoint_path)  # the lineage travels in the checkpoint
    assert [p["config"] for p in resumed.lineage] == ["one", "two"]
    # a source whose config was renamed after it ran (a model retrained under its shipped name)
    renamed = make_trainer(tmp_path / "four", photo_dir, name="three", stage1_steps=0, stage2_steps=1,
                           init_from=str(path), init_from_name="two-b")
    assert [p["config"] for p in renamed.lineage] == ["one", "two-b"]


def test_discriminator_of_other_weights_is_refused(tmp_path, photo_dir):
    from hificodec.zoo import WeightsError, discriminator_path

    trainer = make_trainer(tmp_path, photo_dir)
    trainer.run(progress=False)
    one, digest_one = export_main(trainer.checkpoint_path, "one", tmp_path / "weights")
    two, digest_two = export_main(trainer.checkpoint_path, "two", tmp_path / "weights")
    discriminator_path("two", digest_two, tmp_path / "weights").unlink()
    assert not make_trainer(tmp_path / "fresh", photo_dir, init_from=str(two)).disc_restored
    # a D file named for weights it was not trained with (a copy, or tampering) is refused
    discriminator_path("one", digest_one, tmp_path / "weights").rename(discriminator_path("two", digest_two, tmp_path / "weights"))
    with pytest.raises(WeightsError, match="not the discriminator"):
        make_trainer(tmp_path / "bad", photo_dir, init_from=str(two))


def test_discriminator_warm_up_holds_the_model_still(tmp_path, photo_dir):
    trainer = make_trainer(tmp_path, photo_dir, stage1_steps=0, stage2_steps=4, disc_warmup_steps=2)
    model, disc = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.disc.state_dict())
    for _ in range(2):
        out = trainer.train_step()
        trainer.step += 1
        assert "d_loss" in out
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in model.items())
    assert not all(torch.equal(v, trainer.disc.state_dict()[k]) for k, v in disc.items())
    trainer.train_step()  # warm-up over: the model trains again
    assert not torch.equal(model["encoder.net.0.weight"], trainer.model.state_dict()["encoder.net.0.weight"])


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_only_where_native(tmp_path, photo_dir, monkeypatch, native):
    # emulated bf16 made a training step >10x slower than fp32 on an AVX2-only CPU
    monkeypatch.setattr("hificodec.training.trainer.native_bf16", lambda device: native)
    assert make_trainer(tmp_path / "a", photo_dir, bf16=True).bf16 is native
    assert make_trainer(tmp_path / "b", photo_dir, bf16=False).bf16 is False


def test_compiled_channels_last_step_matches_eager(tmp_path, photo_dir):
    # compile and channels_last change how the step runs, never what it computes. One stage-2
    # step (G, E and D all run) from the same weights and batch: later steps are not compared,
    # since Adam amplifies float-rounding differences into visibly different trajectories.
    def first_gan_step(trainer):
        trainer.step = trainer.cfg.stage1_steps
        return trainer.train_step()

    # one trainer after the other: each seeds the global RNG the quantization noise comes from
    eager = make_trainer(tmp_path / "eager", photo_dir, bf16=False)
    want = first_gan_step(eager)
    compiled = make_trainer(tmp_path / "compiled", photo_dir, compile=True, channels_last=True, bf16=False)
    if not compiled.compiled:
        pytest.skip("no C++ compiler for torch.compile here")
    got = first_gan_step(compiled)
    for key in ("loss", "bpp", "psnr", "lpips", "d_loss"):
        assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
    assert compiled.state_dict()["model"].keys() == eager.state_dict()["model"].keys()
    assert type(compiled.model.encoder) is type(eager.model.encoder)  # validation/export: plain modules


def test_compile_falls_back_without_a_compiler(tmp_path, photo_dir, monkeypatch):
    monkeypatch.setattr("hificodec.training.trainer.can_compile", lambda device: False)
    trainer = make_trainer(tmp_path, photo_dir, compile=True)
    assert trainer.compiled is False and trainer.train_encoder is trainer.model.encoder
    trainer.train_step()


def test_init_from_a_narrower_architecture_widens_it(tmp_path, photo_dir):
    # A wider model continues a narrower one's run: same reconstructions at the start (up to
    # ChannelNorm's epsilon), then it trains, and its discriminator carries over unchanged.
    narrow = make_trainer(tmp_path / "narrow", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4])
    narrow.run(progress=False)
    wide = make_trainer(tmp_path / "wide", photo_dir, architecture="tiny-vbr-wide", target_bpp=[0.1, 0.2, 0.4],
                        stage1_steps=0, init_from=str(narrow.checkpoint_path))
    assert wide.widened and not narrow.widened and wide.disc_restored
    assert wide.model.generator.tail[-1].weight.shape[1] == 2 * narrow.model.generator.tail[-1].weight.shape[1]
    x = torch.rand(1, 3, 64, 64)
    args = (x, torch.tensor([1.0]), torch.tensor([1.0]))
    with torch.no_grad():
        before, after = narrow.model.eval()(*args)["x_hat"], wide.model.eval()(*args)["x_hat"]
    assert (before - after).abs().max() < 0.02
    for key, value in narrow.disc.state_dict().items():
        assert torch.equal(value, wide.disc.state_dict()[key]), key
    out = wide.train_step()
    assert np.isfinite(out["loss"])


def test_widening_a_run_that_keeps_an_average_widens_the_average_too(tmp_path, photo_dir):
    narrow = make_trainer(tmp_path / "narrow", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                          ema_decay=0.5)
    narrow.run(progress=False)
    wide = make_trainer(tmp_path / "wide", photo_dir, architecture="tiny-vbr-wide", target_bpp=[0.1, 0.2, 0.4],
                        stage1_steps=0, ema_decay=0.5, init_from=str(narrow.checkpoint_path))
    assert wide.widened
    for key, value in wide.model.state_dict().items():
        assert torch.equal(value, wide.ema.state_dict()[key]), key


def test_init_from_an_encoder_without_blocks_grows_it_as_the_identity(tmp_path, photo_dir):
    # An encoder given residual blocks continues a run without them: the new blocks start as the
    # identity (same latents, same files), the average starts from the grown weights, and an
    # encoder-only run trains the blocks while the decoder and D stay the source's.
    source = make_trainer(tmp_path / "source", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                          ema_decay=0.5)
    source.run(progress=False)
    grown = make_trainer(tmp_path / "grown", photo_dir, architecture="tiny-vbr-e2", target_bpp=[0.1, 0.2, 0.4],
                         stage1_steps=0, stage2_steps=3, ema_decay=0.5, train_parts="encoder",
                         rate_weights=[0.5, 1.0, 2.0], encoder_blocks_lr_factor=10.0,
                         init_from=str(source.checkpoint_path))
    assert grown.grown_encoder and not grown.widened and grown.disc_restored
    assert not source.grown_encoder
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        # the source kept an average: that is what init_from continues (and what it exported)
        assert torch.equal(source.ema.encoder(x), grown.model.eval().encoder(x))
    for key, value in grown.model.state_dict().items():
        assert torch.equal(value, grown.ema.state_dict()[key]), key
    before = copy.deepcopy(grown.model.state_dict())
    for _ in range(2):
        grown.train_step()
        grown.step += 1
    after = grown.model.state_dict()
    assert not torch.equal(before["encoder.blocks.0.scale"], after["encoder.blocks.0.scale"])
    # the blocks learn at 10x the lr of the rest of E (Adam's first step moves each weight by ~lr)
    lrs = [group["lr"] for group in grown.opt_g.param_groups]
    assert lrs[-1] == 10 * lrs[0]
    assert 0.005 < (after["encoder.blocks.0.scale"] - before["encoder.blocks.0.scale"]).abs().max() < 0.04
    for name, value in before.items():
        if not name.startswith(("encoder.", "latent_model.hyper_analysis.")):
            assert torch.equal(value, after[name]), name


def test_encoder_only_training_leaves_the_decoder_untouched(tmp_path, photo_dir):
    """train_parts = "encoder": E and h_a learn on the beta-0 loss; G, the hyperprior's
    synthesis, the z prior, the gains and D stay bit-identical, so the decoder is the old one."""
    trainer = make_trainer(tmp_path, photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                           stage1_steps=0, stage2_steps=30, train_parts="encoder", beta_max_train=0.0,
                           rate_weights=[0.5, 1.0, 2.0])
    batch = trainer.sampler.batch(2)  # one batch and fixed lambdas: the loss then falls step by step
    trainer.sampler.batch = lambda n: batch.clone()
    model, disc = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.disc.state_dict())
    losses = []
    for _ in range(30):
        out = trainer.train_step()
        trainer.step += 1
        assert "d_loss" not in out
        assert out["lambda"] in (0.75, 1.5, 1.25)  # the fixed weights of the two levels in the batch
        losses.append(out["loss"])
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    after = trainer.model.state_dict()
    sender = ("encoder.", "latent_model.hyper_analysis.")
    for name, value in model.items():
        if not name.startswith(sender):
            assert torch.equal(value, after[name]), name
    assert not torch.equal(model["encoder.net.0.weight"], after["encoder.net.0.weight"])
    assert not all(torch.equal(v, after[k]) for k, v in model.items() if k.startswith(sender[1]))
    assert all(torch.equal(v, trainer.disc.state_dict()[k]) for k, v in disc.items())


def test_encoder_only_training_keeps_the_realism_terms_with_d_frozen(tmp_path, photo_dir):
    """With beta > 0, an encoder-only run keeps LPIPS and the GAN term, judged by the source's
    trained D, which stays bit-identical like the decoder; the GAN term reaches E."""
    source = make_trainer(tmp_path / "source", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4])
    source.run(progress=False)

    def encoder_after_one_step(run, gan_weight):
        trainer = make_trainer(tmp_path / run, photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                               stage1_steps=0, stage2_steps=5, train_parts="encoder", beta_max_train=5.12,
                               rate_weights=[0.5, 1.0, 2.0], gan_weight=gan_weight,
                               init_from=str(source.checkpoint_path))
        assert trainer.disc_restored
        model, disc = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.disc.state_dict())
        out = trainer.train_step()
        assert "g_adv" in out and "d_loss" not in out
        after = trainer.model.state_dict()
        for name, value in model.items():
            if not name.startswith(("encoder.", "latent_model.hyper_analysis.")):
                assert torch.equal(value, after[name]), name
        assert all(torch.equal(v, trainer.disc.state_dict()[k]) for k, v in disc.items())
        assert not torch.equal(model["encoder.net.0.weight"], after["encoder.net.0.weight"])
        return after["encoder.net.0.weight"]

    with_gan = encoder_after_one_step("with-gan", 0.25)
    without_gan = encoder_after_one_step("without-gan", 0.0)  # same seed and batch: only the GAN term differs
    assert not torch.equal(with_gan, without_gan)


def test_encoder_only_training_with_realism_terms_needs_a_trained_discriminator(tmp_path, photo_dir):
    with pytest.raises(ValueError, match="discriminator"):
        make_trainer(tmp_path, photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                     stage1_steps=0, train_parts="encoder", beta_max_train=5.12)


def test_generator_only_training_keeps_the_files_of_the_core(tmp_path, photo_dir):
    """train_parts = "generator" (the realism stage): G, its inverse gains and D learn with the GAN;
    E, the hyperprior, the z prior and the forward gains stay bit-identical, so every file the core
    wrote is written again byte for byte."""
    core = make_trainer(tmp_path / "core", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                        stage1_steps=4, stage2_steps=0, beta_max_train=0.0)
    core.run(progress=False)
    realism = make_trainer(tmp_path / "realism", photo_dir, architecture="tiny-vbr", target_bpp=[0.1, 0.2, 0.4],
                           stage1_steps=0, stage2_steps=3, train_parts="generator", init_from=str(core.checkpoint_path))
    model, disc = copy.deepcopy(realism.model.state_dict()), copy.deepcopy(realism.disc.state_dict())
    for _ in range(3):
        out = realism.train_step()
        realism.step += 1
        assert "d_loss" in out and "g_adv" in out and "lpips" in out
    after = realism.model.state_dict()
    for name, value in model.items():
        if not name.startswith(("generator.", "log_inverse_gain")):
            assert torch.equal(value, after[name]), name
    assert not torch.equal(model["generator.tail.0.weight"], after["generator.tail.0.weight"])
    assert not torch.equal(model["log_inverse_gain"], after["log_inverse_gain"])
    assert not all(torch.equal(v, realism.disc.state_dict()[k]) for k, v in disc.items())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # the rounded latent and the probabilities it is coded with: the file
        coded = [m.eval().latent_model(m.encoder(x) * m.gains(torch.tensor([1.0]))[0]) for m in (core.model, realism.model)]
    assert torch.equal(coded[0][0], coded[1][0])
    assert all(torch.equal(coded[0][2][k], coded[1][2][k]) for k in ("y", "z"))


def test_a_beta_zero_run_does_not_compute_lpips(tmp_path, photo_dir, monkeypatch):
    trainer = make_trainer(tmp_path, photo_dir, beta_max_train=0.0)
    monkeypatch.setattr(trainer.lpips, "forward", lambda *a: pytest.fail("LPIPS computed at beta 0"))
    out = trainer.train_step()
    assert "lpips" not in out and math.isfinite(out["loss"])


@pytest.mark.parametrize("setting, match", [({"train_parts": "decoder"}, "train_parts"),
                                            ({"rate_weights": [1.0, 2.0]}, "rate_weights"),
                                            ({"rate_weight_control": 0.01}, "rate_weight_control")])
def test_bad_encoder_only_settings_are_refused(tmp_path, photo_dir, setting, match):
    with pytest.raises(ValueError, match=match):
        make_trainer(tmp_path, photo_dir, **setting)


def test_steered_rate_weights_move_toward_the_target_rates():
    """Rates above their targets scale every level's lambda' up by one common factor (their
    ratios stay), below scale it down; a step moves it by at most ~5%; the state round-trips
    through a checkpoint."""
    levels = torch.tensor([0, 1])
    rate = RateController([0.1, 0.4], lambda_a=8.5, lambda_b=0.07, fixed=[2.0, 1.0], fixed_control=0.1)
    for _ in range(20):
        weights = rate.weights(0, torch.tensor([0.2, 0.6]), levels)  # both above their targets
    assert rate.fixed[0] > 3.0 and rate.fixed[0] / rate.fixed[1] == pytest.approx(2.0)
    assert torch.allclose(weights, torch.tensor(rate.fixed))
    assert rate.fixed[0] <= 2.0 * math.exp(0.05 * 20) + 1e-9  # each step at most x e^0.05
    restored = RateController([0.1, 0.4], 8.5, 0.07, fixed=[2.0, 1.0], fixed_control=0.1)
    restored.load_state_dict(rate.state_dict())
    assert restored.fixed == rate.fixed and restored.smoothed == rate.smoothed
    for _ in range(40):
        rate.weights(0, torch.tensor([0.05, 0.3]), levels)  # both below
    assert rate.fixed[0] < 2.0 and rate.fixed[0] / rate.fixed[1] == pytest.approx(2.0)
    held = RateController([0.1, 0.4], 8.5, 0.07, fixed=[1.0, 3.0])  # no control: as given
    assert held.weights(0, torch.tensor([0.2, 0.2]), levels).tolist() == [1.0, 3.0]
