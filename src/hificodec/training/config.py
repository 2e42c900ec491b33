"""The training config: one TOML file per run (configs/), every field below with its default.

A config may ``extends`` another (a path relative to it) and list only what it changes; the
keys are flattened on top of the base's, and sections only group keys for readability.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass
class TrainConfig:
    name: str
    architecture: str = "hific-cpu"
    # data
    train_dir: str = "../shared/data/train"
    val_dir: str = ""
    val_images: int = 4
    crop: int = 256
    short_side_min: int = 256
    short_side_max: int = 768
    batch_size: int = 8
    # rate controller (rate weight lambda' per bpp; mse_weight is per MSE on 0..255). A
    # variable-rate architecture takes one target per rate level, lowest first.
    target_bpp: float | list[float] = 0.30
    lambda_a: float = 8.5
    lambda_b: float = 0.07
    rate_warmup_steps: int = 0
    # Fixed lambda' per rate level instead of the controller (empty: the controller). For
    # encoder-only training: there the gains stay put, so the controller's lambda_a, far steeper
    # than the model's own rate-distortion slope, would only ever cut bits (docs/training.md).
    rate_weights: list[float] = field(default_factory=list)
    # With rate_weights: each step every level's lambda' is scaled by one common factor, log
    # factor = rate_weight_control * mean over levels of log(smoothed bpp / target), so the run
    # holds its target rates (0: lambda' stays as given; docs/training.md).
    rate_weight_control: float = 0.0
    rate_ema: float = 0.0  # smoothing of the per-level bpp the controller compares (0: batch mean)
    # What the controller compares with the target: "noisy" (HiFiC: the relaxed rate the loss
    # uses) or "coded" (the rate of the rounded latents, i.e. the real file size).
    rate_measure: str = "noisy"
    # loss
    mse_weight: float = 0.01
    lpips_weight: float = 1.66  # c_p: LPIPS weight is beta * c_p
    gan_weight: float = 0.25  # c_gan: GAN weight is beta * c_gan
    beta_max_train: float = 5.12
    # schedule
    stage1_steps: int = 1000
    stage2_steps: int = 1000
    lr: float = 1e-4
    lr_stage2: float = 1e-4
    lr_decay_fraction: float = 0.85  # lr x0.1 after this fraction of each stage
    disc_lr: float = 1e-4
    # The first steps of stage 2 that train only D (G, E and the entropy models held still): a
    # run starting from weights without their discriminator would otherwise follow the
    # gradients of an untrained D. Counted in stage2_steps.
    disc_warmup_steps: int = 0
    # What trains: "all", or "encoder": only the sender's side (E and the hyperprior's analysis
    # h_a) on the same loss, with G, the hyperprior's synthesis, the z prior, the gains and D
    # held still. The decoder is then bit-for-bit the one it started from. With beta > 0 in
    # training the loss keeps its realism terms: LPIPS, and the GAN judged by the trained D,
    # frozen (it must come with init_from), which then asks which latents make G's output look
    # real. Tried once on refinement's beta-0 loss alone (beta_max_train = 0, rate_weights): it
    # bought PSNR with realism (docs/lab-notebook.md).
    # "generator": the realism stage of a two-stage recipe (HiFiC, MS-ILLM): only G, its inverse
    # gains and D learn; everything the sender runs (E, the hyperprior, the z prior, the forward
    # gains) is held still, so the files a trained core writes stay byte-identical.
    train_parts: str = "all"
    aux_lr: float = 1e-3
    # Clip the norm of G's, E's and the entropy models' gradient per step (0: off); CompressAI's
    # training example and the core pilots clip at 1.
    grad_clip: float = 0.0
    # The factorized prior of z starts wide (CompressAI's init_scale 10); at the main lr it needs
    # far more steps than a CPU run has to narrow, and z then costs most of the rate.
    entropy_lr_factor: float = 25.0
    gain_lr_factor: float = 10.0  # the learned inverse gains of a variable-rate model
    # The encoder's residual blocks (architectures with encoder_blocks): new blocks start as the
    # identity and need a new part's lr, while the rest of a trained model continues at a low one
    # (a restart at 1e-4 undoes its last anneal, docs/lab-notebook.md).
    encoder_blocks_lr_factor: float = 1.0
    # The forward gains set each level's quantiser step. Straight-through rounding hides from
    # the distortion loss what a finer step buys, so gradients would only ever shrink them;
    # instead each level's gain is steered to its target rate: every step, log gain +=
    # gain_control * log(target / smoothed coded bpp of the level).
    gain_control: float = 0.01
    # Exponential moving average of the model's weights, per step (0: off). Validation and export
    # use the average: at a constant lr the GAN's weights jitter from step to step, and a lr drop
    # bought phase B its gain only in its last 500 steps. Measured once (phase C, 0.999): on a
    # model still improving this fast the average lagged the final weights (docs/lab-notebook.md).
    ema_decay: float = 0.0
    # run
    bf16: bool = True  # bf16 autocast where the hardware computes bf16 natively, see native_bf16
    # torch.compile the encoder and generator for the training step (validation and export use
    # the plain modules, so weights and checkpoints are unchanged): 1.7x the steps per second on
    # the 2-core EPYC after ~1.5 min of compiling (docs/training.md, "Training speed").
    compile: bool = False
    channels_last: bool = False  # NHWC training batches and weights, what oneDNN's convolutions prefer
    seed: int = 0
    threads: int = 0  # 0: torch's default
    checkpoint_minutes: float = 5.0
    log_every: int = 20
    val_every: int = 500
    # Optional start: a weights file (e.g. a shipped model) or a training checkpoint (.pt, also
    # restores D). Parameters the source lacks (a variable-rate model's gains) keep their init.
    init_from: str = ""
    # The name the init_from run goes by now, for the lineage in the model card ("": the name the
    # source recorded). A model retrained under its shipped name renames the config of the run
    # it supersedes (hific-cpu-vbr -> hific-cpu-vbr-d), and its weights still record the old name.
    init_from_name: str = ""
    initial_gains: list[float] = ()  # per rate level, when starting a variable-rate model
    # Export re-places a variable-rate model's levels at these bpp, measured on whole photos
    # of calibrate_dir ("": train_dir; calibration.py); empty: the levels stay where training's
    # gains put them.
    calibrate_bpp: list[float] = field(default_factory=list)
    calibrate_dir: str = ""
    calibrate_images: int = 24

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        flat = _config_keys(Path(path))
        known = {f.name for f in fields(cls)}
        unknown = set(flat) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**flat)

    @property
    def targets(self) -> list[float]:
        return [float(t) for t in self.target_bpp] if isinstance(self.target_bpp, list) else [float(self.target_bpp)]

    @property
    def total_steps(self) -> int:
        return self.stage1_steps + self.stage2_steps


def _config_keys(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The keys of a config file, flattened, on top of those of the config it `extends` (a path
    relative to it): a phase that continues another lists only what it changes, so the diff
    between two runs is the file itself."""
    path = path.resolve()
    if path in chain:
        raise ValueError(f"{chain[0]}: configs extend each other in a cycle through {path.name}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not a valid TOML config ({exc})") from None
    flat: dict = {}
    base = raw.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ValueError(f"{path}: extends must be a config file path, got {base!r}")
        if "name" not in raw:  # else a new run would record the base run's name in its lineage
            raise ValueError(f"{path}: a config that extends another must set its own name")
        base_path = path.parent / base
        if not base_path.is_file():
            raise FileNotFoundError(f"{path}: extends {base}, which does not exist")
        flat.update(_config_keys(base_path, chain + (path,)))
    for key, value in raw.items():
        if isinstance(value, dict):  # sections only group keys for readability
            flat.update(value)
        else:
            flat[key] = value
    return flat
