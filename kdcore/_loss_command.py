"""``kdcore loss``: the exact value (and, on request, the gradient) of a kdcore loss of logits stored on disk.

A thin layer over :func:`kdcore.streaming.prepare` and :meth:`~kdcore.streaming.Plan.run`: it opens the
files, checks every argument and every header (one line, exit status 2, before any work), shows a progress
bar on stderr, and prints what it computed. kdcore/cli.py registers it (:func:`add_parser`).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .streaming import LOSSES

__all__ = ["KINDS", "add_parser"]


@dataclass(frozen=True)
class _Kind:
    loss: str  # the kdcore function
    options: tuple[str, ...]  # the loss's parameters this kind takes from the command line
    required: tuple[str, ...] = ()

    @property
    def teacher(self) -> bool:
        return "teacher" in LOSSES[self.loss].inputs

    @property
    def top_k(self) -> bool:
        return "teacher_values" in LOSSES[self.loss].inputs

    @property
    def needs_labels(self) -> bool:
        return "labels" in LOSSES[self.loss].inputs


#: The command's KIND names (those of ``kdcore check --kind``) and the options each takes.
KINDS = {
    "kl": _Kind("kl_divergence", ("T",)),
    "soft-ce": _Kind("soft_cross_entropy", ("T",)),
    "reverse-kl": _Kind("reverse_kl_divergence", ("T",)),
    "jsd": _Kind("jensen_shannon_divergence", ("T", "beta")),
    "skew-kl": _Kind("skew_kl_divergence", ("T", "skew")),
    "skew-reverse-kl": _Kind("skew_reverse_kl_divergence", ("T", "skew")),
    "distillation": _Kind("distillation_loss", ("T", "alpha", "t2_scaling", "soft"), ("T", "alpha")),
    "dkd": _Kind("decoupled_kd_loss", ("T", "alpha", "beta")),
    "tckd": _Kind("target_class_kl_divergence", ("T",)),
    "nckd": _Kind("non_target_class_kl_divergence", ("T",)),
    "ce": _Kind("cross_entropy", ()),
    "logit-mse": _Kind("logit_mse", ("centered",)),
    "topk-kl": _Kind("topk_kl_divergence", ("T", "convention", "values"), ("convention",)),
    "topk-soft-ce": _Kind("topk_soft_cross_entropy", ("T", "convention", "values"), ("convention",)),
}
# The flag of each parameter, as the user typed it (for messages).
_FLAGS = {
    "T": "--T",
    "alpha": "--alpha",
    "beta": "--beta",
    "skew": "--skew",
    "t2_scaling": "--no-t2",
    "soft": "--soft",
    "centered": "--no-center",
    "convention": "--convention",
    "values": "--teacher-space",
}

_HELP = """\
what it computes:
  the loss of kdcore's function (kl → kl_divergence, jsd → jensen_shannon_divergence, dkd →
  decoupled_kd_loss, ...) over every kept position, a chunk of rows at a time, in bounded memory;
  "mean" and "sum" add the per-position values exactly (rounded once, to float64) and print the result
  as repr() does: enough digits to give back the same float64. Compare it with what your trainer logged.

inputs:
  .npy (memory-mapped), .npz (stored members memory-mapped, compressed ones streamed), .safetensors
  (memory-mapped; BF16 widened to float32). Name an array in a file holding several as FILE:KEY,
  e.g. --student batch.npz:student_logits. Logits: shape (..., V), class axis last, floating point.
  --labels (integers, the leading shape): class indices for ce, distillation, dkd, tckd, nckd; for the
  other kinds only their --ignore-index positions are used, to drop padding. --mask (booleans, the
  leading shape): True keeps a position. Nothing is ever unpickled.

examples:
  kdcore loss kl --student s.npy --teacher t.npy --labels labels.npy --T 2
  kdcore loss jsd --student s.safetensors --teacher t.safetensors --beta 0.5 --grad grad.npy
  kdcore loss dkd --student batch.npz:student --teacher batch.npz:teacher --labels batch.npz:labels
  kdcore loss reverse-kl --student s.npy --teacher t.npy --reduction none --values per_token.npy
  kdcore loss topk-kl --student s.npy --teacher-values top.npz:values --teacher-indices top.npz:indices \
      --convention tail --teacher-space log_probs

exit status: 0 computed; 2 usage error (a missing or corrupt file, shapes that disagree, a bad value),
reported on one line before any work; stopped by a signal: 128 + its number (130 on Ctrl-C, 143 on
SIGTERM), one line on stderr, and no output file left behind
"""


def add_parser(commands) -> argparse.ArgumentParser:
    """Register ``kdcore loss`` on the ``kdcore`` command's sub-parsers."""
    parser = commands.add_parser(
        "loss",
        help="the exact value (and gradient) of a loss of logits on disk (.npy, .npz, .safetensors)",
        description="Compute a kdcore loss of student and teacher logits stored on disk, exactly and in "
        "bounded memory, and print its value (optionally write its gradient to an .npy file).",
        epilog=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=list(KINDS), metavar="KIND", help=", ".join(KINDS))
    parser.add_argument("--student", required=True, metavar="FILE[:KEY]", help="student logits (..., V)")
    parser.add_argument("--teacher", metavar="FILE[:KEY]", help="teacher logits, the student's shape")
    parser.add_argument(
        "--teacher-values", metavar="FILE[:KEY]", help="topk-*: the teacher's k stored values"
    )
    parser.add_argument("--teacher-indices", metavar="FILE[:KEY]", help="topk-*: their classes (integers)")
    parser.add_argument(
        "--convention",
        choices=["renormalized", "dense_student", "tail"],
        default=None,
        help="topk-*: required",
    )
    parser.add_argument(
        "--teacher-space", choices=["logits", "log_probs"], default=None, help="topk-*: what the values are"
    )
    parser.add_argument("--labels", metavar="FILE[:KEY]", help="integer labels, the leading shape")
    parser.add_argument("--mask", metavar="FILE[:KEY]", help="boolean keep-mask, the leading shape")
    parser.add_argument(
        "--ignore-index", type=int, default=-100, help="label of dropped positions (default: %(default)s)"
    )
    parser.add_argument("--T", type=float, default=None, help="temperature (default: the function's)")
    parser.add_argument(
        "--alpha", type=float, default=None, help="distillation: hard-label weight; dkd: TCKD weight"
    )
    parser.add_argument(
        "--beta", type=float, default=None, help="jsd: the teacher's weight in the mixture; dkd: NCKD weight"
    )
    parser.add_argument(
        "--skew", type=float, default=None, help="skew-kl, skew-reverse-kl: the mixing weight"
    )
    parser.add_argument("--no-t2", action="store_true", help="distillation: no T² on the soft term")
    parser.add_argument(
        "--soft", choices=["cross_entropy", "kl"], default=None, help="distillation: the soft loss"
    )
    parser.add_argument("--no-center", action="store_true", help="logit-mse: do not centre the logits")
    parser.add_argument("--reduction", choices=["mean", "sum", "none"], default="mean")
    parser.add_argument(
        "--values", metavar="OUT.npy", help="--reduction none: write the per-position values here"
    )
    parser.add_argument("--grad", metavar="OUT.npy", help="write the gradient w.r.t. the student logits here")
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: 2^23 / V)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads working on each chunk (default: kdcore's, min(4, CPUs)); 1 is sequential and holds "
        "one thread's temporaries (half the mixture kernels' memory on two cores); results do not change",
    )
    parser.add_argument(
        "--float64", action="store_true", help="compute in float64 (default: the files' dtype)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run, validate=_validate)
    return parser


def _usage_error(message: str) -> Exception:
    from .cli import _UsageError

    return _UsageError(message)


def _split_key(value: str) -> tuple[str, str | None]:
    """``FILE:KEY`` → (FILE, KEY) when FILE is an .npz or .safetensors file; anything else is a path."""
    head, colon, key = value.rpartition(":")
    if colon and key and head.lower().endswith((".npz", ".safetensors")):
        return head, key
    return value, None


def _open(flag: str, value: str):
    from .arrays_on_disk import open_array

    path, key = _split_key(value)
    try:
        return open_array(path, key)
    except (OSError, ValueError) as error:
        message = f"{flag} {value}: {error}"
        if key is None and "which one?" in message:
            message = message.replace("(key=...)", f"name it as {flag} {path}:KEY")
        raise _usage_error(message) from None


def _parameters(args: argparse.Namespace, kind: _Kind) -> dict:
    given = {
        "T": args.T,
        "alpha": args.alpha,
        "beta": args.beta,
        "skew": args.skew,
        "t2_scaling": False if args.no_t2 else None,
        "soft": args.soft,
        "centered": False if args.no_center else None,
        "convention": args.convention,
        "values": args.teacher_space,
    }
    for name, value in given.items():
        if value is not None and name not in kind.options:
            takes = [k for k, other in KINDS.items() if name in other.options]
            raise _usage_error(f"{_FLAGS[name]} is for {', '.join(takes)}, not {args.kind}")
    for name in kind.required:
        if given[name] is None:
            raise _usage_error(f"{args.kind} needs {_FLAGS[name]}")
    return {name: value for name, value in given.items() if value is not None}


def _effective(kind: _Kind, parameters: dict) -> dict:
    """The parameters the loss ran with: those given, and the function's defaults for the others."""
    signature = inspect.signature(LOSSES[kind.loss].function).parameters
    return {name: parameters.get(name, signature[name].default) for name in kind.options}


def _validate(args: argparse.Namespace) -> None:
    """Every argument and every file header, before any work: one line and exit status 2 on a problem."""
    from .cli import _check_output_file, _require
    from .streaming import prepare

    kind = KINDS[args.kind]
    parameters = _parameters(args, kind)
    pair = (args.teacher_values, args.teacher_indices)
    if kind.top_k and None in pair:
        raise _usage_error(f"{args.kind} needs --teacher-values and --teacher-indices")
    if not kind.top_k and pair != (None, None):
        raise _usage_error(
            f"--teacher-values and --teacher-indices are for topk-kl, topk-soft-ce, not {args.kind}"
        )
    if kind.teacher and args.teacher is None:
        raise _usage_error(f"{args.kind} needs --teacher")
    if not kind.teacher and args.teacher is not None:
        what = (
            "its teacher is --teacher-values and --teacher-indices"
            if kind.top_k
            else "it is the student's loss against labels"
        )
        raise _usage_error(f"{args.kind} takes no --teacher ({what})")
    if kind.needs_labels and args.labels is None:
        raise _usage_error(f"{args.kind} needs --labels")
    if args.chunk_rows is not None:
        _require(args.chunk_rows >= 1, "--chunk-rows", args.chunk_rows, "an integer ≥ 1")
    if args.threads is not None:
        _require(args.threads >= 1, "--threads", args.threads, "an integer ≥ 1")
    _require(
        (args.values is not None) == (args.reduction == "none"),
        "--values",
        args.values,
        "given with --reduction none, and only then (it holds one value per position)",
    )
    outputs = [(flag, value) for flag, value in (("--grad", args.grad), ("--values", args.values)) if value]
    for flag, value in outputs:
        _check_output_file(flag, value)
    if len(outputs) == 2:
        _require(
            Path(args.grad).resolve() != Path(args.values).resolve(),
            "--values",
            args.values,
            "another file than --grad",
        )
    inputs = {
        "--student": args.student,
        "--teacher": args.teacher,
        "--teacher-values": args.teacher_values,
        "--teacher-indices": args.teacher_indices,
        "--labels": args.labels,
        "--mask": args.mask,
    }
    opened = {}
    try:
        for flag, value in inputs.items():
            if value is not None:
                opened[flag] = _open(flag, value)
        for flag in ("--student", "--teacher", "--teacher-values"):
            if flag in opened and opened[flag].dtype.kind != "f":
                raise _usage_error(
                    f"{flag} {inputs[flag]}: logits must be floating point, got {opened[flag].stored_dtype}"
                )
        if "--teacher" in opened and opened["--teacher"].shape != opened["--student"].shape:
            raise _usage_error(
                f"--student and --teacher must have the same shape, got {opened['--student'].shape} "
                f"and {opened['--teacher'].shape}"
            )
        for flag, value in outputs:
            for input_flag, array in opened.items():
                if Path(value).exists() and Path(value).samefile(array.path):
                    raise _usage_error(f"{flag} {value} would overwrite {input_flag}")
        try:
            teacher = (
                (opened["--teacher-values"], opened["--teacher-indices"])
                if kind.top_k
                else opened.get("--teacher")
            )
            args.plan = prepare(
                kind.loss,
                opened["--student"],
                teacher,
                opened.get("--labels"),
                mask=opened.get("--mask"),
                ignore_index=args.ignore_index,
                reduction=args.reduction,
                grad_out=args.grad,
                chunk_rows=args.chunk_rows,
                dtype="float64" if args.float64 else None,
                **parameters,
            )
        except (TypeError, ValueError) as error:
            message = str(error)
            flag = _FLAGS.get(message.split(" ", 1)[0])
            starts = {
                "labels": "--labels",
                "mask": "--mask",
                "teacher_values": "--teacher-values",
                "teacher_indices": "--teacher-indices",
            }
            flag = flag or next((f for word, f in starts.items() if message.startswith(word)), None)
            raise _usage_error(f"{flag}: {message}" if flag else message) from None
    except BaseException:
        for array in opened.values():
            array.close()
        raise


class _PlainProgress:
    """A one-line progress display for when tqdm is not installed (``\\r`` rewrites it in place)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.shown = total, label, -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent != self.shown:
            self.shown = percent
            print(f"\r{self.label}: {done}/{total} rows ({percent}%)", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown >= 0:
            print(file=sys.stderr)  # ends the line the \r updates wrote
            self.shown = -1


class _TqdmProgress:
    def __init__(self, total: int, label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="row", file=sys.stderr, leave=False)

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _progress(args: argparse.Namespace, total: int):
    """A progress display on stderr — tqdm's bar if installed, else one line — or None (quiet, not a TTY)."""
    if args.quiet or not sys.stderr.isatty():
        return None
    label = f"kdcore loss {args.kind}"
    try:
        return _TqdmProgress(total, label)
    except ImportError:
        return _PlainProgress(total, label)


def _describe(args: argparse.Namespace, result) -> dict:
    from ._chunks import get_num_threads

    inputs = {
        "student": args.student,
        "teacher": args.teacher,
        "teacher_values": args.teacher_values,
        "teacher_indices": args.teacher_indices,
        "labels": args.labels,
        "mask": args.mask,
    }
    return {
        "schema": "kdcore-loss",
        "kind": args.kind,
        "loss": result.loss,
        "parameters": _effective(KINDS[args.kind], result.parameters),
        "inputs": {name: value for name, value in inputs.items() if value is not None},
        "shape": list(result.shape),
        "dtype": result.dtype.name,
        "reduction": result.reduction,
        "positions": result.positions,
        "kept": result.kept,
        "ignore_index": args.ignore_index if args.labels is not None else None,
        "chunk_rows": result.chunk_rows,
        "chunks": result.chunks,
        "threads": args.threads if args.threads is not None else get_num_threads(),
        # JSON has no NaN or infinity: those are given as strings, as repr() writes them.
        "value": result.value if result.value is None or math.isfinite(result.value) else repr(result.value),
        "values": args.values,
        "grad": None if result.grad_path is None else str(result.grad_path),
    }


def _format(record: dict) -> str:
    parameters = ", ".join(f"{name}={value!r}" for name, value in record["parameters"].items())
    inputs = ", ".join(f"{name} {path}" for name, path in record["inputs"].items())
    dropped = record["positions"] - record["kept"]
    why = (
        []
        if not dropped
        else [
            reason
            for reason, given in (
                (f"labels == {record['ignore_index']}", record["ignore_index"] is not None),
                ("mask", "mask" in record["inputs"]),
            )
            if given
        ]
    )
    lines = [
        f"loss        {record['loss']}({parameters})",
        f"inputs      {inputs}",
        f"shape       {tuple(record['shape'])}, computed in {record['dtype']}, "
        f"{record['chunks']} chunk{'s' if record['chunks'] != 1 else ''} of {record['chunk_rows']} rows",
        f"positions   {record['kept']} kept of {record['positions']}"
        + (f" ({dropped} dropped: {' or '.join(why)})" if dropped else ""),
    ]
    if record["value"] is not None:
        over = "kept positions" if record["reduction"] == "mean" else "kept positions, summed"
        lines.append(f"reduction   {record['reduction']} over {over}")
        lines.append(
            f"value       {record['value']!r}"
            if not isinstance(record["value"], str)
            else f"value       {record['value']}"
        )
    else:
        lines.append(f"values      {record['values']} (one per position, 0.0 where dropped)")
    if record["grad"] is not None:
        lines.append(
            f"gradient    {record['grad']} (w.r.t. the student logits, reduction {record['reduction']})"
        )
    return "\n".join(lines)


class _Stopped(BaseException):
    """Raised in the main thread by a SIGTERM, SIGINT or SIGHUP during the computation.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it: it
    unwinds through the ``with`` blocks of :class:`~kdcore.arrays_on_disk.NpyRowWriter`, which remove their
    temporary files, up to :func:`_run`, which reports it on one line.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM, SIGINT and SIGHUP into :class:`_Stopped` inside the block, then restore the handlers.

    Without it SIGTERM (``kill``, a job scheduler's time limit) ends the process at once and leaves the
    gradient's half-written temporary file behind. After the first signal, further ones are ignored until
    the block is left, so that a second Ctrl-C cannot interrupt the clean-up the first one started.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    stopping = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    # A signal the process was started ignoring stays ignored: ``nohup kdcore loss …`` must survive the
    # terminal's SIGHUP, and a shell's background job its SIGINT.
    stopping = [number for number in stopping if signal.getsignal(number) is not signal.SIG_IGN]

    def stop(signum: int, frame: object) -> None:
        for number in stopping:
            signal.signal(number, signal.SIG_IGN)
        raise _Stopped(signum)

    previous = {number: signal.signal(number, stop) for number in stopping}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run(args: argparse.Namespace) -> int:
    from ._chunks import num_threads
    from .arrays_on_disk import NpyRowWriter

    plan = args.plan
    progress = _progress(args, plan.positions)

    def report(message: str) -> None:  # one line on stderr, after the progress line is closed
        if progress is not None:
            progress.close()
        print(f"kdcore loss: {message}", file=sys.stderr)

    written: list[str] = []  # the outputs complete under their names, for the message if stopped

    def unwritten() -> str:
        return "nothing was written" if not written else f"only {written[0]} was written"

    try:
        threads = contextlib.nullcontext() if args.threads is None else num_threads(args.threads)
        with _stop_on_signals(), plan, threads:
            result = plan.run(progress)
            if args.grad is not None:
                written.append(args.grad)
            if args.values is not None:
                with NpyRowWriter(args.values, result.values.shape, result.values.dtype) as out:
                    out.write(result.values.reshape(-1))
    except _Stopped as stopped:
        report(f"stopped by {stopped.name}: {unwritten()}")
        return 128 + stopped.signum  # the status a shell gives a process the signal ended
    except KeyboardInterrupt:  # Ctrl-C outside the block above (or with handlers not settable)
        report(f"interrupted: {unwritten()}")
        return 130
    except (OSError, ValueError) as error:  # found in the data itself, e.g. a compressed member cut short
        report(str(error))
        return 2
    if progress is not None:
        progress.close()
    record = _describe(args, result)
    print(json.dumps(record) if args.json else _format(record))
    return 0
