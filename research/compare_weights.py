"""Is a new weights file better than the one it would replace, at the same rate?

    python research/compare_weights.py CANDIDATE_CSV --candidate DIGEST12 \
        [--reference-csv docs/results/per_image.csv] [--reference DIGEST12]

Both CSVs are `hfc eval` per-image rows (per_image.csv); the weights are picked by the 12-hex
digest prefix in the `weights` column (default reference: the shipped hific-cpu-vbr). For every
quality and beta of the candidate, the reference's per-image curve over its qualities is read off
at the bpp the candidate got on that image (log-bpp interpolation, extended along the end segment
beyond the reference's range; such images are counted). A training phase that lands at another
rate than its predecessor is judged by this, not by means at each quality (docs/lab-notebook.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def rows_of(path: Path, digest: str) -> list[dict]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("weights") == digest]
    if not rows:
        sys.exit(f"compare_weights: no rows with weights {digest} in {path}")
    return rows


def shipped_digest() -> str:
    from hificodec.zoo import find_model

    return find_model("hific-cpu-vbr").digest[:12]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("candidate_csv", type=Path)
    ap.add_argument("--candidate", required=True, help="12-hex digest prefix of the candidate weights")
    ap.add_argument("--reference-csv", type=Path, default=ROOT / "docs" / "results" / "per_image.csv")
    ap.add_argument("--reference", default="", help="12-hex digest prefix (default: shipped hific-cpu-vbr)")
    args = ap.parse_args()

    from hificodec.evaluation.analysis import compare_weights

    reference = args.reference or shipped_digest()
    rows = compare_weights(rows_of(args.candidate_csv, args.candidate), rows_of(args.reference_csv, reference))
    print(f"candidate {args.candidate} against reference {reference} at the candidate's bpp, per image")
    print("quality  beta   bpp    PSNR (ref, diff)        LPIPS (ref, diff)          LPIPS wins  extended")
    for r in rows:
        print(f"{r['quality']:7g} {r['beta']:5g} {r['bpp']:6.3f}  {r['psnr']:6.2f} ({r['reference_psnr']:6.2f}, "
              f"{r['psnr_gain']:+.2f})  {r['lpips']:.4f} ({r['reference_lpips']:.4f}, {-r['lpips_gain']:+.4f})"
              f"   {r['lpips_wins']:2d}/{r['images']:<2d}      {r['extended']}")


if __name__ == "__main__":
    main()
