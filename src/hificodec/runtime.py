"""Optional OpenVINO runtime for the generator (decoding), where it is installed.

On the CPUs this project runs on, OpenVINO runs G about twice as fast as torch, because it
computes in bf16 where the CPU has native bf16 (measured in docs/performance.md, with what that
does to the pixels). Only G moves: the encoder stays in torch, so the files an encode writes
do not depend on whether OpenVINO is installed, and the entropy model is untouched.

G's two parts (HiFiC.trunk and HiFiC.render, tiled separately for large images) are converted
from the loaded torch modules once per weights file and OpenVINO version, which takes seconds,
and kept in the user's cache folder ($XDG_CACHE_HOME/hificodec/openvino, or $HFC_CACHE_DIR);
later processes read them back in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

RUNTIMES = ("auto", "torch", "openvino")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """'torch' or 'openvino': ``auto`` picks OpenVINO for a CPU decode when it is installed."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (use {', '.join(RUNTIMES)})")
    if runtime == "openvino":
        if device.type != "cpu":
            raise ValueError("--runtime openvino runs on the CPU; use --device cpu")
        if not openvino_installed():
            raise ValueError("--runtime openvino needs OpenVINO: pip install 'hificodec[openvino]'")
        return "openvino"
    if runtime == "auto" and device.type == "cpu" and openvino_installed():
        return "openvino"
    return "torch"


def cache_dir() -> Path:
    """$HFC_CACHE_DIR, else $XDG_CACHE_HOME/hificodec (~/.cache/hificodec)."""
    if os.environ.get("HFC_CACHE_DIR"):
        return Path(os.environ["HFC_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hificodec"


class _Part(torch.nn.Module):
    """One of G's parts as a module of its own, for conversion."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, *inputs):
        return self.method(*inputs)


class OpenVinoSynthesis:
    """G's ``trunk`` and ``render`` compiled by OpenVINO; the same calls as HiFiC's."""

    def __init__(self, load_model, digest: str, threads: int | None = None):
        """``load_model()`` gives the plain fp32 HiFiC, called only when converting."""
        import openvino as ov

        version = re.sub(r"[^A-Za-z0-9._-]", "_", ov.__version__)
        folder = cache_dir() / "openvino" / f"{digest[:16]}-{version}"
        if not (folder / "render.xml").is_file():
            self._convert(load_model(), folder)
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(folder / "compiled")})  # compiled blobs, for the next process
        config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        # from the path: with CACHE_DIR set, a cached compile is loaded without reading the model
        self._trunk = core.compile_model(str(folder / "trunk.xml"), "CPU", config)
        self._render = core.compile_model(str(folder / "render.xml"), "CPU", config)

    @staticmethod
    def _convert(model, folder: Path) -> None:
        """Converts G's parts from torch (dynamic height and width) into ``folder``, atomically:
        a concurrent process either finds the whole folder or converts its own."""
        import openvino as ov

        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".converting-"))
        try:
            y_hat = torch.zeros(1, model.config.latent_channels, 8, 8)
            beta = torch.zeros(1)
            # OpenVINO traces with torch.jit, which warns that it is deprecated: not the user's concern
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                h = model.trunk(y_hat, beta)
                trunk = ov.convert_model(_Part(model.trunk), example_input=(y_hat, beta),
                                         input=[ov.PartialShape([1, y_hat.shape[1], -1, -1]), ov.PartialShape([1])])
                render = ov.convert_model(_Part(model.render), example_input=(h,),
                                          input=[ov.PartialShape([1, h.shape[1], -1, -1])])
            # fp32 on disk: G's weights are fp16 values already, but folded constants need not be
            ov.save_model(trunk, str(work / "trunk.xml"), compress_to_fp16=False)
            ov.save_model(render, str(work / "render.xml"), compress_to_fp16=False)
            try:
                os.replace(work, folder)
            except OSError:  # another process got there first: use its folder
                pass
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def trunk(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = self._trunk((np.ascontiguousarray(y_hat.numpy()), beta.reshape(1).float().numpy()))[0]
        return torch.from_numpy(np.array(out))

    def render(self, h: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self._render((np.ascontiguousarray(h.numpy()),))[0]))
