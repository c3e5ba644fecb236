"""The ``kdcore`` command (also ``python -m kdcore``).

Each sub-command is a thin layer over a library function, imported only when that command runs, so
``kdcore --help`` needs nothing but NumPy:

=========================  ==========================================================================
``kdcore demo``            distil a teacher into a student on scikit-learn's digits (< 1 min, offline)
``kdcore distill``         the same experiment at any size, every knob exposed, resumable
``kdcore data download``   fetch MNIST / Fashion-MNIST with SHA-256 verification
``kdcore figures``         the temperature-effect figures
``kdcore sweep``           distilled-student accuracy over T and alpha, saved as JSON for the figures
``kdcore check``           verify another framework's distillation loss and say what is wrong
``kdcore vectors``         write the golden test vectors (JSON) for implementations in any language
``kdcore loss``            the exact value (and gradient) of a loss of logits on disk, in bounded memory
=========================  ==========================================================================

Exit status: 0 on success; 1 when the work failed (a download, or ``check``'s findings); 2 for a bad
argument — a value out of range (``--T 0``, ``--alpha 1.5``), an unknown data set, a missing or corrupt
file — reported as one line on stderr that names the option and its value, before any data is loaded or any
model trained; 130 on Ctrl-C (the last completed epoch's checkpoint is kept); 141 when the reader of
stdout closes the pipe (``kdcore check … | head``), silently, as Unix tools do.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ._arrays import check_alpha, check_choice, check_temperature
from ._version import __version__

__all__ = ["main"]


# --- Argument validation. Every command's arguments are checked before it does any work (loads data, trains,
# writes): a bad one is reported as ONE line on stderr, naming the option and its value, with exit status 2
# (the usage-error status of argparse and of most Unix tools), and no traceback.


class _UsageError(Exception):
    """A bad command-line argument; ``main`` prints it as one line and exits with status 2."""


def _require(ok: bool, flag: str, value: object, requirement: str) -> None:
    if not ok:
        raise _UsageError(f"{flag} must be {requirement}, got {flag} {value!r}")


def _check_with(check: Callable[[object], object], flag: str, value: object, requirement: str) -> None:
    # Reuse the library's validator (the rule lives in one place), but name the command-line flag.
    try:
        check(value)
    except (TypeError, ValueError):
        _require(False, flag, value, requirement)


def _check_temperature(flag: str, value: float) -> None:
    _check_with(check_temperature, flag, value, "a positive finite number")


def _check_alpha(flag: str, value: float) -> None:
    _check_with(check_alpha, flag, value, "in [0, 1]")


def _check_count(flag: str, value: int, minimum: int = 1) -> None:
    _require(value >= minimum, flag, value, f"an integer ≥ {minimum}")


def _check_rate(flag: str, value: float) -> None:
    _require(math.isfinite(value) and value > 0, flag, value, "a positive finite number")


def _check_dropout(flag: str, value: float) -> None:
    _require(0.0 <= value < 1.0, flag, value, "a probability in [0, 1)")


def _check_seeds(flag: str, seeds: Sequence[int]) -> None:
    for seed in seeds:
        _require(seed >= 0, flag, seed, "non-negative integers")
    _require(len(set(seeds)) == len(seeds), flag, list(seeds), "distinct seeds")


def _check_dataset(value: str) -> None:
    from .data import DATASETS

    _check_with(
        lambda v: check_choice(v, "dataset", DATASETS), "--dataset", value, f"one of {', '.join(DATASETS)}"
    )


def _check_data_present(dataset: str, data_dir: str | None) -> None:
    """The data set's files exist (IDX data sets) or its loader is installed (digits), before any training."""
    from .data.locate import IDX_DATASETS, _locate_split

    if data_dir is not None:
        _require(Path(data_dir).is_dir(), "--data-dir", data_dir, "an existing directory")
    if dataset in IDX_DATASETS:
        for split in ("train", "test"):
            try:
                _locate_split(dataset, split, data_dir)
            except FileNotFoundError as error:
                # kdcore.data's message spans several lines (which files, where searched): keep it on one.
                raise _UsageError(" ".join(line.strip() for line in str(error).splitlines())) from None
    elif dataset == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise _UsageError("--dataset digits needs scikit-learn: pip install 'kdcore[data]'") from None


def _check_output_dir(flag: str, value: str) -> None:
    path = Path(value)
    _require(not path.exists() or path.is_dir(), flag, value, "a directory (it is an existing file)")


def _check_output_file(flag: str, value: str) -> None:
    path = Path(value)
    _require(not path.is_dir(), flag, value, "a file path (it is a directory)")
    _require(path.parent.is_dir(), flag, value, f"in an existing directory ({path.parent} does not exist)")


def _check_input_file(flag: str, value: str) -> None:
    path = Path(value)
    _require(path.exists(), flag, value, "an existing file (there is none)")
    _require(path.is_file(), flag, value, "a regular file")


def _check_checkpoint_file(flag: str, value: str) -> None:
    from . import checkpoint

    _check_input_file(flag, value)
    try:
        checkpoint.load(value)
    except ValueError as error:  # corrupt, truncated, not a kdcore checkpoint: the message says which
        raise _UsageError(f"{flag} {value!r}: {error}") from None


def _check_resumable(out: str) -> None:
    """Checkpoints left in ``out/checkpoints`` by an earlier run are read when it resumes: check them now."""
    for path in sorted((Path(out) / "checkpoints").glob("*.npz")):
        _check_checkpoint_file("--out", str(path))


def _validate_demo(args: argparse.Namespace) -> None:
    if args.seeds is not None:
        _check_count("--seeds", args.seeds)
    _check_output_dir("--out", args.out)
    _check_data_present("digits", None)
    _check_resumable(args.out)


def _validate_distill(args: argparse.Namespace) -> None:
    _check_dataset(args.dataset)
    for flag, widths in (
        ("--teacher-hidden", args.teacher_hidden),
        ("--student-hidden", args.student_hidden),
    ):
        for width in widths:
            _check_count(flag, width)
    _check_dropout("--teacher-dropout", args.teacher_dropout)
    _check_dropout("--teacher-input-dropout", args.teacher_input_dropout)
    if args.teacher_max_norm is not None:
        _check_rate("--teacher-max-norm", args.teacher_max_norm)
    _check_count("--teacher-epochs", args.teacher_epochs)
    _check_count("--student-epochs", args.student_epochs)
    _check_temperature("--T", args.T)
    _check_alpha("--alpha", args.alpha)
    _check_count("--batch-size", args.batch_size)
    _check_rate("--teacher-lr", args.teacher_lr)
    _check_rate("--student-lr", args.student_lr)
    _check_seeds("--seeds", args.seeds)
    if args.omit_class is not None:
        _require(0 <= args.omit_class < 10, "--omit-class", args.omit_class, "a class index in [0, 10)")
    _check_temperature("--omit-T", args.omit_T)
    _check_output_dir("--out", args.out)
    _check_data_present(args.dataset, args.data_dir)
    _check_resumable(args.out)


def _validate_download(args: argparse.Namespace) -> None:
    if args.dest is not None:
        _check_output_dir("--dest", args.dest)


def _validate_figures(args: argparse.Namespace) -> None:
    _check_output_dir("--out", args.out)
    if args.checkpoint is not None:
        _check_checkpoint_file("--checkpoint", args.checkpoint)
    if args.sweep is not None:
        from .sweep_file import load_sweep

        _check_input_file("--sweep", args.sweep)
        try:
            load_sweep(args.sweep)
        except ValueError as error:
            raise _UsageError(f"--sweep {args.sweep!r}: {error}") from None


def _validate_sweep(args: argparse.Namespace) -> None:
    _check_output_file("--out", args.out)
    _check_dataset(args.dataset)
    _require(len(args.temperatures) > 0, "--temperatures", args.temperatures, "at least one temperature")
    for T in args.temperatures:
        _check_temperature("--temperatures", T)
    _require(len(args.alphas) > 0, "--alphas", args.alphas, "at least one value")
    for alpha in args.alphas:
        _check_alpha("--alphas", alpha)
    _require(len(args.seeds) > 0, "--seeds", args.seeds, "at least one seed")
    _check_seeds("--seeds", args.seeds)
    _require(1 <= args.folds <= 20, "--folds", args.folds, "an integer from 1 to 20")
    _check_data_present(args.dataset, None)


def _validate_vectors(args: argparse.Namespace) -> None:
    _check_output_file("--out", args.out)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors (unknown option, unparsable number, bad choice) on one line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _demo(args: argparse.Namespace) -> int:
    from .experiment import DEMO, format_table, run

    config = DEMO if args.seeds is None else replace(DEMO, seeds=tuple(range(args.seeds)))
    print(f"kdcore {__version__} demo: distilling a teacher into a small student on scikit-learn's digits")
    results = run(config, args.out, progress=not args.quiet)
    print()
    print(format_table(results))
    print(f"\nwrote {Path(args.out) / 'results.json'}, learning_curves.png, confusion.png and checkpoints/")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from .experiment import ExperimentConfig, format_table, run

    config = ExperimentConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        teacher_hidden=tuple(args.teacher_hidden),
        teacher_dropout=args.teacher_dropout,
        teacher_input_dropout=args.teacher_input_dropout,
        teacher_max_norm=args.teacher_max_norm,
        teacher_epochs=args.teacher_epochs,
        student_hidden=tuple(args.student_hidden),
        student_epochs=args.student_epochs,
        T=args.T,
        alpha=args.alpha,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        teacher_lr=args.teacher_lr,
        student_lr=args.student_lr,
        seeds=tuple(args.seeds),
        omit_class=args.omit_class,
        omit_T=args.omit_T,
        omit_student_hidden=None,
    )
    results = run(config, args.out, progress=not args.quiet)
    print()
    print(format_table(results))
    print(
        f"\nwrote {Path(args.out) / 'results.json'} (rerun the same command to resume from its checkpoints)"
    )
    return 0


def _download(args: argparse.Namespace) -> int:
    from .data import download

    try:
        path = download(args.name, args.dest, progress=not args.quiet)
    except (OSError, ValueError) as error:
        print(f"kdcore data download: {error}", file=sys.stderr)
        return 1
    print(f"{args.name} is in {path}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from .figures import write_all

    paths = write_all(args.out, fmt=args.format, checkpoint=args.checkpoint, sweep_json=args.sweep)
    for path in paths:
        print(path)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .figures import run_sweep, save_sweep

    result = run_sweep(
        dataset=args.dataset,
        temperatures=tuple(args.temperatures),
        alphas=tuple(args.alphas),
        seeds=tuple(args.seeds),
        folds=args.folds,
    )
    save_sweep(result, args.out)
    print(f"wrote {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .verify import run_check
    from .verify.command import UsageError, parse_assignments

    try:
        options = {
            "args": parse_assignments(args.arg, "--arg"),
            "init": parse_assignments(args.init, "--init"),
            "roles": {role: str(name) for role, name in parse_assignments(args.bind, "--bind").items()},
        }
    except UsageError as error:
        print(f"kdcore check: error: {error}", file=sys.stderr)
        return 2
    return run_check(
        args.target,
        framework=args.framework,
        kind=args.kind,
        as_json=args.json,
        t2_scaling=False if args.no_t2 else (True if args.t2 else None),
        alpha_on=args.alpha_on,
        T=args.T,
        alpha=args.alpha,
        beta=args.beta,
        skew=args.skew,
        weight_on=args.beta_on,
        topk_convention=args.topk_convention,
        **options,
    )


_CHECK_HELP = """\
how the loss is called:
  TARGET is MODULE:NAME or path/to/file.py:NAME. NAME may be a function, a functools.partial, a class
  (constructed with --init; a torch nn.Module's forward is called), an instance, or Class.forward.
  Arguments are passed by NAME, whatever their order:
    student logits   student_logits, logits, y_s, outputs, input, student, s, z, ...
    teacher logits   teacher_logits, y_t, teacher, t, v, ...
    top-k teacher    teacher_values, topk_logprobs, target_values, ...; teacher_indices, topk_ids, ...
    labels           labels, target, targets, y, y_true        (distillation, dkd; token kinds: -100 = pad)
    mask             mask, loss_mask, attention_mask, ...      (token kinds: True = position counts)
    β, skew          beta; skew, skew_alpha (or lam, alpha for the skew kinds)
    temperature      T, temperature, tau, temp
    weight α         alpha, lambda_, lam                       (--kind distillation)
  A role no parameter is named after takes the next required positional parameter, in that order.
  Two parameters claiming one role is an error (exit 2): say which with --bind ROLE=PARAM.
  Other parameters: --arg NAME=VALUE. A temperature or α in the constructor is varied over the battery
  (one instance per value) unless you fix it with --init; fixed, the battery runs at that value only.

reference:
  soft          T²·KL(teacher ‖ student) (or soft cross-entropy), mean over samples; --no-t2 drops T²
  distillation  α·CE(labels, student) + (1 − α)·T²·soft; --alpha-on soft puts α on the soft term
  reverse-kl    KL(student ‖ teacher)                     \
  jsd           β·KL(q ‖ M) + (1 − β)·KL(p ‖ M), M = β·q + (1 − β)·p   | token level: (B, V) or (B, S, V)
  skew-kl       KL(q ‖ α·q + (1 − α)·p)                   | logits, labels (-100 = padding) or mask
  skew-reverse-kl  KL(p ‖ α·p + (1 − α)·q)                 | (True = kept); mean over kept tokens;
  dkd           α·TCKD + β·NCKD (labels: target classes)  / T² or not, β on teacher or student: reported
  topk          kdcore.topk_kl_divergence: the teacher as (values, indices) of its top k (log-probabilities;
                teacher_values / topk_logprobs, teacher_indices / topk_ids); renormalized, dense_student or
                tail, forward or reverse: reported (--topk-convention: the one the loss claims)

examples:
  kdcore check losses.py:kd_loss --framework torch
      def kd_loss(student_logits, teacher_logits, labels, alpha=0.1, T=10): ...  (with --kind distillation)
  kdcore check my_pkg.losses:DistillKL --framework torch --kind soft
      class DistillKL(nn.Module): def __init__(self, T): ...; def forward(self, y_s, y_t): ...
  kdcore check my_pkg.losses:KDLoss --init T=4 alpha=0.9 --kind distillation --alpha-on soft
  kdcore check trl.experimental.gkd:GKDTrainer.generalized_jsd_loss --framework torch --kind jsd

exit status: 0 the loss is right, 1 findings (what is wrong and why), 2 usage error (nothing was judged)
"""


def _vectors(args: argparse.Namespace) -> int:
    from .vectors import write_vectors

    write_vectors(args.out)
    print(f"wrote {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kdcore", description="Knowledge-distillation math, exact and checked.")
    parser.add_argument("--version", action="version", version=f"kdcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="distil a teacher into a student on digits (offline, < 1 min)")
    demo.add_argument("--out", default="kdcore-out", help="output folder (default: %(default)s)")
    demo.add_argument("--seeds", type=int, default=None, help="number of student seeds (default: 10)")
    demo.add_argument("--quiet", action="store_true", help="print only the final table")
    demo.set_defaults(run=_demo, validate=_validate_demo)

    distill = commands.add_parser("distill", help="a full-size distillation experiment, resumable")
    distill.add_argument(
        "--dataset", default="fashion-mnist", help="digits, mnist, fashion-mnist or synthetic"
    )
    distill.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    distill.add_argument("--teacher-hidden", type=int, nargs="+", default=[1200, 1200])
    distill.add_argument("--teacher-dropout", type=float, default=0.5, help="hidden-layer dropout")
    distill.add_argument(
        "--teacher-input-dropout", type=float, default=0.0, help="input dropout (Hinton et al. 2012: 0.2)"
    )
    distill.add_argument(
        "--teacher-max-norm",
        type=float,
        default=None,
        help="max-norm bound on each teacher unit's incoming weights (default: none; e.g. 3.5)",
    )
    distill.add_argument("--teacher-epochs", type=int, default=20)
    distill.add_argument("--student-hidden", type=int, nargs="+", default=[800, 800])
    distill.add_argument("--student-epochs", type=int, default=20)
    distill.add_argument("--T", type=float, default=4.0, help="temperature (default: %(default)s)")
    distill.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label loss")
    distill.add_argument("--batch-size", type=int, default=128)
    distill.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    distill.add_argument("--teacher-lr", type=float, default=1e-3)
    distill.add_argument("--student-lr", type=float, default=1e-3)
    distill.add_argument("--seeds", type=int, nargs="+", default=[0])
    distill.add_argument("--omit-class", type=int, default=None, help="Hinton's omitted-class experiment")
    distill.add_argument("--omit-T", type=float, default=8.0, help="temperature of the omitted-class student")
    distill.add_argument("--out", default="kdcore-distill", help="output and checkpoint folder")
    distill.add_argument("--quiet", action="store_true")
    distill.set_defaults(run=_distill, validate=_validate_distill)

    data = commands.add_parser("data", help="data set files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    download = data_commands.add_parser("download", help="download MNIST or Fashion-MNIST, SHA-256 verified")
    download.add_argument("name", choices=["mnist", "fashion-mnist"])
    download.add_argument("--dest", default=None, help="target folder (default: ~/.cache/kdcore/NAME)")
    download.add_argument("--quiet", action="store_true")
    download.set_defaults(run=_download, validate=_validate_download)

    figures = commands.add_parser("figures", help="write the temperature-effect figures")
    figures.add_argument("--out", required=True, help="output folder")
    figures.add_argument("--format", choices=["png", "svg", "pdf"], default="png")
    figures.add_argument(
        "--checkpoint", default=None, help="a teacher checkpoint (.npz) for the data figures"
    )
    figures.add_argument("--sweep", default=None, help="a sweep JSON written by 'kdcore sweep'")
    figures.set_defaults(run=_figures, validate=_validate_figures)

    sweep = commands.add_parser("sweep", help="student accuracy over T and alpha, saved as JSON")
    sweep.add_argument("--out", required=True, help="the JSON file to write")
    sweep.add_argument("--dataset", default="digits")
    sweep.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    sweep.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sweep.add_argument(
        "--folds",
        type=int,
        default=1,
        help="1: evaluate on the test split; K >= 2: K-fold cross-validation on every image (default: %(default)s)",
    )
    sweep.set_defaults(run=_sweep, validate=_validate_sweep)

    check = commands.add_parser(
        "check",
        help="verify a distillation loss written in another framework",
        description="Run a distillation loss on kdcore's battery of inputs, compare its value and gradient "
        "with kdcore's, and name what is wrong.",
        epilog=_CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("target", help="MODULE:NAME or path/to/file.py:NAME (function, class, instance, ...)")
    check.add_argument("--framework", choices=["torch", "jax", "tensorflow", "numpy"], default="torch")
    check.add_argument(
        "--kind",
        choices=["soft", "distillation", "reverse-kl", "jsd", "skew-kl", "skew-reverse-kl", "dkd", "topk"],
        default="soft",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--arg", nargs="+", action="extend", metavar="NAME=VALUE", help="a value for another parameter"
    )
    check.add_argument(
        "--init", nargs="+", action="extend", metavar="NAME=VALUE", help="constructor argument of a class"
    )
    check.add_argument(
        "--bind", nargs="+", action="extend", metavar="ROLE=PARAM", help="e.g. T=w: parameter w is T"
    )
    t2 = check.add_mutually_exclusive_group()
    t2.add_argument("--no-t2", action="store_true", help="expect no T² on the soft term")
    t2.add_argument("--t2", action="store_true", help="expect T² (newer kinds: default either)")
    check.add_argument(
        "--alpha-on",
        choices=["hard", "soft"],
        default="hard",
        help="the term α weighs (default: %(default)s, as kdcore.distillation_loss)",
    )
    check.add_argument("--T", type=float, default=None, help="the temperature, if built into the loss")
    check.add_argument("--alpha", type=float, default=None, help="α, if built into the loss")
    check.add_argument("--beta", type=float, default=None, help="β (jsd, dkd), if built into the loss")
    check.add_argument("--skew", type=float, default=None, help="the skew α, if built into the loss")
    check.add_argument(
        "--beta-on",
        choices=["teacher", "student"],
        default=None,
        help="jsd: the distribution β weighs (default: either, reported)",
    )
    check.add_argument(
        "--topk-convention",
        choices=["renormalized", "dense_student", "tail"],
        default=None,
        help="topk: the convention the loss claims (default: any, reported)",
    )
    check.set_defaults(run=_check)

    vectors = commands.add_parser("vectors", help="write the golden test vectors as JSON")
    vectors.add_argument("--out", required=True, help="the JSON file to write")
    vectors.set_defaults(run=_vectors, validate=_validate_vectors)

    from ._loss_command import add_parser as add_loss_parser  # kdcore/_loss_command.py holds the command

    add_loss_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kdcore`` command line; returns the exit status (0 ok, 1 findings or failure, 2 usage).

    Examples
    --------
    >>> main(["--version"])
    Traceback (most recent call last):
    SystemExit: 0
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, so that a closed pipe is caught below
    except BrokenPipeError:
        # The reader closed the pipe (``kdcore check … | head``): stop quietly, as Unix tools do, and point
        # stdout at /dev/null so that the interpreter's final flush cannot raise a second time.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, the status a shell reports for a process killed by a closed pipe


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    validate = getattr(args, "validate", None)
    if validate is not None:
        try:
            validate(args)
        except _UsageError as error:
            command = " ".join(
                part for part in ("kdcore", args.command, getattr(args, "data_command", None)) if part
            )
            print(f"{command}: {error}", file=sys.stderr)
            return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the last completed epoch's checkpoint is kept; rerun to resume", file=sys.stderr
        )
        return 130
