"""Training: HiFiC's two stages with the multi-realism beta-conditional loss.

Stage 1: rate + MSE + beta * c_p * LPIPS (no GAN), from scratch.
Stage 2: adds the conditional GAN (beta * c_gan * -log D), D trained one step per G step.
beta is drawn per example, uniform in [0, beta_max_train].

Everything is in one TOML config per shipped model (configs/), so one command reproduces a
weights file. Runs are resumable: the checkpoint holds models, optimizers, step and every RNG
state, and is written atomically every few minutes.

    hfc train configs/hific-cpu-mi.toml --run-dir /tmp/run-mi [--resume]
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from hificodec.metrics.quality import LPIPSLoss, psnr_of_mse
from hificodec.nn.models import BETA_MAX, CONFIGS, Discriminator, HiFiC
from hificodec.training.config import TrainConfig
from hificodec.training.data import PhotoFolder, RandomCropSampler
from hificodec.training.losses import RateController, bits_per_pixel, discriminator_loss, generator_gan_loss
from hificodec.training.widen import needs_widening, widen_state_dict

ENCODER_BLOCKS = "encoder.blocks."  # parameter names of E's residual blocks (grown, own lr group)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays off here: CUDA with bf16 support, or a CPU whose oneDNN has
    native bf16 (AVX512-BF16 / AMX). Elsewhere bf16 is emulated, and a training step measured
    over 10x slower than fp32 (AMD EPYC, AVX2 only), so autocast is left off."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def can_compile(device: torch.device) -> bool:
    """Whether torch.compile can build kernels here: on CPU, inductor needs a C++ compiler
    (and fails at the first step, not at compile(), without one); on CUDA, triton."""
    if device.type == "cpu":
        return any(shutil.which(c) for c in filter(None, (os.environ.get("CXX"), "g++", "c++", "clang++")))
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


def run_record(config_name: str, step: int, stage1_steps: int, seconds: float) -> dict:
    """One training run of a lineage: which config, how many steps of each stage, how long."""
    return {"config": config_name, "stage1_steps": min(step, stage1_steps),
            "stage2_steps": max(0, step - stage1_steps), "train_hours": round(seconds / 3600, 2)}


def lineage_of(source: str, name: str = "") -> list[dict]:
    """The training runs behind an ``init_from`` source (a checkpoint or a weights file), oldest
    first; [] if there is no source or it is gone. Older checkpoints without a recorded lineage
    are followed through their own config's ``init_from``. ``name``: what the source's own run
    is called now (``init_from_name``), if not what it recorded."""
    runs = _lineage_of(source)
    if runs and name:
        runs[-1] = {**runs[-1], "config": name}
    return runs


def _lineage_of(source: str) -> list[dict]:
    path = Path(source) if source else None
    if path is None or not path.is_file():
        return []
    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=False)
        earlier = state.get("lineage")
        if earlier is None:
            earlier = lineage_of(state["config"].get("init_from", ""), state["config"].get("init_from_name", ""))
        cfg = state["config"]
        return earlier + [run_record(cfg["name"], state["step"], cfg["stage1_steps"], state.get("train_seconds", 0.0))]
    from hificodec.zoo import model_info

    training = model_info(path).metadata.get("training", {})
    own = {"config": training.get("config_name", path.stem), "stage1_steps": training.get("stage1_steps", 0),
           "stage2_steps": training.get("stage2_steps", 0), "train_hours": training.get("train_hours", 0.0)}
    return list(training.get("lineage", [])) + [own]


def shipped_weights(state: dict) -> dict:
    """The model weights a checkpoint stands for: its average if the run kept one, else the raw
    weights. Export ships these, and a run continuing the checkpoint starts from them."""
    return state.get("ema") or state["model"]


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, device: str = "cpu"):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)

        self.model = HiFiC(CONFIGS[cfg.architecture]).to(self.device)
        self.disc = Discriminator(CONFIGS[cfg.architecture]).to(self.device)
        if cfg.train_parts not in ("all", "encoder", "generator"):
            raise ValueError(f"train_parts must be 'all', 'encoder' or 'generator', not {cfg.train_parts!r}")
        if cfg.rate_measure not in ("noisy", "coded"):
            raise ValueError(f"rate_measure must be 'noisy' or 'coded', not {cfg.rate_measure!r}")
        if cfg.rate_weights and len(cfg.rate_weights) != self.model.rate_levels:
            raise ValueError(f"rate_weights needs one value per rate level ({self.model.rate_levels})")
        if cfg.rate_weight_control and not cfg.rate_weights:
            raise ValueError("rate_weight_control steers rate_weights: give their starting values")
        if len(cfg.targets) != self.model.rate_levels:
            raise ValueError(f"{cfg.architecture} has {self.model.rate_levels} rate levels, "
                             f"the config gives {len(cfg.targets)} target_bpp values")
        if cfg.calibrate_bpp and (len(cfg.calibrate_bpp) != self.model.rate_levels or self.model.rate_levels == 1):
            raise ValueError("calibrate_bpp needs one value per rate level of a variable-rate model")
        self.lineage: list[dict] = []  # the runs this one continues (init_from), for the model card
        self.disc_restored = False  # whether init_from brought a trained discriminator
        self.widened = False  # whether init_from's weights were widened to this architecture
        self.grown_encoder = False  # whether this architecture's encoder has blocks init_from lacks
        source_ema = None
        if cfg.init_from:
            source_ema = self._init_from(Path(cfg.init_from))
            self.lineage = lineage_of(cfg.init_from, cfg.init_from_name)
        if cfg.initial_gains:
            if len(cfg.initial_gains) != self.model.rate_levels or self.model.rate_levels == 1:
                raise ValueError("initial_gains needs one value per rate level of a variable-rate model")
            with torch.no_grad():
                log_gains = torch.tensor(cfg.initial_gains, dtype=torch.float32).log()[:, None]
                self.model.log_gain.copy_(log_gains.expand_as(self.model.log_gain))
                self.model.log_inverse_gain.copy_(-log_gains.expand_as(self.model.log_gain))
        self.ema: HiFiC | None = None  # the averaged weights (cfg.ema_decay), always in eval mode
        if cfg.ema_decay:
            self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
            if source_ema is not None:
                self.ema.load_state_dict(source_ema)
        self.lpips = LPIPSLoss().to(self.device)
        self.bf16 = cfg.bf16 and native_bf16(self.device)
        if cfg.channels_last:  # parameters too, or every convolution reorders its weights
            for module in (self.model, self.disc, self.lpips):
                module.to(memory_format=torch.channels_last)
        # What train_step runs: the same modules (same parameters), compiled if asked.
        self.train_encoder, self.train_generator = self.model.encoder, self.model.generator
        self.compiled = cfg.compile and can_compile(self.device)
        if self.compiled:
            self.train_encoder = torch.compile(self.model.encoder)
            self.train_generator = torch.compile(self.model.generator)

        if self.encoder_only and self.gan_term and cfg.stage2_steps and not self.disc_restored:
            raise ValueError("train_parts = 'encoder' with beta_max_train > 0 keeps the GAN term, judged by "
                             "the discriminator the weights were trained with: init_from must bring one")
        if self.encoder_only:
            self.model.requires_grad_(False)
            self.disc.requires_grad_(False)
            self.disc.eval()  # in train mode each forward would advance spectral norm's power iteration
            self.model.encoder.requires_grad_(True)
            self.model.latent_model.hyper_analysis.requires_grad_(True)
        if cfg.train_parts == "generator":
            self.model.requires_grad_(False)
            self.model.generator.requires_grad_(True)
            if self.model.rate_levels > 1:
                self.model.log_inverse_gain.requires_grad_(True)  # applied after decoding: the decoder's
        aux = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles")]  # unused if encoder-only
        params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}  # all, unless encoder-only
        density = [p for n, p in params.items() if ".entropy_bottleneck." in n and not n.endswith(".quantiles")]
        if self.model.rate_levels > 1:
            self.model.log_gain.requires_grad_(False)  # steered by the rate, see gain_control
        gains = [p for n, p in params.items() if n.startswith("log_") and p.requires_grad]
        blocks = [p for n, p in params.items() if n.startswith(ENCODER_BLOCKS)]
        main = [p for n, p in params.items()
                if ".entropy_bottleneck." not in n and not n.startswith(("log_", ENCODER_BLOCKS))]
        groups = [{"params": main}, {"params": density}]
        self.lr_factors = [1.0, cfg.entropy_lr_factor]  # per group, times the scheduled lr
        for extra, factor in ((gains, cfg.gain_lr_factor), (blocks, cfg.encoder_blocks_lr_factor)):
            if extra:
                groups.append({"params": extra})
                self.lr_factors.append(factor)
        self.opt_g = torch.optim.Adam(groups, lr=cfg.lr)
        self.opt_aux = torch.optim.Adam(aux, lr=cfg.aux_lr)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        self.rate = RateController(cfg.targets, cfg.lambda_a, cfg.lambda_b, cfg.rate_warmup_steps, cfg.rate_ema,
                                   fixed=cfg.rate_weights or None, fixed_control=cfg.rate_weight_control)
        self.beta_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.train_seconds = 0.0
        self.sampler: RandomCropSampler | None = None
        self.val_images: list[torch.Tensor] = []
        self.log_file = self.run_dir / "log.jsonl"

    def _init_from(self, path: Path) -> dict | None:
        """Load G, E, entropy models (and D from a checkpoint); returns the source's averaged
        weights if it kept them. A checkpoint with an average continues from the average: that is
        what its export shipped and what its validation measured."""
        ema_state = None
        if path.suffix == ".pt":
            state = torch.load(path, map_location=self.device, weights_only=False)  # our own checkpoint
            ema_state = state.get("ema")  # when kept, it is also model_state (shipped_weights)
            model_state, disc_state = shipped_weights(state), state["disc"]
        else:  # a weights file, with the discriminator exported beside it if there is one
            from hificodec.zoo import find_discriminator, load_model, model_info

            info = model_info(path)
            model_state, disc_state = load_model(info).state_dict(), find_discriminator(info)
        if needs_widening(self.model, model_state):  # a wider architecture than the source's
            model_state = widen_state_dict(self.model, model_state, seed=self.cfg.seed)
            self.widened = True
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        # Encoder blocks the source lacks keep their initial state, the identity (ResidualBlock).
        grown = [k for k in missing if k.startswith(ENCODER_BLOCKS)]
        if unexpected or any(not k.startswith("log_") and k not in grown for k in missing):
            raise ValueError(f"{path} does not match {self.cfg.architecture}: missing {missing}, unexpected {unexpected}")
        self.grown_encoder = bool(grown)
        if disc_state is not None:
            self.disc.load_state_dict(disc_state)
        self.disc_restored = disc_state is not None
        if ema_state is None:
            return None
        return {k: v.clone() for k, v in self.model.state_dict().items()}  # widened or grown with the model

    @property
    def encoder_only(self) -> bool:
        return self.cfg.train_parts == "encoder"

    @property
    def gan_term(self) -> bool:
        """Whether stage 2's loss has the GAN term: always, but for an encoder-only run (D frozen)
        that trains at beta 0 alone, where the term would weigh nothing."""
        return not self.encoder_only or self.cfg.beta_max_train > 0

    # -- state ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_aux": self.opt_aux.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sampler": self.sampler.state_dict() if self.sampler else None,
            "train_images": len(self.sampler.folder) if self.sampler else None,
            "beta_generator": self.beta_generator.get_state(),
            "rate_controller": self.rate.state_dict(),
            "lineage": self.lineage,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }

    def save_checkpoint(self) -> None:
        _atomic_torch_save(self.state_dict(), self.checkpoint_path)

    def load_checkpoint(self, path: Path) -> None:
        # Our own checkpoints contain numpy/python RNG state, hence weights_only=False; never
        # point --resume at a file you did not write.
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.step = state["step"]
        self.train_seconds = state.get("train_seconds", 0.0)
        self.model.load_state_dict(state["model"])
        if self.ema is not None:  # a run that had no average starts one from its weights
            self.ema.load_state_dict(shipped_weights(state))
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_aux.load_state_dict(state["opt_aux"])
        self.opt_d.load_state_dict(state["opt_d"])
        self._pending_sampler_state = state["sampler"]
        self.beta_generator.set_state(state["beta_generator"])
        if "rate_controller" in state:
            self.rate.load_state_dict(state["rate_controller"])
        self.lineage = state.get("lineage", self.lineage)
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])

    # -- data -------------------------------------------------------------------------------
    def attach_data(self, train: PhotoFolder, val: list[torch.Tensor] | None = None) -> None:
        cfg = self.cfg
        self.sampler = RandomCropSampler(train, cfg.crop, (cfg.short_side_min, cfg.short_side_max), cfg.seed)
        pending = getattr(self, "_pending_sampler_state", None)
        if pending:
            self.sampler.load_state_dict(pending)
        self.val_images = val or []

    # -- schedule ---------------------------------------------------------------------------
    def stage(self, step: int | None = None) -> int:
        return 1 if (self.step if step is None else step) < self.cfg.stage1_steps else 2

    def learning_rate(self) -> float:
        cfg = self.cfg
        if self.stage() == 1:
            base, start, length = cfg.lr, 0, cfg.stage1_steps
        else:
            base, start, length = cfg.lr_stage2, cfg.stage1_steps, cfg.stage2_steps
        return base * (0.1 if self.step - start >= cfg.lr_decay_fraction * length else 1.0)

    # -- one step ---------------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg = self.cfg
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        lr = self.learning_rate()
        for group, factor in zip(self.opt_g.param_groups, self.lr_factors):
            group["lr"] = lr * factor
        gan = self.stage() == 2 and self.gan_term
        train_disc = gan and not self.encoder_only
        warmup = train_disc and self.step - cfg.stage1_steps < cfg.disc_warmup_steps
        self.model.train()

        x = self.sampler.batch(cfg.batch_size).to(self.device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        beta = (torch.rand(cfg.batch_size, generator=self.beta_generator) * cfg.beta_max_train).to(self.device)
        levels = torch.zeros(cfg.batch_size, dtype=torch.long)
        if self.model.rate_levels > 1:  # every level in every batch, from a random offset
            offset = int(torch.randint(self.model.rate_levels, (1,), generator=self.beta_generator))
            levels = (torch.arange(cfg.batch_size) + offset) % self.model.rate_levels
        with torch.set_grad_enabled(not warmup):  # warm-up: G runs forward only
            with autocast:
                y = self.train_encoder(x)
            # The entropy model runs in fp32 (bf16 visibly biases the rate estimate) and in the
            # default layout: its noise is drawn in memory order, so channels_last would draw
            # other noise for the same latent. y_hat (what G and D see) has the same scale at
            # every rate level.
            y_hat, likelihoods, coded_likelihoods = self.model.quantize(y.float().contiguous(), levels)
            with autocast:
                x_hat = self.train_generator(y_hat, beta)
                if cfg.beta_max_train > 0:
                    perceptual = self.lpips(x_hat, x).float()
                else:  # at beta 0 alone LPIPS has no weight: not computed (a core stage's step is ~1/3 cheaper)
                    perceptual = torch.zeros(x.shape[0], device=x.device)
            x_hat = x_hat.float()
            bpp = bits_per_pixel(likelihoods, x.shape[-2] * x.shape[-1])
            coded_bpp = bits_per_pixel(coded_likelihoods, x.shape[-2] * x.shape[-1])
            mse = (x_hat - x).pow(2).flatten(1).mean(1) * 255.0**2
            batch_bpp = float(bpp.detach().mean())
            measured = coded_bpp if cfg.rate_measure == "coded" else bpp
            rate_weight = self.rate.weights(self.step, measured, levels).to(self.device)
            per_example = cfg.mse_weight * mse + rate_weight * bpp + beta * cfg.lpips_weight * perceptual
            g_adv = torch.zeros(())
            if gan:
                self.disc.requires_grad_(False)
                with autocast:
                    fake_logits = self.disc(x_hat, y_hat.detach())
                g_adv = generator_gan_loss(fake_logits.float())
                per_example = per_example + beta * cfg.gan_weight * g_adv
                self.disc.requires_grad_(not self.encoder_only)
            loss = per_example.mean()
            out = {"bpp": batch_bpp, "coded_bpp": float(coded_bpp.mean()), "psnr": psnr_of_mse(float(mse.detach().mean())),
                   "loss": float(loss.detach()), "lambda": float(rate_weight.mean())}
            if cfg.beta_max_train > 0:
                out["lpips"] = float(perceptual.detach().mean())
            if self.model.rate_levels > 1:
                for level in levels.unique().tolist():  # a small batch may miss a level
                    out[f"bpp_q{level}"] = float(measured.detach()[levels == level].mean())
                    if cfg.rate_weight_control:
                        out[f"lambda_q{level}"] = self.rate.fixed[level]
        if not torch.isfinite(loss):
            out["skipped"] = 1  # never let one bad batch poison the weights
            return out

        if not warmup:
            self._update_generator(loss, levels, out)

        if gan:
            out["g_adv"] = float(g_adv.detach().mean())
        if train_disc:
            with autocast:
                real_logits = self.disc(x, y_hat.detach())
                fake_logits = self.disc(x_hat.detach(), y_hat.detach())
            d_loss = discriminator_loss(real_logits.float(), fake_logits.float())
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            out["d_loss"] = float(d_loss.detach())
        return out

    def _update_generator(self, loss: torch.Tensor, levels: torch.Tensor, out: dict) -> None:
        cfg = self.cfg
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for group in self.opt_g.param_groups for p in group["params"]], cfg.grad_clip)
        self.opt_g.step()

        if self.cfg.train_parts == "all":  # the forward gains and the z prior shape the files
            if self.model.rate_levels > 1 and cfg.gain_control:
                self._steer_gains(levels)
            aux_loss = self.model.latent_model.aux_loss()
            self.opt_aux.zero_grad(set_to_none=True)
            aux_loss.backward()
            self.opt_aux.step()
            out["aux"] = float(aux_loss.detach())
        if self.ema is not None:
            self._update_ema()

    @torch.no_grad()
    def _steer_gains(self, levels: torch.Tensor) -> None:
        for level in levels.unique().tolist():
            smoothed = self.rate.smoothed[level]
            if smoothed:
                step = self.cfg.gain_control * math.log(self.rate.target(self.step, level) / smoothed)
                self.model.log_gain[level] += max(-0.05, min(0.05, step))

    @torch.no_grad()
    def _update_ema(self) -> None:
        keep = self.cfg.ema_decay
        for average, param in zip(self.ema.parameters(), self.model.parameters()):
            average.lerp_(param, 1.0 - keep)
        for average, buffer in zip(self.ema.buffers(), self.model.buffers()):
            average.copy_(buffer)

    # -- validation -------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """bpp (from the likelihoods of the rounded latents), PSNR of the 8-bit image at beta=0,
        LPIPS at 0 and 2.56 (not in a core stage, which trains at beta 0 alone), of the weights
        an export would ship (the average, if the run keeps one)."""
        if not self.val_images:
            return {}
        model = self.ema if self.ema is not None else self.model
        model.eval()
        rows = []
        levels = model.rate_levels
        realism = self.cfg.beta_max_train > 0
        for img in self.val_images:
            x = img.to(self.device).unsqueeze(0)
            y = model.analyse(x)
            row = {}
            for level in range(levels):
                suffix = f"_q{level}" if levels > 1 else ""
                y_hat, likelihoods, _ = model.quantize(y, torch.tensor([level], device=self.device))
                row["bpp" + suffix] = float(bits_per_pixel(likelihoods, x.shape[-2] * x.shape[-1]))
                for b in (0.0, BETA_MAX) if realism else (0.0,):
                    x_hat = model.synthesize(y_hat, torch.tensor([b])).clamp(0, 1)
                    if b == 0.0:
                        mse = float(((x_hat * 255).round() - x * 255).pow(2).mean())
                        row["psnr_beta0" + suffix] = psnr_of_mse(mse)
                    if realism:
                        row[f"lpips_beta{b:g}" + suffix] = float(self.lpips(x_hat, x).mean())
            rows.append(row)
        self.model.train()
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

    def _log(self, record: dict) -> None:
        with open(self.log_file, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- loop -------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        stop = {"now": False}

        def request_stop(signum, frame):  # finish the step, checkpoint, exit cleanly
            stop["now"] = True

        old_handler = signal.signal(signal.SIGTERM, request_stop)
        last_ckpt = time.monotonic()
        bar = tqdm(total=cfg.total_steps, initial=self.step, disable=not progress, dynamic_ncols=True, file=sys.stderr)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        try:
            while self.step < cfg.total_steps and not stop["now"]:
                t0 = time.monotonic()
                out = self.train_step()
                self.train_seconds += time.monotonic() - t0
                self.step += 1
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.total_steps:
                    means = {k: v / counts[k] for k, v in sums.items()}
                    bar.set_postfix(stage=self.stage(self.step - 1), bpp=f"{means['bpp']:.3f}",
                                    psnr=f"{means['psnr']:.2f}", lpips=f"{means.get('lpips', float('nan')):.3f}")
                    self._log({"step": self.step, "stage": self.stage(self.step - 1),
                               "seconds": round(self.train_seconds, 1), **{k: round(v, 5) for k, v in means.items()}})
                    sums, counts = {}, {}
                if cfg.val_every and self.step % cfg.val_every == 0:
                    val = self.validate()
                    if val:
                        self._log({"step": self.step, "seconds": round(self.train_seconds, 1),
                                   "val": {k: round(v, 4) for k, v in val.items()}})
                stage_end = self.step == cfg.stage1_steps
                if stage_end or time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                    self.save_checkpoint()
                    if stage_end:
                        _atomic_torch_save(self.state_dict(), self.run_dir / "stage1.pt")
                    last_ckpt = time.monotonic()
        except KeyboardInterrupt:
            pass
        finally:
            bar.close()
            self.save_checkpoint()
            signal.signal(signal.SIGTERM, old_handler)


def load_val_images(val_dir: str, count: int) -> list[torch.Tensor]:
    from hificodec.imaging.images import image_files, load_rgb
    from hificodec.imaging.tensors import to_tensor

    if not val_dir:
        return []
    out = []
    for path in image_files([Path(val_dir)])[:count]:
        out.append(to_tensor(load_rgb(path).rgb8)[0])
    return out


def train_main(config: Path, run_dir: Path, resume: bool = False, device: str = "cpu", progress: bool = True) -> Trainer:
    cfg = TrainConfig.load(config)
    trainer = Trainer(cfg, run_dir, device)
    if resume:
        if not trainer.checkpoint_path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume in {run_dir}")
        trainer.load_checkpoint(trainer.checkpoint_path)
    elif trainer.checkpoint_path.exists():
        raise FileExistsError(f"{run_dir} already has a checkpoint: pass --resume, or use a new --run-dir")
    train = PhotoFolder(cfg.train_dir, min_side=64)
    trainer.attach_data(train, load_val_images(cfg.val_dir, cfg.val_images))
    if cfg.bf16 and not trainer.bf16:
        print(f"note: bf16 autocast off, {trainer.device.type} has no native bf16 (it would be slower than fp32)",
              file=sys.stderr)
    if cfg.compile and not trainer.compiled:
        print(f"note: torch.compile off, no compiler for {trainer.device.type} kernels here (training runs uncompiled)",
              file=sys.stderr)
    trainer._log({"event": "start", "step": trainer.step, "resume": resume, "images": len(train),
                  "skipped": len(train.skipped), "bf16": trainer.bf16, "compiled": trainer.compiled,
                  **({} if resume else {"disc_restored": trainer.disc_restored, "widened": trainer.widened,
                                          "grown_encoder": trainer.grown_encoder}),
                  "config": asdict(cfg)})
    trainer.run(progress=progress)
    return trainer
