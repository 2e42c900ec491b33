"""hfc eval's parts: classical codecs and the bpp search, metric known values, the matched-rate
comparison, and an end-to-end run with plots, sheets and a report."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, random_image
from hificodec.codec import Codec
from hificodec.evaluation.analysis import compare_weights, matched_comparison, quality_targets
from hificodec.evaluation.classical import CODECS, interpolate_log_bpp, match_bpp, parse_codecs
from hificodec.evaluation.runner import eval_main
from hificodec.metrics.quality import (
    InceptionFeatures,
    LPIPSMetric,
    frechet_distance,
    kernel_inception_distance,
    patches,
)


@pytest.mark.parametrize("name", ["jpeg", "webp"])
def test_match_bpp_finds_the_closest_setting(photo, name):
    codec = CODECS[name]
    pixels = photo.shape[0] * photo.shape[1]
    for target in (0.3, 0.8):
        setting, data = match_bpp(codec, photo, target)
        got = 8 * len(data) / pixels
        for neighbour in (setting - 1, setting + 1):
            if codec.settings[0] <= neighbour <= codec.settings[1]:
                other = 8 * len(codec.encode(photo, neighbour)) / pixels
                assert abs(got - target) <= abs(other - target) + 1e-12
        assert codec.decode(data).shape == photo.shape


def test_every_codec_round_trips(photo):
    crop = photo[:64, :96]
    for codec in parse_codecs("jpeg,webp,avif,jxl,heic"):
        out = codec.decode(codec.encode(crop, 50))
        assert out.shape == crop.shape and np.abs(out.astype(int) - crop).mean() < 20, codec.name


def test_unknown_codec_refused():
    with pytest.raises(ValueError, match="unknown codec"):
        parse_codecs("jpeg,bpg")


def test_interpolation_over_log_bpp():
    pts = [(0.1, 20.0), (0.4, 30.0)]
    assert interpolate_log_bpp(pts, 0.2) == pytest.approx(25.0)  # halfway in log2: 0.1 -> 0.2 -> 0.4
    assert interpolate_log_bpp(pts, 0.1) == 20.0
    assert interpolate_log_bpp(pts, 0.05, extend=True) == pytest.approx(15.0)  # end segment's slope
    assert math.isnan(interpolate_log_bpp(pts, 0.05)) and math.isnan(interpolate_log_bpp(pts, 0.5))


def test_matched_comparison_interpolates_each_image_at_its_own_bpp():
    classical = [{"codec": "c", "image": img, "bpp": b, "psnr": p, "ms_ssim": 0.9, "lpips": l}
                 for img in ("a", "b") for b, p, l in ((0.1, 20.0, 0.5), (0.4, 30.0, 0.3), (0.8, 34.0, 0.2))]
    model = [{"model": "m", "quality": 0.0, "beta": 0.0, "image": "a", "bpp": 0.2, "psnr": 26.0, "lpips": 0.35},
             {"model": "m", "quality": 0.0, "beta": 0.0, "image": "b", "bpp": 0.4, "psnr": 29.0, "lpips": 0.45}]
    rows = {r["factor"]: r for r in matched_comparison(model, classical)}
    one = rows[1.0]
    assert one["images"] == 2 and one["psnr"] == pytest.approx((25.0 + 30.0) / 2)
    # a: 26 dB vs 25, LPIPS 0.35 vs 0.4 (model better twice); b: 29 vs 30, 0.45 vs 0.3 (worse twice)
    assert one["psnr_wins"] == 1 and one["lpips_wins"] == 1
    two = rows[2.0]  # image a at 0.4 (30 dB); image b at 0.8 (34 dB)
    assert two["psnr"] == pytest.approx(32.0) and two["model_psnr"] == pytest.approx(27.5)


def test_compare_weights_reads_the_reference_curve_at_the_candidates_bpp():
    # reference: per image, qualities 0 and 1 at 0.1 and 0.4 bpp; PSNR 20 -> 30, LPIPS 0.5 -> 0.3
    reference = [{"image": img, "quality": q, "beta": 2.56, "bpp": b, "psnr": p, "lpips": l}
                 for img in ("a", "b") for q, b, p, l in ((0, 0.1, 20.0, 0.5), (1, 0.4, 30.0, 0.3))]
    candidate = [{"image": "a", "quality": 0, "beta": 2.56, "bpp": 0.2, "psnr": 26.0, "lpips": 0.45},
                 {"image": "b", "quality": 0, "beta": 2.56, "bpp": 0.8, "psnr": 33.0, "lpips": 0.15},
                 {"image": "a", "quality": 0, "beta": 0.0, "bpp": 0.2, "psnr": 27.0, "lpips": 0.5}]
    (row,) = compare_weights(candidate, reference)  # beta 0 has no reference curve: no row
    assert row["beta"] == 2.56 and row["images"] == 2 and row["extended"] == 1
    # a: halfway in log bpp -> 25 dB, 0.4; b: one doubling beyond 0.4 bpp along the end
    # segment's slope (5 dB and -0.1 per doubling) -> 35 dB, 0.2
    assert row["reference_psnr"] == pytest.approx((25.0 + 35.0) / 2)
    assert row["reference_lpips"] == pytest.approx((0.4 + 0.2) / 2)
    assert row["psnr_gain"] == pytest.approx((26.0 + 33.0) / 2 - 30.0)
    assert row["lpips_wins"] == 1  # a: 0.45 > 0.4; b: 0.15 < 0.2


def test_quality_targets_check_each_bar():
    def point(beta, psnr, lpips, decode=0.5):
        return {"model": "m", "quality": 0.0, "beta": beta, "bpp": 0.3, "psnr": psnr, "lpips": lpips,
                "decode_s_median": decode}

    def match(beta, codec, factor, psnr, lpips, model_psnr, model_lpips):
        return {"model": "m", "quality": 0.0, "beta": beta, "codec": codec, "factor": factor, "psnr": psnr,
                "lpips": lpips, "model_psnr": model_psnr, "model_lpips": model_lpips}

    models = [point(0.0, 30.0, 0.30), point(1.28, 29.5, 0.25), point(2.56, 29.0, 0.20)]
    matched = [match(0.0, "webp", 1.0, 29.9, 0.35, 30.0, 0.30),
               match(2.56, "webp", 1.0, 29.9, 0.35, 29.0, 0.20), match(2.56, "avif", 1.0, 30.5, 0.22, 29.0, 0.20),
               match(2.56, "avif", 2.0, 33.0, 0.15, 29.0, 0.20), match(2.56, "heic", 2.0, 33.0, 0.25, 29.0, 0.20)]
    (t,) = quality_targets({"models": models, "matched": matched})
    assert t["best_codec"] == "avif" and t["lpips_below_all"] is True
    assert t["lpips_below_2x"] is False  # AVIF at twice the bits is better (0.15 < 0.20)
    assert t["psnr_at_least_webp"] is True and t["beta_monotonic"] is True and t["decode_ok"] is True
    assert t["hific_lpips"] == pytest.approx(0.043 + (0.069 - 0.043) * math.log(0.351 / 0.3) / math.log(0.351 / 0.183))
    models[1] = point(1.28, 30.1, 0.25, decode=2.0)  # PSNR rises from beta 0 to 1.28; decode too slow
    (t,) = quality_targets({"models": models, "matched": matched[1:]})
    assert t["beta_monotonic"] is False and t["decode_ok"] is False and t["psnr_at_least_webp"] is None


def test_lpips_metric_matches_the_formula(photo):
    """LPIPS-Alex v0.1 computed by hand from the package's own layers: unit-normalised AlexNet
    features, squared differences weighted by the learned 1x1 layers, spatial mean, summed."""
    metric = LPIPSMetric()
    a = photo[:128, :160]
    b = np.clip(a.astype(int) + np.random.default_rng(0).normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    net = metric.loss.model
    to = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        fa, fb = net.net.forward(net.scaling_layer(to(a))), net.net.forward(net.scaling_layer(to(b)))
        total = 0.0
        for k, lin in enumerate(net.lins):
            na = fa[k] / (fa[k].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb[k] / (fb[k].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += float(lin((na - nb) ** 2).mean())
    assert metric(a, b) == pytest.approx(total, rel=1e-5)
    assert metric(a, a) == 0.0
    worse = np.clip(a.astype(int) + np.random.default_rng(0).normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < metric(a, b) < metric(a, worse)


def test_patches_follow_the_hific_grid():
    img = np.zeros((512, 768, 3), np.uint8)
    assert len(patches(img)) == 3 * 2 + 2 * 1  # grid + half-shifted grid
    assert len(patches(img[:200])) == 0


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures()


def test_fid_and_kid_of_a_set_against_itself_are_zero(photo, inception):
    crops = np.stack([photo[y : y + 256, x : x + 256] for y in (0, 128, 256) for x in (0, 100, 200, 300, 400, 500)])
    feats = inception(crops)
    assert feats.shape == (18, 2048)
    noisy = np.clip(crops.astype(int) + np.random.default_rng(1).normal(0, 30, crops.shape), 0, 255).astype(np.uint8)
    other = inception(noisy)
    assert abs(frechet_distance(feats, feats)) < 1e-3
    assert frechet_distance(feats, other) > 50
    # KID's unbiased estimate scatters around 0 for equal distributions (here: identical sets)
    kid_self = kernel_inception_distance(feats, feats, subsets=10, subset_size=18)
    kid_noisy = kernel_inception_distance(feats, other, subsets=10, subset_size=18)
    assert kid_noisy > 0.02 and abs(kid_self) < kid_noisy / 3


def test_eval_end_to_end_and_resume(tmp_path, tiny_weights_dir, monkeypatch, photo):
    import hificodec.evaluation.runner as evaluate

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    monkeypatch.setattr(evaluate, "MIN_FID_PATCHES", 2)  # tiny folder: force the FID path
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(photo[:256, :384]).save(data / "a.png")
    Image.fromarray(random_image(260, 300, seed=2)).save(data / "b.png")
    out = tmp_path / "out"
    encodes = []
    encode = Codec.encode
    monkeypatch.setattr(Codec, "encode", lambda self, *a, **k: encodes.append(a) or encode(self, *a, **k))
    summary = eval_main(data, [TINY], [0.0, 2.56], out, "cpu", parse_codecs("jpeg,webp"), (0.1, 0.3, 1.0, 3.0),
                        True, (0.3,), progress=False, sheet_count=1)
    assert len(encodes) == 2  # one file per image: the sheet reuses a.png's
    assert {(m["quality"], m["beta"]) for m in summary["models"]} == {(0.0, 0.0), (0.0, 2.56)}
    assert all("fid" in m for m in summary["models"])
    assert {c["codec"] for c in summary["classical"]} == {"jpeg", "webp"}
    assert any(m["codec"] == "webp" for m in summary["matched"])
    for name in ("per_image.csv", "classical.csv", "summary.json", "report.md", "plots/bpp_vs_lpips.png",
                 "plots/psnr_vs_fid.png", "sheets/a.png"):
        assert (out / name).is_file(), name
    assert "## At the bpp each image actually got" in (out / "report.md").read_text()
    assert f"coded with {TINY} q0:" in (out / "report.md").read_text()  # the sheets name their source
    with open(out / "classical.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2 * 4
    # resume: nothing is re-encoded (the codecs must not be called)
    monkeypatch.setattr(CODECS["jpeg"].__class__, "encode", lambda *a, **k: pytest.fail("re-encoded"))
    again = eval_main(data, [TINY], [0.0, 2.56], out, "cpu", parse_codecs("jpeg,webp"), (0.1, 0.3, 1.0, 3.0),
                      True, (0.3,), progress=False, sheet_count=0)
    assert json.dumps(again["classical"]) == json.dumps(summary["classical"])
    assert json.dumps(again["models"]) == json.dumps(summary["models"])
    assert "## Against the quality bars" in (out / "report.md").read_text() and summary["targets"]
    # rows measured with other weights (a retrained file under the same name) are measured again
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["weights"] for r in rows} == {evaluate.weights_tag(Codec.load(TINY))}
    for r in rows:
        r.update(weights="0" * 12, psnr="99.0")
    evaluate._write_csv(out / "per_image.csv", rows)
    third = eval_main(data, [TINY], [0.0, 2.56], out, "cpu", None, fid=True, fid_targets=(), progress=False,
                      sheet_count=0)
    assert [m["psnr"] for m in third["models"]] == pytest.approx([m["psnr"] for m in summary["models"]])


def test_eval_refills_fid_patches_of_copied_classical_rows(tmp_path, tiny_weights_dir, monkeypatch, photo):
    # classical.csv copied into a new output folder (e.g. from docs/results/): the FID patches
    # come from one encode at each row's setting, not from a new bpp search; a row whose file
    # no longer comes out as recorded is measured anew.
    import hificodec.evaluation.classical as classical
    import hificodec.evaluation.runner as evaluate

    monkeypatch.setenv("HFC_WEIGHTS_DIR", str(tiny_weights_dir))
    monkeypatch.setattr(evaluate, "MIN_FID_PATCHES", 2)
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(photo[:256, :384]).save(data / "a.png")
    Image.fromarray(random_image(260, 300, seed=2)).save(data / "b.png")

    def run(out):
        return eval_main(data, [TINY], [0.0], out, "cpu", parse_codecs("jpeg"), (0.3, 1.0), True, (0.3,),
                         progress=False, sheet_count=0)

    first = run(tmp_path / "first")
    with open(tmp_path / "first" / "classical.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["image"] == "b.png" and float(r["target"]) == 0.3:
            r["bytes"] = "1"
    (tmp_path / "fresh").mkdir()
    evaluate._write_csv(tmp_path / "fresh" / "classical.csv", rows)
    searched = []
    search = classical.match_bpp
    monkeypatch.setattr(classical, "match_bpp",
                        lambda codec, rgb, target, cache=None: searched.append(target) or search(codec, rgb, target, cache))
    again = run(tmp_path / "fresh")
    assert searched == [0.3, 1.0]  # b.png only

    def jpeg_at(summary, target):
        return next(c for c in summary["classical"] if c["target"] == target)

    assert jpeg_at(again, 0.3)["fid"] == pytest.approx(jpeg_at(first, 0.3)["fid"], rel=1e-5)
    assert jpeg_at(again, 0.3)["bpp"] == pytest.approx(jpeg_at(first, 0.3)["bpp"])
