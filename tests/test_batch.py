"""Converting folder trees (issue 46): mirrored trees under -d, re-runs that skip complete
outputs, --files-from, the summary line and the JSON records."""

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from conftest import TINY, TINY_VBR, random_image


def _photo(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_image(h, w, seed=seed)).save(path)


@pytest.fixture
def library(tmp_path) -> Path:
    """A camera-style tree: the same file name in several folders (DCIM/100/IMG_0001 ...)."""
    root = tmp_path / "photos"
    _photo(root / "img.png", 20, 30, 0)
    _photo(root / "100" / "img.png", 17, 33, 1)
    _photo(root / "101" / "img.png", 24, 16, 2)
    _photo(root / "101" / "deeper" / "other.png", 9, 40, 3)
    return root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_tree_with_duplicate_names_round_trips(run, library, tmp_path):
    out, back = tmp_path / "out", tmp_path / "back"
    r = run("encode", library, "-d", out, "--model", TINY, "-q")
    assert r.exit_code == 0, r.output
    assert _tree(out) == ["100/img.hfc", "101/deeper/other.hfc", "101/img.hfc", "img.hfc"]
    r = run("decode", out, "-d", back, "--beta", "0", "-q")
    assert r.exit_code == 0, r.output
    assert _tree(back) == _tree(library)
    for name in _tree(library):
        assert Image.open(back / name).size == Image.open(library / name).size


def test_files_named_one_by_one_stay_flat_and_collisions_are_refused(run, library, tmp_path):
    out = tmp_path / "flat"
    r = run("encode", library / "img.png", library / "101" / "deeper" / "other.png", "-d", out, "--model", TINY)
    assert r.exit_code == 0, r.output
    assert _tree(out) == ["img.hfc", "other.hfc"]
    r = run("encode", library / "100" / "img.png", library / "101" / "img.png", "-d", tmp_path / "clash", "--model", TINY)
    assert r.exit_code == 2 and "same output file" in r.output
    assert not (tmp_path / "clash").exists() or _tree(tmp_path / "clash") == []  # refused before any work


def test_rerun_converts_only_what_is_missing(run, library, tmp_path):
    out = tmp_path / "out"
    first = run("encode", library, "-d", out, "--model", TINY_VBR, "--json")
    assert first.exit_code == 0
    assert [r["status"] for r in _records(first.stdout)] == ["converted"] * 4
    kept = (out / "img.hfc").stat().st_mtime_ns
    # an "interrupted" run: two outputs never written, one cut short
    (out / "100" / "img.hfc").unlink()
    (out / "101" / "deeper" / "other.hfc").unlink()
    truncated = (out / "101" / "img.hfc").read_bytes()[:-7]
    (out / "101" / "img.hfc").write_bytes(truncated)

    again = run("encode", library, "-d", out, "--model", TINY_VBR, "--json")
    status = {Path(r["output"]).relative_to(out).as_posix(): r["status"] for r in _records(again.stdout)}
    assert status == {"img.hfc": "skipped", "100/img.hfc": "converted", "101/deeper/other.hfc": "converted",
                      "101/img.hfc": "failed"}
    assert again.exit_code == 1 and "not a complete output" in again.stderr
    assert (out / "101" / "img.hfc").read_bytes() == truncated  # an incomplete output is left alone
    assert (out / "img.hfc").stat().st_mtime_ns == kept  # a complete one is not rewritten

    # other settings make an existing output incomplete too: another quality is not skipped
    other = run("encode", library, "-d", out, "--model", TINY_VBR, "--quality", "2", "--json")
    assert [r["status"] for r in _records(other.stdout)] == ["failed"] * 4
    forced = run("encode", library, "-d", out, "--model", TINY_VBR, "--force", "--json")
    assert forced.exit_code == 0 and [r["status"] for r in _records(forced.stdout)] == ["converted"] * 4


def test_decode_rerun_skips_complete_images_and_redoes_broken_ones(run, library, tmp_path):
    out, back = tmp_path / "out", tmp_path / "back"
    assert run("encode", library, "-d", out, "--model", TINY, "-q").exit_code == 0
    assert run("decode", out, "-d", back, "-q").exit_code == 0
    (back / "100" / "img.png").write_bytes((back / "100" / "img.png").read_bytes()[:40])  # cut short
    os.utime(back / "img.png", ns=(0, 0))  # older than its .hfc: not the output of this file
    r = run("decode", out, "-d", back, "--json")
    status = {Path(x["output"]).relative_to(back).as_posix(): x["status"] for x in _records(r.stdout)}
    assert status == {"img.png": "failed", "100/img.png": "failed", "101/img.png": "skipped",
                      "101/deeper/other.png": "skipped"}


def test_files_from_with_spaces_and_newlines(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ["a b/photo one.png", "c/new\nline.png", "c/plain.png"]
    for i, name in enumerate(names):
        _photo(tmp_path / name, 12, 20 + i, i)
    listing = b"\0".join(os.fsencode(n) for n in names) + b"\0"
    r = run("encode", "--files-from", "-", "-0", "-d", "out", "--model", TINY, "-q", input=listing)
    assert r.exit_code == 0, r.output
    assert _tree(tmp_path / "out") == sorted(n.replace(".png", ".hfc") for n in names)  # relative paths kept

    (tmp_path / "list.txt").write_text("out/a b/photo one.hfc\n\nout/c/plain.hfc\n")  # one per line, blank skipped
    r = run("decode", "--files-from", "list.txt", "-d", "dec", "-q")
    assert r.exit_code == 0, r.output
    assert _tree(tmp_path / "dec") == ["out/a b/photo one.png", "out/c/plain.png"]


def test_summary_line_and_json_records(run, library, tmp_path):
    (library / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    r = run("encode", library, "-d", out, "--model", TINY, "--json")
    assert r.exit_code == 1
    summary = r.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"hfc: 4 converted, 0 skipped, 1 failed; [\d.]+ k?B -> [\d.]+ k?B \([\d.]+:1\) "
                        r"in [\d.]+ s \([\d.]+ images/s\)", summary), summary
    records = _records(r.stdout)
    assert len(records) == 5 and len(r.stdout.splitlines()) == 5  # nothing else on stdout
    assert set(records[0]) == {"input", "output", "status", "bytes_in", "bytes_out", "bpp", "seconds", "error"}
    broken = next(x for x in records if x["input"].endswith("broken.png"))
    assert broken["status"] == "failed" and "not a recognized image" in broken["error"] and broken["bytes_out"] is None
    done = [x for x in records if x["status"] == "converted"]
    for x in done:
        assert x["bytes_out"] == Path(x["output"]).stat().st_size and x["bytes_in"] == Path(x["input"]).stat().st_size
        w, h = Image.open(x["input"]).size
        assert x["bpp"] == pytest.approx(8 * x["bytes_out"] / (w * h), abs=1e-5) and x["error"] is None
    assert sum(x["bytes_in"] for x in done) > 0
    quiet = run("encode", library, "-d", tmp_path / "q", "--model", TINY, "-q")
    assert "converted" not in quiet.stderr and "1 of 5 inputs failed" in quiet.stderr


def test_usage_errors_of_batch_options(run, library, tmp_path):
    assert run("encode", library / "img.png", "-o", "-", "--json", "--model", TINY).exit_code == 2
    assert run("encode", library, "-0", "-d", tmp_path / "o", "--model", TINY).exit_code == 2
    assert run("encode", "--model", TINY).exit_code == 2
    r = run("encode", "--files-from", tmp_path / "missing.txt", "-d", tmp_path / "o", "--model", TINY)
    assert r.exit_code == 2 and "missing.txt" in r.output
    r = run("encode", "-", "--files-from", "-", "--model", TINY, input=b"")
    assert r.exit_code == 2


def test_pipeline_overlaps_reading_work_and_writing_and_keeps_order(tmp_path):
    """While file i's work runs, file i+1 is read and file i-1 written (each step on its own
    thread): a step that waited for its neighbour's step would time out here. A failure in any
    step fails that file alone, and records come in the files' order."""
    import threading

    from hificodec.cli import batch

    jobs = [batch.Job(f"in{i}", str(tmp_path / f"out{i}")) for i in range(6)]
    read_started = {i: threading.Event() for i in range(6)}
    finish_started = {i: threading.Event() for i in range(6)}
    overlapped = []

    def index(job):
        return int(job.source[2:])

    def read(job):
        i = index(job)
        read_started[i].set()
        if i == 2:
            raise ValueError("unreadable")
        return i

    def work(job, i):
        # the next read and the previous finish run while this work does
        overlapped.append((read_started[i + 1].wait(5) if i + 1 < 6 else True,
                           finish_started[i - 1].wait(5) if i > 0 and i - 1 not in (2, 3) else True))
        if i == 3:
            raise RuntimeError("out of memory")
        return i

    def finish(job, i):
        finish_started[i].set()
        if i == 4:
            raise OSError(28, "No space left on device")
        return batch.Converted(i, 10 * i, message=f"done {i}")

    records = []
    pipeline = batch._pipeline(jobs, batch.Stages(read, work, finish), True, None, False,
                               batch.ThreadPoolExecutor(1), batch.ThreadPoolExecutor(1))
    for job, record in pipeline:
        records.append(record)
    assert [r.input for r in records] == [j.source for j in jobs]
    assert [r.status for r in records] == ["converted", "converted", "failed", "failed", "failed", "converted"]
    assert [r.error for r in records[2:5]] == ["unreadable", "out of memory", "No space left on device"]
    assert [r.bytes_out for r in records if r.status == "converted"] == [0, 10, 50]
    assert all(all(pair) for pair in overlapped), overlapped
