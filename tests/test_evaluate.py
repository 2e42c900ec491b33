import math

import numpy as np

from hificodec.evaluation.analysis import summarize
from hificodec.metrics.quality import psnr


def test_psnr_of_known_mse():
    a = np.zeros((10, 10, 3), dtype=np.uint8)
    b = np.full((10, 10, 3), 10, dtype=np.uint8)  # MSE = 100
    assert math.isclose(psnr(a, b), 10 * math.log10(255**2 / 100), rel_tol=1e-12)
    assert psnr(a, a) == float("inf")


def test_summary_means_per_model_and_beta():
    rows = [
        {"model": "m", "beta": b, "bpp": bpp, "psnr": 20 + b, "ms_ssim": float("nan"), "lpips": 0.5,
         "encode_s": 1.0, "decode_s": d}
        for b in (0.0, 2.56) for bpp, d in ((0.1, 1.0), (0.3, 3.0))
    ]
    summary = summarize(rows)
    assert [(s["beta"], s["images"]) for s in summary] == [(0.0, 2), (2.56, 2)]
    assert math.isclose(summary[0]["bpp"], 0.2) and summary[1]["psnr"] == 22.56
    assert math.isnan(summary[0]["ms_ssim"]) and summary[0]["decode_s_median"] == 2.0
