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
=========================  ==========================================================================
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import __version__

__all__ = ["main"]


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

    return run_check(args.target, framework=args.framework, kind=args.kind, as_json=args.json)


def _vectors(args: argparse.Namespace) -> int:
    from .vectors import write_vectors

    write_vectors(args.out)
    print(f"wrote {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdcore", description="Knowledge-distillation math, exact and checked."
    )
    parser.add_argument("--version", action="version", version=f"kdcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="distil a teacher into a student on digits (offline, < 1 min)")
    demo.add_argument("--out", default="kdcore-out", help="output folder (default: %(default)s)")
    demo.add_argument("--seeds", type=int, default=None, help="number of student seeds (default: 10)")
    demo.add_argument("--quiet", action="store_true", help="print only the final table")
    demo.set_defaults(run=_demo)

    distill = commands.add_parser("distill", help="a full-size distillation experiment, resumable")
    distill.add_argument(
        "--dataset", default="fashion-mnist", help="digits, mnist, fashion-mnist or synthetic"
    )
    distill.add_argument("--data-dir", default=None, help="folder holding the IDX files")
    distill.add_argument("--teacher-hidden", type=int, nargs="+", default=[1200, 1200])
    distill.add_argument("--teacher-dropout", type=float, default=0.5)
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
    distill.set_defaults(run=_distill)

    data = commands.add_parser("data", help="data set files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    download = data_commands.add_parser("download", help="download MNIST or Fashion-MNIST, SHA-256 verified")
    download.add_argument("name", choices=["mnist", "fashion-mnist"])
    download.add_argument("--dest", default=None, help="target folder (default: ~/.cache/kdcore/NAME)")
    download.add_argument("--quiet", action="store_true")
    download.set_defaults(run=_download)

    figures = commands.add_parser("figures", help="write the temperature-effect figures")
    figures.add_argument("--out", required=True, help="output folder")
    figures.add_argument("--format", choices=["png", "svg", "pdf"], default="png")
    figures.add_argument(
        "--checkpoint", default=None, help="a teacher checkpoint (.npz) for the data figures"
    )
    figures.add_argument("--sweep", default=None, help="a sweep JSON written by 'kdcore sweep'")
    figures.set_defaults(run=_figures)

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
    sweep.set_defaults(run=_sweep)

    check = commands.add_parser("check", help="verify a distillation loss written in another framework")
    check.add_argument("target", help="MODULE:FUNCTION or path/to/file.py:FUNCTION")
    check.add_argument("--framework", choices=["torch", "jax", "numpy"], default="torch")
    check.add_argument("--kind", choices=["soft", "distillation"], default="soft")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_check)

    vectors = commands.add_parser("vectors", help="write the golden test vectors as JSON")
    vectors.add_argument("--out", required=True, help="the JSON file to write")
    vectors.set_defaults(run=_vectors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kdcore`` command line; returns the exit status (0 ok, 1 findings or failure, 2 usage).

    Examples
    --------
    >>> main(["--version"])
    Traceback (most recent call last):
    SystemExit: 0
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the last completed epoch's checkpoint is kept; rerun to resume", file=sys.stderr
        )
        return 130
