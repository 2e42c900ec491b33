"""The model zoo: where weights files are found (``weights_dirs``), their digests, loading and export.

A weights file is ``<folder>/<name>.safetensors`` (never pickle: loading runs no code). Its
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


# The weights a wheel carries (the default model's current file, copied in at build time by
# setup.py); a source checkout has them in its weights/ folder instead.
PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
ENV_WEIGHTS = "HFC_WEIGHTS_DIR"


def user_weights_dir() -> Path:
    """The user's own weights folder: $XDG_DATA_HOME/hificodec/weights (~/.local/share/...)."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "hificodec" / "weights"


def checkout_weights_dir() -> Path | None:
    """weights/ of the source checkout this package runs from (an editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    return root / "weights" if (root / "pyproject.toml").is_file() and (root / "weights").is_dir() else None


def weights_dirs() -> list[Path]:
    """Where models are looked for, in order; the first folder with a model's name wins:

    1. every folder in $HFC_WEIGHTS_DIR (separated like PATH),
    2. the user's folder (``user_weights_dir``),
    3. the source checkout's weights/ (running from a checkout),
    4. the weights installed with the package (a wheel: the default model).
    A .hfc file is decoded with whichever of these holds the exact weights it names (current
    or superseded, ``find_weights``)."""
    dirs = _env_weights_dirs()
    dirs.append(user_weights_dir())
    checkout = checkout_weights_dir()
    if checkout is not None:
        dirs.append(checkout)
    dirs.append(PACKAGED_WEIGHTS)
    return list(dict.fromkeys(dirs))  # each once, first position kept


def export_dir() -> Path:
    """Where ``hfc export`` writes by default: the first $HFC_WEIGHTS_DIR folder, else the
    checkout's weights/ (a release is committed there), else the user's folder."""
    env = _env_weights_dirs()
    return env[0] if env else checkout_weights_dir() or user_weights_dir()


def _env_weights_dirs() -> list[Path]:
    """The folders in $HFC_WEIGHTS_DIR, separated like PATH."""
    return [Path(d) for d in os.environ.get(ENV_WEIGHTS, "").split(os.pathsep) if d]


def _search(directory: Path | None) -> list[Path]:
    """One folder when the caller names it, else the search order."""
    return [Path(directory)] if directory is not None else weights_dirs()


# Digests computed in this process, by file identity (path, size, mtime, inode): finding a model,
# loading it and checking a .hfc file's digest then hash its 31 MB once, not three times. A file
# replaced or rewritten in between has another identity and is hashed again.
_DIGESTS: dict[tuple, str] = {}


def _identity(path: Path, stat: os.stat_result) -> tuple:
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file (memoised per process, see _DIGESTS)."""
    key = _identity(path, os.stat(path))
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


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
    """The installed models (``directory`` alone if given, else the search order); a name
    found in an earlier folder hides the same name in later ones."""
    infos, seen = [], set()
    for folder in _search(directory):
        for path in sorted(folder.glob("*.safetensors")):
            try:
                info = model_info(path)
            except WeightsError:
                continue
            if info.name not in seen:
                seen.add(info.name)
                infos.append(info)
    return infos


def _current_path(name: str, directory: Path) -> Path:
    """weights/<name>.safetensors, after checking that ``name`` is a model name (a file name
    under weights/, never a path)."""
    from hificodec.format.bitstream import MODEL_NAME

    if not MODEL_NAME.fullmatch(name):
        raise ModelNotFound(f"{name!r} is not a model name")
    return directory / f"{name}.safetensors"


def find_model(name: str, directory: Path | None = None) -> ModelInfo:
    """The current weights of model ``name``: the first folder of the search order that has it."""
    folders = _search(directory)
    for folder in folders:
        path = _current_path(name, folder)
        if path.is_file():
            info = model_info(path)
            if info.name != name:
                raise WeightsError(f"{path.name} declares model name {info.name!r}")
            return info
    available = ", ".join(m.name for m in list_models(directory)) or "none"
    where = folders[0] if len(folders) == 1 else "the weights folders (see `hfc models`)"
    raise ModelNotFound(f"model {name!r} is not installed in {where} (available: {available})")


PREVIOUS_DIR = "previous"  # superseded weights, kept so that files encoded with them still decode
# Training state, not needed to encode or decode: the discriminator trained alongside each
# exported weights file, so that a later training phase starting from those weights (init_from)
# continues it on any machine instead of relearning D from scratch against a trained generator.
DISCRIMINATORS_DIR = "discriminators"
DISCRIMINATOR_KEY = "hificodec-discriminator"


# Superseded weights retired from the tree (docs/models.md, "Weights in git"): per model, the
# digest prefix of each retired file -> a commit whose tree still holds it as
# weights/previous/<model>-<prefix>.safetensors. A file made with one is refused with a line
# that says where to get them.
RETIRED_WEIGHTS: dict[str, dict[str, str]] = {
    "hific-cpu-vbr": {
        prefix: "074a55da4362c8c454240fc5b50eda3505739d77"
        for prefix in ("e7bc70f0b97d", "1f2aa1451a76", "94f09e18f199", "aba97f5ce810", "1e3eead7d20a",
                       "d058b63ab99a")
    },
}


def previous_path(name: str, digest: str, directory: Path) -> Path:
    """Where a superseded weights file of ``name`` is kept: <folder>/previous/<name>-<digest[:12]>."""
    return Path(directory) / PREVIOUS_DIR / f"{name}-{digest[:12]}.safetensors"


def find_weights(name: str, digest: str, directory: Path | None = None) -> ModelInfo:
    """The exact weights a .hfc file names, in any folder of the search order: a model's current
    file if its digest matches, else a superseded version kept in previous/. Raises
    ModelNotFound if no folder has the model at all, WeightsError if none has that digest."""
    installed, known = [], False
    for folder in _search(directory):
        current = _current_path(name, folder)
        for path in (current, previous_path(name, digest, folder)):
            if not path.is_file():
                continue
            known, info = True, model_info(path)
            if info.name == name and info.digest == digest:
                return info
            if path == current:
                installed.append(info.digest[:12])
    if not known:
        raise ModelNotFound(f"model {name!r} is not installed")
    commit = RETIRED_WEIGHTS.get(name, {}).get(digest[:12])
    if commit:
        where = f"{PREVIOUS_DIR}/{name}-{digest[:12]}.safetensors"
        raise WeightsError(f"file needs model {name} with weights {digest[:12]}, retired from the installed weights "
                           f"(`git show {commit[:12]}:weights/{where}` gives them; put them in a weights folder's {where})")
    raise WeightsError(f"file needs model {name} with weights {digest[:12]}, installed weights are "
                       f"{', '.join(installed) or 'none'} (a different version)")


def load_model(info: ModelInfo, expected_digest: str | None = None):
    """Builds the HiFiC model of a weights file, in eval mode on the CPU, float32.

    The digest is checked for the file that is actually parsed (its bytes, or its identity
    when this process hashed it already), so a file swapped after ``find_model`` cannot slip
    through."""
    import torch
    from safetensors.torch import load as load_safetensors

    from hificodec.nn.models import HiFiC, ModelConfig

    with open(info.file, "rb") as f:  # the digest is of the bytes parsed below (or of this very file, memoised)
        key = _identity(info.file, os.fstat(f.fileno()))
        data = f.read()
    digest = _DIGESTS.get(key) or _DIGESTS.setdefault(key, hashlib.sha256(data).hexdigest())
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

    from hificodec.imaging.images import atomic_write

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


def discriminator_path(name: str, digest: str, directory: Path) -> Path:
    """<folder>/discriminators/<name>-<digest[:12]>: the D trained with weights file ``digest``."""
    return Path(directory) / DISCRIMINATORS_DIR / f"{name}-{digest[:12]}.safetensors"


def export_discriminator(disc_state: dict, name: str, digest: str, directory: Path) -> Path:
    """Writes a discriminator state (fp16) for the weights file of ``name`` with ``digest``."""
    from safetensors.torch import save as save_safetensors

    from hificodec.imaging.images import atomic_write

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
