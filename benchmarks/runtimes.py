"""Issue 44: the generator (and encoder) under ONNX Runtime and OpenVINO against torch, same run.

    python benchmarks/runtimes.py [--model hific-cpu-vbr] [--repeats 5] [--threads 2]
    python benchmarks/runtimes.py --kodak ../shared/data/kodak     # the pixel cost, all images

Exports E and G of a shipped model to ONNX (opset 17, dynamic image size, beta an input),
then times each on the example photo's Kodak-sized input, interleaving the runtimes so that a
machine's load falls on all of them alike, and prints the median seconds, the ratio to torch
and how far each runtime's pixels are from torch's (max |difference| in 8-bit levels, PSNR).
Needs `pip install onnx onnxruntime openvino` (onnx and onnxruntime are not dependencies of
hificodec). With --kodak: hfc's own OpenVINO runtime (Codec runtime="openvino") against torch
on every image of a folder, mean PSNR and LPIPS at beta 0 and 2.56 at one quality, the bounds
issue 44 sets for adopting it (0.05 dB, 0.002 LPIPS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hificodec.codec import Codec  # noqa: E402
from hificodec.format import bitstream  # noqa: E402
from hificodec.imaging.images import load_rgb  # noqa: E402
from hificodec.imaging.tensors import to_tensor  # noqa: E402
from hificodec.nn.models import HiFiC  # noqa: E402


class _Generator(torch.nn.Module):
    def __init__(self, model: HiFiC):
        super().__init__()
        self.model = model

    def forward(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.model.synthesize(y_hat, beta)


def _to8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def pixel_cost(model: str, folder: Path, quality: float) -> None:
    from hificodec.imaging.images import image_files
    from hificodec.metrics.quality import LPIPSMetric, psnr

    lpips = LPIPSMetric()
    codecs = {name: Codec.load(model, "cpu", runtime=name) for name in ("torch", "openvino")}
    rows: dict[tuple[str, float], list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {name: 0.0 for name in codecs}
    files = image_files([folder])
    for path in files:
        rgb8 = load_rgb(path).rgb8
        data = codecs["torch"].encode(rgb8, quality)
        assert codecs["openvino"].encode(rgb8, quality) == data
        for beta in (0.0, 2.56):
            for name, codec in codecs.items():
                t0 = time.perf_counter()
                out = codec.decode(data, beta)
                seconds[name] += time.perf_counter() - t0
                rows.setdefault((name, beta), []).append((psnr(rgb8, out), lpips(rgb8, out)))
    print(f"{model} quality {quality:g}, {len(files)} images of {folder}:")
    for beta in (0.0, 2.56):
        (p0, l0), (p1, l1) = (np.mean(rows[(n, beta)], axis=0) for n in ("torch", "openvino"))
        print(f"  beta {beta:g}: PSNR torch {p0:.3f} openvino {p1:.3f} (change {p1 - p0:+.3f} dB); "
              f"LPIPS torch {l0:.4f} openvino {l1:.4f} (change {l1 - l0:+.4f})")
    print("  decode seconds in all (first OpenVINO call included): " +
          ", ".join(f"{n} {t:.1f}" for n, t in seconds.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hific-cpu-vbr")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kodak", type=Path, help="measure the pixel cost of hfc's OpenVINO runtime on this folder")
    ap.add_argument("--quality", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.kodak:
        pixel_cost(args.model, args.kodak, args.quality)
        return
    import onnxruntime as ort
    import openvino as ov

    from hificodec import zoo

    codec = Codec.from_info(zoo.find_model(args.model), "cpu", channels_last=False)  # plain modules for export
    model = codec.model
    photo = load_rgb(ROOT / "examples" / "kodim23.png").rgb8
    x = HiFiC.pad(to_tensor(photo))
    hfc = bitstream.parse(codec.encode(photo))
    y_hat = codec.latent(hfc)
    beta = torch.tensor([2.56])
    work = Path(tempfile.mkdtemp())
    parts = {
        "G": (_Generator(model), (y_hat, beta), ["y_hat", "beta"], {"y_hat": {2: "h", 3: "w"}}),
        "E": (model.encoder, (x,), ["x"], {"x": {2: "H", 3: "W"}}),
    }
    torch_channels_last = Codec.load(args.model, "cpu")  # what hfc runs
    for name, (module, inputs, names, axes) in parts.items():
        path = work / f"{name}.onnx"
        torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["out"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"INFERENCE_NUM_THREADS": args.threads})
        feeds = {n: t.numpy() for n, t in zip(names, inputs)}
        if name == "G":
            reference = lambda: torch_channels_last.model.synthesize(  # noqa: E731
                y_hat.contiguous(memory_format=torch.channels_last), beta).numpy()
        else:
            reference = lambda: torch_channels_last.model.analyse(  # noqa: E731
                x.contiguous(memory_format=torch.channels_last)).numpy()
        runners = {
            "torch (channels-last, as hfc)": lambda: reference(),
            "onnxruntime": lambda: session.run(None, feeds)[0],
            "openvino": lambda: compiled(feeds)[0],
        }
        with torch.no_grad():
            outputs = {k: run() for k, run in runners.items()}  # warm-up, and the outputs compared
            times: dict[str, list[float]] = {k: [] for k in runners}
            for _ in range(args.repeats):
                for k, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[k].append(time.perf_counter() - t0)
        base = statistics.median(times["torch (channels-last, as hfc)"])
        ref = outputs["torch (channels-last, as hfc)"]
        print(f"{name} on {photo.shape[1]}x{photo.shape[0]} ({args.threads} threads):")
        for k in runners:
            t = statistics.median(times[k])
            if name == "G":
                a, b = _to8(ref[0]).astype(int), _to8(outputs[k][0]).astype(int)
                mse = float(np.mean((a - b) ** 2))
                diff = f"max {np.abs(a - b).max()} levels, PSNR vs torch {10 * np.log10(255**2 / mse) if mse else float('inf'):.1f} dB"
            else:
                diff = f"max |dy| {np.abs(ref - outputs[k]).max():.2e}"
            print(f"  {k:32s} {t:6.3f} s  {t / base:5.2f}x torch  {diff}")


if __name__ == "__main__":
    main()
