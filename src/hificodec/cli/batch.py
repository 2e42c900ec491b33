"""Batch conversion for the CLI: which output each input goes to, running the jobs in order
(a failure is reported and the batch goes on), skipping outputs a previous run completed, and
what is reported at the end (a summary line, or one JSON record per file).

A conversion comes in three steps (Stages), which a batch overlaps across files: the next file
is read while the network runs on this one, and the last one's output is encoded and written
meanwhile. No torch here: the steps are callables the CLI passes in.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable

from hificodec.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

STDIO = "-"


class PlanError(ValueError):
    """The inputs and output options cannot be carried out (a usage error, before any work)."""


@dataclass
class Job:
    """One input -> one output path (or stdout)."""

    source: str
    target: str
    # The target's folder is part of a mirrored tree under -d: created when missing. (A folder
    # named by -o must exist.)
    makes_folder: bool = False

    @property
    def label(self) -> str:
        return "<stdin>" if self.source == STDIO else self.source


@dataclass
class Plan:
    jobs: list[Job]
    # A batch (a folder, --files-from, or several inputs) skips outputs that are already complete
    # and ends with a summary; a single named file keeps the one-file behaviour: an existing
    # output is an error unless --force.
    is_batch: bool


@dataclass
class Converted:
    """What one conversion did, for -v, the summary line and --json."""

    bytes_in: int
    bytes_out: int
    bpp: float | None = None  # of the .hfc file involved
    message: str = ""  # for -v


@dataclass
class Stages:
    """One conversion in three steps, so that a batch can overlap them across files:
    ``read(job)`` runs on a reader thread one file ahead (input bytes, parsing, and the
    single-threaded work before the network), ``work(job, item)`` in the batch's own thread (the
    network), ``finish(job, result) -> Converted`` on a writer thread one file behind (output
    encoding and the atomic write). A step that fails fails its file alone."""

    read: Callable[[Job], Any]
    work: Callable[[Job, Any], Any]
    finish: Callable[[Job, Any], Converted]

    @classmethod
    def single(cls, convert: Callable[[Job], Converted]) -> "Stages":
        """A conversion that is one step (nothing to overlap)."""
        return cls(read=lambda job: None, work=lambda job, item: convert(job), finish=lambda job, done: done)


# What a failed file raises (see run); anything else is a bug and stops the batch.
FILE_ERRORS = (ValueError, OSError, MemoryError, RuntimeError)


@dataclass
class Record:
    input: str
    output: str
    status: str  # "converted", "skipped" or "failed"
    bytes_in: int | None = None
    bytes_out: int | None = None
    bpp: float | None = None
    seconds: float = 0.0
    error: str | None = None
    message: str = ""  # for -v, not in the JSON record

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "message"})


def read_file_list(source: str, nul_separated: bool) -> list[str]:
    """Input paths from a file or stdin ('-'): one per line, or NUL-separated (find -print0),
    which is the only way names containing a newline survive. Empty entries are ignored."""
    data = sys.stdin.buffer.read() if source == STDIO else Path(source).read_bytes()
    names = data.split(b"\0") if nul_separated else data.split(b"\n")
    return [os.fsdecode(n) for n in names if n]


def _mirrored(path: str) -> PurePath | None:
    """A listed relative path kept as it is under the output folder; None where it cannot be
    (absolute, or climbing out with '..')."""
    p = PurePath(path)
    if p.is_absolute() or ".." in p.parts:
        return None
    return p


def plan(inputs: list[str], output: str | None, outdir: str | None, out_ext: str, in_exts: set[str],
         listed: list[str] | None = None) -> Plan:
    """Expands folders and decides every output path, or raises PlanError.

    With ``outdir``, a folder's files keep their path relative to that folder (its tree is
    mirrored, so equal names in different subfolders cannot collide), listed files (``listed``,
    from --files-from) keep their relative path as listed, and files named one by one go
    straight into ``outdir``. Without it, each output goes beside its input."""
    from hificodec.imaging.images import image_files

    if output and outdir:
        raise PlanError("use either -o/--output or -d/--outdir, not both")
    pairs: list[tuple[str, PurePath | None]] = []  # (source, path under outdir; None: flat)
    folder_given = False
    for item in inputs:
        p = Path(item)
        if item == STDIO or not p.is_dir():
            pairs.append((item, None))
            continue
        folder_given = True
        found = image_files([p], in_exts)
        if not found:
            raise PlanError(f"folder {item} has no {'/'.join(sorted(in_exts))} files")
        pairs += [(str(f), f.relative_to(p)) for f in found]
    for item in listed or []:
        if item == STDIO:
            raise PlanError("'-' cannot be listed in --files-from")
        pairs.append((item, _mirrored(item)))
    if not pairs:
        raise PlanError("no inputs (give files, folders, '-' or --files-from)")
    sources = [s for s, _ in pairs]
    if output and len(sources) != 1:
        raise PlanError("-o/--output takes one input; use -d/--outdir for several")
    if sources.count(STDIO) > 1:
        raise PlanError("'-' (stdin) can be given only once")
    jobs = []
    for src, relative in pairs:
        if output:
            target = output
        elif src == STDIO:
            target = STDIO if not outdir else str(Path(outdir) / f"stdin{out_ext}")
        elif outdir:
            target = str(Path(outdir) / (relative or PurePath(Path(src).name)).with_suffix(out_ext))
        else:
            target = str(Path(src).with_suffix(out_ext))
        jobs.append(Job(src, target, makes_folder=bool(outdir and relative and len(relative.parts) > 1)))
    targets = [os.path.normpath(j.target) for j in jobs if j.target != STDIO]
    if len(set(targets)) != len(targets):
        clash = next(t for t in targets if targets.count(t) > 1)
        raise PlanError(f"two inputs would write the same output file {clash}; use -o per file")
    if sum(j.target == STDIO for j in jobs) > 1:
        raise PlanError("only one output can go to stdout")
    is_batch = len(jobs) > 1 or bool(listed) or folder_given
    if outdir:
        try:
            Path(outdir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlanError(f"cannot create output folder {outdir}: {exc.strerror}") from None
    return Plan(jobs, is_batch)


def check_target(job: Job, force: bool) -> None:
    """Refuses outputs that would clobber the input or an existing file (before any work)."""
    if job.target == STDIO:
        return
    target = Path(job.target)
    if job.source != STDIO and target.exists() and os.path.samefile(target, job.source):
        raise ValueError("output would overwrite the input")
    if target.exists() and not force:
        raise ValueError(f"{target} exists (use --force to overwrite)")
    if not target.parent.is_dir() and not (job.makes_folder and not target.parent.exists()):
        raise ValueError(f"output folder {target.parent} does not exist")


def write_output(job: Job, data: bytes, force: bool) -> None:
    """stdout, or an atomic write (a temporary file renamed into place) into the target's
    folder, created with its parents where a mirrored tree needs it."""
    from hificodec.imaging.images import atomic_write

    if job.target == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_target(job, force)  # again: the file system may have changed meanwhile
    target = Path(job.target)
    if job.makes_folder:
        target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data)


def read_input(job: Job) -> bytes:
    if job.source == STDIO:
        return sys.stdin.buffer.read()
    return Path(job.source).read_bytes()


class _CtrlC:
    """Remembers a Ctrl-C (SIGINT) as well as raising KeyboardInterrupt. CPython drops an
    exception raised inside a finalizer (__del__, weakref callbacks), so a Ctrl-C landing there
    would be lost and the batch would run on; the batch checks `pressed` after each file."""

    def __init__(self):
        import signal
        import threading

        self.pressed = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # signal.signal needs it
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _reason(exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (reason.splitlines() or [type(exc).__name__])[0]


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path) if path != STDIO else None
    except OSError:
        return None


@dataclass
class Tally:
    """Counts and bytes of a batch, for its summary line."""

    converted: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, record: Record) -> None:
        setattr(self, record.status, getattr(self, record.status) + 1)
        if record.status == "converted":
            self.bytes_in += record.bytes_in or 0
            self.bytes_out += record.bytes_out or 0

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        text = f"{self.converted} converted, {self.skipped} skipped, {self.failed} failed"
        if self.converted:
            size_in, size_out = self.bytes_in, self.bytes_out
            ratio = f"{size_in / size_out:.1f}:1" if size_in >= size_out else f"1:{size_out / max(size_in, 1):.1f}"
            text += f"; {_human(size_in)} -> {_human(size_out)} ({ratio})"
        text += f" in {seconds:.1f} s"
        if self.converted:
            text += f" ({self.converted / max(seconds, 1e-9):.2f} images/s)"
        return text


def _human(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}"


def run(plan_: Plan, convert: Stages | Callable[[Job], Converted], *, force: bool, quiet: bool, verbose: bool,
        complete=None, json_records: bool = False, echo=None) -> int:
    """Converts every job of the plan; returns the exit code (0 all done, 1 some failed, 130
    Ctrl-C). ``convert`` is a Stages, or one callable ``convert(job) -> Converted``;
    ``complete(job) -> Converted | None`` says whether an existing output is the finished result
    of this input and these settings (a batch then skips it; one that is not is reported as
    failed and left alone, unless ``force``).

    Every user-facing error of hificodec (bad image, bad .hfc, wrong model, corrupt weights) is
    a ValueError; OSError covers unreadable/unwritable files; MemoryError/RuntimeError an image
    too large for this machine."""
    from tqdm import tqdm

    stages = convert if isinstance(convert, Stages) else Stages.single(convert)
    jobs = plan_.jobs
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    show_bar = not quiet and sys.stderr.isatty() and len(jobs) > 1
    bar = tqdm(total=len(jobs), disable=not show_bar, file=sys.stderr, unit="img", dynamic_ncols=True)
    say = (lambda text: bar.write(text, file=sys.stderr)) if show_bar else echo
    tally = Tally()
    ctrl_c = _CtrlC()
    if len(jobs) > 1:
        reader = ThreadPoolExecutor(1, thread_name_prefix="hfc-read")
        writer = ThreadPoolExecutor(1, thread_name_prefix="hfc-write")
    else:  # one file: nothing to overlap, and other threads' allocations would only add to its peak
        reader = writer = _Inline()
    try:
        for job, record in _pipeline(jobs, stages, plan_.is_batch, complete, force, reader, writer):
            bar.update(1)
            tally.add(record)
            if record.status == "failed":
                say(f"hfc: {job.label}: {record.error}")
            elif verbose:
                say(f"{job.label} -> {job.target}: {record.message}")
            if json_records:
                sys.stdout.write(record.to_json() + "\n")
                sys.stdout.flush()
            if ctrl_c.pressed:  # a Ctrl-C whose KeyboardInterrupt was swallowed: stop here
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        _stop(reader, writer)
        bar.close()
        echo("hfc: interrupted")
        return EXIT_INTERRUPTED
    finally:
        _stop(reader, writer)  # a bug's exception too: a write under way ends (atomically) first
        ctrl_c.restore()
    bar.close()
    if tally.failed and len(jobs) > 1:
        echo(f"hfc: {tally.failed} of {len(jobs)} inputs failed")
    if plan_.is_batch and not quiet:
        echo(f"hfc: {tally.summary()}")
    return EXIT_FAILED if tally.failed else EXIT_OK


class _Inline:
    """An executor that runs each step at once, in the calling thread."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the result, as a thread would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _stop(reader: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> None:
    """Drops the reads not begun and waits for the steps under way: a write that has begun
    completes (atomic_write leaves a whole file or none), so no partial output is left."""
    reader.shutdown(wait=True, cancel_futures=True)
    writer.shutdown(wait=True, cancel_futures=True)


def _pipeline(jobs: list[Job], stages: Stages, is_batch: bool, complete, force: bool,
              reader: ThreadPoolExecutor, writer: ThreadPoolExecutor):
    """Yields (job, Record) in the jobs' order. While job i's work runs here, job i+1 is read on
    the reader thread and job i-1 finished on the writer thread."""

    def begin(job: Job) -> tuple[Record, Future | None, float]:
        """Skip it, refuse it, or start reading it."""
        record, start = Record(job.label, job.target, "converted"), time.monotonic()
        try:
            exists = job.target != STDIO and (Path(job.target).exists() or Path(job.target).is_symlink())
            if is_batch and exists and not force and complete is not None:
                done = complete(job)
                if done is None:
                    raise ValueError(f"{job.target} exists but is not a complete output of this input with these "
                                     "settings; left as it is (use --force to redo it)")
                record.status, record.message = "skipped", "skipped: already complete"
                _account(record, done)
                return record, None, start
            check_target(job, force)
        except FILE_ERRORS as exc:
            _fail(record, job, exc)
            return record, None, start
        return record, reader.submit(stages.read, job), start

    def settle(job: Job, record: Record, write: Future | None, start: float) -> tuple[Job, Record]:
        if write is not None:
            try:
                done = write.result()
                record.message = done.message
                _account(record, done)
            except FILE_ERRORS as exc:
                _fail(record, job, exc)
        record.seconds = round(time.monotonic() - start, 3)
        return job, record

    upcoming = begin(jobs[0]) if jobs else None
    writing = None
    for i, job in enumerate(jobs):
        record, read, start = upcoming
        upcoming = begin(jobs[i + 1]) if i + 1 < len(jobs) else None
        write = None
        if read is not None:
            try:
                write = writer.submit(stages.finish, job, stages.work(job, read.result()))
            except FILE_ERRORS as exc:
                _fail(record, job, exc)
        if writing is not None:
            yield settle(*writing)
        writing = (job, record, write, start)
    if writing is not None:
        yield settle(*writing)


def _account(record: Record, done: Converted) -> None:
    record.bytes_in, record.bytes_out = done.bytes_in, done.bytes_out
    record.bpp = round(done.bpp, 5) if done.bpp is not None else None


def _fail(record: Record, job: Job, exc: BaseException) -> None:
    record.status, record.error = "failed", _reason(exc)
    record.bytes_in = _size(job.source)


def newer_or_same(target: str, source: str) -> bool:
    """Whether the output was written after its input last changed."""
    return os.stat(target).st_mtime_ns >= os.stat(source).st_mtime_ns


# -- what "complete" means (README, "Converting a photo library") ------------------------------

def hfc_output_complete(job: Job, model: str, digest: str, quality_code: int, max_pixels: int) -> Converted | None:
    """An existing .hfc output is complete when it parses (checksum included), names the same
    model, weights and quality, holds an image of the input's size, and was written after the
    input last changed."""
    from hificodec.format import bitstream
    from hificodec.imaging.images import load_rgb

    if job.source == STDIO or not newer_or_same(job.target, job.source):
        return None
    data = Path(job.target).read_bytes()
    try:
        hfc = bitstream.parse(data, max_pixels=None)
    except bitstream.BitstreamError:
        return None
    if (hfc.model, hfc.weights_digest, hfc.quality_code) != (model, digest, quality_code):
        return None
    height, width = load_rgb(job.source, max_pixels=max_pixels).rgb8.shape[:2]
    if (hfc.width, hfc.height) != (width, height):
        return None
    return Converted(os.path.getsize(job.source), len(data), 8 * len(data) / hfc.pixels)


def image_output_complete(job: Job, fmt: str, max_pixels: int) -> Converted | None:
    """An existing decoded image is complete when it reads whole in the format asked for, has
    the size the .hfc file names, and was written after the .hfc file last changed. (Which beta
    it was decoded at is not recorded in the image: to decode at another beta, use --force or
    another folder.)"""
    from PIL import Image

    from hificodec.format import bitstream

    if job.source == STDIO or not newer_or_same(job.target, job.source):
        return None
    data = Path(job.source).read_bytes()
    hfc = bitstream.parse(data, max_pixels=max_pixels)  # a bad input fails as it would when decoding
    try:
        with Image.open(job.target) as im:
            im.load()
            if im.format != fmt or im.size != (hfc.width, hfc.height):
                return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return Converted(len(data), os.path.getsize(job.target), 8 * len(data) / hfc.pixels)
