"""Students trained on labels alone and distilled from the saved teacher, over a grid of T, α and seeds.

The paper's students (Hinton et al. 2015, §3) are ReLU nets without any regularisation: 784-800-800-10
(146 test errors alone, 74 distilled at T = 20 on MNIST) and 784-30-30-10 (for which T between 2.5 and 4
worked best). This script trains, for every hidden-layer shape given, a labels-only baseline per seed and a
distilled student per (T, α, seed), with the objective ``α·CE + (1 − α)·T²·soft`` of
``kdcore.distillation_loss``. It also runs the capacity sweep (several ``--hidden`` shapes) and, with
``--teacher teacher_epoch5.npz``, distillation from a weaker teacher (``--teacher a.npz+b.npz``: from the
ensemble of two, its logits averaged).

The teacher's logits are computed once, in evaluation mode on the clean (un-jittered) training images: the
teacher is fixed, so its targets are a constant of the data set. Each finished run is appended to
``students.jsonl``; a re-run skips what is already there.

Example::

    .venv/bin/python benchmarks/experiments/students.py --hidden 30,30 --T 1,2,4,8,20 --alpha 0.1,0.5,0.9 \\
        --seeds 0,1,2 --epochs 20
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Results: <results>/students.jsonl. See docs/results.md.",
    )
    protocol.add_common_arguments(parser)
    parser.add_argument(
        "--hidden",
        action="append",
        default=None,
        help="hidden widths of one student shape, e.g. 30,30; repeat for several shapes (default 30,30)",
    )
    parser.add_argument(
        "--T", default="1,2,4,8,20", help="temperatures, comma-separated (default 1,2,4,8,20)"
    )
    parser.add_argument("--alpha", default="0.1,0.5", help="weights of the hard-label term (default 0.1,0.5)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds (initialisation and shuffling)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (default 20)")
    parser.add_argument(
        "--lr", type=float, default=0.05, help="initial learning rate, cosine to 0 (default 0.05)"
    )
    parser.add_argument(
        "--teacher", default="teacher.npz", help="teacher checkpoint in the results directory"
    )
    parser.add_argument(
        "--only", choices=("both", "labels", "distilled"), default="both", help="which students to train"
    )
    parser.add_argument("--log-name", default="students.jsonl", help="result file in the results directory")
    args = parser.parse_args(argv)

    out = protocol.results_dir(args)
    log = protocol.ResultLog(out / args.log_name)
    shapes = [tuple(protocol.parse_ints(h)) for h in (args.hidden or ["30,30"])]
    temperatures, alphas = protocol.parse_floats(args.T), protocol.parse_floats(args.alpha)
    seeds = protocol.parse_ints(args.seeds)
    x_train, y_train, x_test, y_test = protocol.load_data(args)

    teacher_logits = teacher_test_errors = None
    if args.only != "labels":
        # "a.npz+b.npz" is an ensemble: the mean of the members' logits, i.e. the normalised geometric mean
        # of their tempered distributions at every T (the paper's §2 combines ensembles by averaging).
        members = [
            protocol.load_teacher(protocol.checkpoints_dir(args) / name) for name in args.teacher.split("+")
        ]
        with protocol.blas_threads(args.threads):
            teacher_logits = sum(protocol.logits_of(m, x_train) for m in members) / len(members)
            test_logits = sum(protocol.logits_of(m, x_test) for m in members) / len(members)
        teacher_test_errors = int(np.sum(np.argmax(test_logits, axis=1) != y_test))
        train_errors = int(np.sum(np.argmax(teacher_logits, axis=1) != y_train))
        protocol.log(
            f"teacher {args.teacher}: {teacher_test_errors} test errors, {train_errors} training errors"
        )

    # Seeds outermost: if the sweep is cut short, every configuration has at least its first seeds.
    runs = []
    for seed, hidden in itertools.product(seeds, shapes):
        if args.only != "distilled":
            runs.append((seed, hidden, None, None))
        if args.only != "labels":
            runs += [(seed, hidden, T, alpha) for alpha in alphas for T in temperatures]

    for seed, hidden, T, alpha in runs:
        distilled = T is not None
        key = {
            "experiment": "students",
            "sizes": [x_train.shape[1], *hidden, 10],
            "distilled": distilled,
            "T": T,
            "alpha": alpha,
            "seed": seed,
            "epochs": args.epochs,
            "lr": args.lr,
            "teacher": args.teacher if distilled else None,
            "n_train": len(x_train),
        }
        if log.has(**key):
            continue
        what = f"T={T:g} α={alpha:g}" if distilled else "labels only"
        name = f"{'-'.join(map(str, key['sizes']))} {what} seed {seed}"
        extra = {"teacher_test_errors": teacher_test_errors if distilled else None}
        try:
            with protocol.blas_threads(args.threads):
                _, record = protocol.train_student(
                    hidden,
                    x_train,
                    y_train,
                    teacher_logits if distilled else None,
                    T=T if distilled else 1.0,
                    alpha=alpha if distilled else 1.0,
                    epochs=args.epochs,
                    lr=args.lr,
                    seed=seed,
                    x_test=x_test,
                    labels_test=y_test,
                )
        except FloatingPointError as error:
            # fit() stops when the loss becomes NaN or infinite. A diverged run is a result too (the
            # learning rate that suits the labels does not suit every objective): record it and go on.
            log.append({**key, **extra, "diverged": True, "error": str(error), "test_errors": None})
            protocol.log(f"{name}: diverged ({error})")
            continue
        log.append({**key, **record, **extra, "threads": args.threads, "dataset": args.dataset})
        protocol.log(
            f"{name}: {record['test_errors']} test errors "
            f"(train acc {record['train_accuracy_last_epoch']:.4f}), {record['seconds']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
