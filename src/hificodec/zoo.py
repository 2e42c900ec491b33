"""The shipped models: weights files under ``weights/``, their digests, loading and export.

A weights file is ``weights/<name>.safetensors`` (never pickle: loading runs no code). Its
metadata holds the architecture, the model config and the target rate. Its digest is the
SHA-256 of the whole file; a .hfc file names the digest of the weights it needs, so a file is
never decoded with weights that differ by even one bit from the encoder's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "hific-cpu-vbr"
FORMAT_KEY = "hificodec-weights"


class ModelNotFound(LookupError):
    pass


class WeightsError(ValueError):
    """A weights file is unreadable, tampered with or not a hificodec model."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: Path
    digest: str  # hex SHA-256 of the file
    architecture: str
    target_bpp: tuple[float, ...]  # training target per rate level (quality 0, 1, ...)
    metadata: dict

    @property
    def rate_levels(self) -> int:
        return len(self.target_bpp)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "file": str(self.file),
            "digest": self.digest,
            "architecture": self.architecture,
            "target_bpp": list(self.target_bpp),
            "qualities": f"0..{self.rate_levels - 1}",
            "training": self.metadata.get("training", {}),
            "calibration": self.metadata.get("calibration"),  # None: levels where training put them
        }


def weights_dir() -> Path:
    """$HFC_WEIGHTS_DIR, else the project's weights/ folder."""
    env = os.environ.get("HFC_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "weights"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_metadata(path: Path) -> dict:
    """Reads the safetensors header only (8-byte length + JSON), without loading tensors."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < 100_000_000:
                raise WeightsError(f"{path.name}: not a safetensors file")
            header = json.loads(f.read(n))
        meta = header.get("__metadata__", {})
        if FORMAT_KEY not in meta:
            raise WeightsError(f"{path.name}: not a hificodec weights file")
        return {k: json.loads(v) for k, v in meta.items()}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{path.name}: unreadable weights file ({exc})") from None


def model_info(path: Path) -> ModelInfo:
    meta = _read_metadata(path)
    return ModelInfo(
        name=meta["name"],
        file=path,
        digest=file_digest(path),
        architecture=meta["architecture"],
        target_bpp=tuple(float(t) for t in (meta["target_bpp"] if isinstance(meta["target_bpp"], list) else [meta["target_bpp"]])),
        metadata=meta,
    )


def list_models(directory: Path | None = None) -> list[ModelInfo]:
    directory = directory or weights_dir()
    infos = []
    for path in sorted(Path(directory).glob("*.safetensors")):
        try:
            infos.append(model_info(path))
        except WeightsError:
            continue
    return infos


def _current_path(name: str, directory: Path) -> Path:
    """weights/<name>.safetensors, after checking that ``name`` is a model name (a file name
    under weights/, never a path)."""
    from .bitstream import MODEL_NAME

    if not MODEL_NAME.fullmatch(name):
        raise ModelNotFound(f"{name!r} is not a model name")
    return directory / f"{name}.safetensors"


def find_model(name: str, directory: Path | None = None) -> ModelInfo:
    directory = Path(directory or weights_dir())
    path = _current_path(name, directory)
    if not path.is_file():
        available = ", ".join(m.name for m in list_models(directory)) or "none"
        raise ModelNotFound(f"model {name!r} is not installed in {directory} (available: {available})")
    info = model_info(path)
    if info.name != name:
        raise WeightsError(f"{path.name} declares model name {info.name!r}")
    return info


PREVIOUS_DIR = "previous"  # superseded weights, kept so that files encoded with them still decode
# Training state, not needed to encode or decode: the discriminator trained alongside each
# exported weights file, so that a later training phase starting from those weights (init_from)
# continues it on any machine instead of relearning D from scratch against a trained generator.
DISCRIMINATORS_DIR = "discriminators"
DISCRIMINATOR_KEY = "hificodec-discriminator"


def previous_path(name: str, digest: str, directory: Path | None = None) -> Path:
    """Where a superseded weights file of ``name`` is kept: weights/previous/<name>-<digest[:12]>."""
    return Path(directory or weights_dir()) / PREVIOUS_DIR / f"{name}-{digest[:12]}.safetensors"


def find_weights(name: str, digest: str, directory: Path | None = None) -> ModelInfo:
    """The exact weights a .hfc file names: the current file of the model if its digest matches,
    else a superseded version kept in weights/previous/. Raises ModelNotFound if the model has
    no file at all, WeightsError if none has that digest."""
    directory = Path(directory or weights_dir())
    current = _current_path(name, directory)
    candidates = [p for p in (current, previous_path(name, digest, directory)) if p.is_file()]
    if not candidates:
        raise ModelNotFound(f"model {name!r} is not installed in {directory}")
    for path in candidates:
        info = model_info(path)
        if info.name == name and info.digest == digest:
            return info
    installed = file_digest(current)[:12] if current.is_file() else "none"
    raise WeightsError(f"file needs model {name} with weights {digest[:12]}, installed weights are {installed} "
                       "(a different version)")


def load_model(info: ModelInfo, expected_digest: str | None = None):
    """Builds the HiFiC model of a weights file, in eval mode on the CPU, float32.

    The digest is checked on the bytes that are actually parsed, so a file swapped after
    ``find_model`` cannot slip through."""
    import torch
    from safetensors.torch import load as load_safetensors

    from .models import HiFiC, ModelConfig

    data = Path(info.file).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_digest is not None and digest != expected_digest:
        raise WeightsError(
            f"weights {info.file.name} have digest {digest[:16]}..., the file needs {expected_digest[:16]}..."
        )
    if digest != info.digest:
        raise WeightsError(f"weights {info.file.name} changed while loading")
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{info.file.name}: corrupt weights ({exc})") from None
    model = HiFiC(ModelConfig.from_dict(info.metadata["config"]))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    try:
        # strict: a file missing any tensor (e.g. the CDF tables) is refused.
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{info.file.name}: weights do not match the architecture ({str(exc).splitlines()[0]})") from None
    return model.eval().requires_grad_(False)


def export_weights(model, path: Path, name: str, architecture: str, target_bpp: list[float], training: dict,
                   calibration: dict | None = None) -> str:
    """Writes ``model`` as fp16 safetensors with the CDF tables; returns the digest.

    Only encoder and generator go to fp16. The entropy model stays fp32: its CDF tables are
    computed here (update) from exactly the parameters that are stored."""
    import torch
    from safetensors.torch import save as save_safetensors

    from .images import atomic_write

    model.latent_model.update_tables()
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        # fp16 for E and G; the gains stay fp32 with the entropy model (they set the quantiser).
        if value.is_floating_point() and key.startswith(("encoder.", "generator.")):
            value = value.half()
        state[key] = value.contiguous()
    metadata = {
        FORMAT_KEY: 1,
        "name": name,
        "architecture": architecture,
        "config": model.config.to_dict(),
        "target_bpp": target_bpp,
        "training": training,
    }
    if calibration is not None:  # where export re-placed the rate levels (calibration.py)
        metadata["calibration"] = calibration
    data = save_safetensors(state, metadata={k: json.dumps(v) for k, v in metadata.items()})
    atomic_write(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def _weights_root(path: Path) -> Path:
    """The weights folder a weights file belongs to (weights/ for weights/previous/x too)."""
    return path.parent.parent if path.parent.name == PREVIOUS_DIR else path.parent


def discriminator_path(name: str, digest: str, directory: Path | None = None) -> Path:
    """weights/discriminators/<name>-<digest[:12]>: the D trained with weights file ``digest``."""
    return Path(directory or weights_dir()) / DISCRIMINATORS_DIR / f"{name}-{digest[:12]}.safetensors"


def export_discriminator(disc_state: dict, name: str, digest: str, directory: Path | None = None) -> Path:
    """Writes a discriminator state (fp16) for the weights file of ``name`` with ``digest``."""
    from safetensors.torch import save as save_safetensors

    from .images import atomic_write

    path = discriminator_path(name, digest, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in disc_state.items()}
    metadata = {DISCRIMINATOR_KEY: "1", "name": name, "generator_digest": digest}
    atomic_write(path, save_safetensors(state, metadata=metadata))
    return path


def find_discriminator(info: ModelInfo) -> dict | None:
    """The discriminator state (fp32) exported with weights file ``info``, looked for in the
    weights folder it sits in (weights/ or weights/previous/); None if there is none."""
    from safetensors import safe_open

    path = discriminator_path(info.name, info.digest, _weights_root(info.file))
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{path.name}: unreadable discriminator ({exc})") from None
    if meta.get(DISCRIMINATOR_KEY) != "1" or meta.get("generator_digest") != info.digest:
        raise WeightsError(f"{path.name}: not the discriminator of {info.file.name}")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
