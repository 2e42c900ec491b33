"""Fuzzes the .hfc decoder: mutated, truncated and spliced files must end in an image or a clean
error (BitstreamError / CodecError), never a crash, a hang or a memory blow-up.

    python tools/fuzz_bitstream.py [--cases 2000] [--seed 0] [--model hific-cpu-vbr] [-o fuzz.json]

Most mutations are followed by a CRC fix-up, so the damaged range-coded strings get past the
checksum and reach the entropy decoder (which is where a native crash would happen). Cases run
in a worker process; if the worker dies or stops answering, the parent records the case as a
crash or a hang and starts a new worker from the next case. Results: docs/robustness.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import select
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ["flip_bits", "overwrite_span", "truncate", "extend", "splice", "random_strings", "header_field",
              "metadata"]
OUTPUT_FORMATS = ["PNG", "JPEG", "WEBP", "TIFF"]


def seed_files(model: str) -> list[bytes]:
    """Valid files of several sizes and qualities, cut from the bundled example photo."""
    from hificodec.codec import Codec
    from hificodec.imaging.images import load_rgb

    codec = Codec.load(model, "cpu")
    photo = load_rgb(ROOT / "examples" / "kodim23.png").rgb8
    files = []
    for i, (h, w) in enumerate([(1, 1), (17, 33), (64, 64), (96, 160), (200, 131)]):
        quality = float(i % codec.model.rate_levels)
        # every other file carries a metadata section (EXIF, XMP, ICC note), as a camera photo's would
        files.append(codec.encode(photo[100 : 100 + h, 200 : 200 + w], quality, metadata=camera_metadata() if i % 2 else None))
    return files


def camera_metadata():
    from PIL import Image

    from hificodec.format.bitstream import Metadata

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = "Canon", "EOS 5D", "2024:05:06 07:08:09", 1
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:00"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return Metadata(exif.tobytes()[6:], xmp, "Display P3")


def fix_crc(data: bytes) -> bytes:
    if len(data) < 8:
        return data
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4]))


def mutate(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    data = bytearray(rng.choice(seeds))
    op = rng.choice(OPERATIONS)
    if op == "flip_bits":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == "overwrite_span":
        start = rng.randrange(len(data))
        for i in range(start, min(len(data), start + rng.randint(1, 64))):
            data[i] = rng.randrange(256)
    elif op == "truncate":
        data = data[: rng.randrange(len(data))]
    elif op == "extend":
        data += os.urandom(rng.randint(1, 2048))
    elif op == "splice":
        other = rng.choice(seeds)
        data = data[: rng.randrange(len(data))] + other[rng.randrange(len(other)) :]
    elif op == "random_strings":  # a valid header around range-coder garbage
        from hificodec.format import bitstream

        hfc = bitstream.parse(bytes(data))
        z = os.urandom(rng.choice([0, 1, 3, 4, 8, 64, len(hfc.z_string), 4096]))
        y = os.urandom(rng.choice([0, 1, 3, 4, 8, 64, len(hfc.y_string), 65536]))
        if rng.random() < 0.3:
            y = b"\xff" * len(y)  # maximal escape codes
        data = bytearray(bitstream.HfcFile(hfc.model, hfc.weights_digest, hfc.width, hfc.height, z, y,
                                           hfc.quality_code, hfc.metadata).to_bytes())
    elif op == "metadata":  # a valid file whose EXIF and XMP are forged: writing them out must cope
        from hificodec.format import bitstream

        hfc = bitstream.parse(bytes(data))
        exif = camera_metadata().exif
        exif = rng.choice([os.urandom(rng.randint(1, 300)), exif[:4] + os.urandom(rng.randint(4, 300)),
                           bytes(b ^ (rng.random() < 0.05) * rng.randrange(256) for b in exif), exif[: rng.randrange(len(exif))]])
        xmp = rng.choice([b"", os.urandom(rng.randint(1, 300)), b"<x:xmpmeta>" + os.urandom(40)])
        data = bytearray(bitstream.HfcFile(hfc.model, hfc.weights_digest, hfc.width, hfc.height, hfc.z_string,
                                           hfc.y_string, hfc.quality_code,
                                           bitstream.Metadata(exif, xmp, "note")).to_bytes())
    elif op == "header_field":
        name_len = data[6]
        fields = {"width": 7 + name_len + 32, "height": 11 + name_len + 32, "quality": 15 + name_len + 32,
                  "z_len": 17 + name_len + 32}
        field = rng.choice(list(fields))
        pos = fields[field]
        size = 2 if field == "quality" else 4
        value = rng.choice([0, 1, 2, 255, 256, 511, 65535, 65536, 2**31, 2**32 - 1, rng.randrange(2 ** (8 * size))])
        data[pos : pos + size] = (value % 2 ** (8 * size)).to_bytes(size, "big")
    if rng.random() < 0.8:
        data = bytearray(fix_crc(bytes(data)))
    return op, bytes(data)


def worker(model: str, seed: int, start: int, end: int) -> None:
    """Runs cases start..end-1, printing one JSON line per case (before: 'start', after: result)."""
    import torch

    from hificodec.format import bitstream
    from hificodec.codec import CodecError, CodecPool
    from hificodec.imaging.images import encode_image

    torch.set_num_threads(1)
    seeds = seed_files(model)
    pool = CodecPool("cpu")
    for i in range(start, end):
        rng = random.Random(seed * 1_000_003 + i)
        op, data = mutate(rng, seeds)
        print(json.dumps({"case": i, "op": op, "bytes": len(data)}), flush=True)
        t0 = time.perf_counter()
        try:
            hfc = bitstream.parse(data)
            rgb = pool.for_file(hfc).decode(hfc, rng.choice([0.0, 1.28, 2.56]))
            encode_image(rgb, rng.choice(OUTPUT_FORMATS), hfc.metadata)  # the file's metadata written out as hfc decode does
            outcome = "decoded"
        except (bitstream.BitstreamError, CodecError) as exc:
            # one category per kind of message: names, digests and numbers masked
            outcome = "refused: " + re.sub(r"'[^']*'|\b[0-9a-f]{12}\b|\d+(\.\d+)?", "#", str(exc).split(" (")[0])[:60]
        except Exception as exc:  # noqa: BLE001 - anything else is a finding
            outcome = f"UNEXPECTED {type(exc).__name__}: {str(exc)[:80]}"
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"case": i, "op": op, "outcome": outcome, "seconds": time.perf_counter() - t0,
                          "rss_mb": rss_mb}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="hific-cpu-vbr")
    ap.add_argument("--hang-seconds", type=float, default=30.0, help="a case taking longer counts as a hang")
    ap.add_argument("-o", "--output", type=Path, default=None, help="write the summary JSON here")
    ap.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.model, args.seed, *args.worker)
        return

    outcomes: Counter = Counter()
    by_op: dict[str, Counter] = {}
    findings: list[dict] = []
    slowest = peak_rss = 0.0
    next_case = 0
    started = time.perf_counter()
    while next_case < args.cases:
        cmd = [sys.executable, __file__, "--model", args.model, "--seed", str(args.seed),
               "--worker", str(next_case), str(args.cases)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        current = None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], args.hang_seconds + 120)  # + model load
            line = proc.stdout.readline() if ready else None
            if line is None:  # nothing for too long: a hang
                proc.kill()
                findings.append({"case": current["case"] if current else next_case, "op": current and current["op"],
                                 "finding": "hang"})
                outcomes["HANG"] += 1
                next_case = (current["case"] if current else next_case) + 1
                break
            if not line:  # worker ended: finished, or died in the middle of a case
                code = proc.wait()
                if current is not None:
                    findings.append({"case": current["case"], "op": current["op"], "finding": f"crash (exit {code})"})
                    outcomes["CRASH"] += 1
                    next_case = current["case"] + 1
                else:
                    next_case = args.cases
                break
            record = json.loads(line)
            if "outcome" not in record:
                current = record
                continue
            current = None
            next_case = record["case"] + 1
            outcome = record["outcome"]
            outcomes[outcome] += 1
            by_op.setdefault(record["op"], Counter())[outcome.split(":")[0]] += 1
            slowest = max(slowest, record["seconds"])
            peak_rss = max(peak_rss, record["rss_mb"])
            if outcome.startswith("UNEXPECTED") or record["seconds"] > args.hang_seconds:
                findings.append({"case": record["case"], "op": record["op"], "finding": outcome,
                                 "seconds": record["seconds"]})
    summary = {
        "cases": args.cases, "seed": args.seed, "model": args.model,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "slowest_case_seconds": round(slowest, 3), "peak_worker_rss_mb": round(peak_rss),
        "outcomes": dict(outcomes.most_common()), "by_operation": {k: dict(v) for k, v in sorted(by_op.items())},
        "findings": findings,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
