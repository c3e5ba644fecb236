"""Train the paper's teacher once: 784-1200-1200-10 ReLU, dropout, ±2-pixel jitter; save it for the students.

Hinton et al. (2015, §3): "a single large neural net with two hidden layers of 1200 rectified linear hidden
units on all 60,000 training cases. The net was strongly regularized using dropout and weight-constraints
[…] and the input images were jittered by up to two pixels in any direction." The regularisation of
Hinton et al. (2012) is available as options: ``--input-dropout 0.2 --dropout 0.5 --max-norm C`` (each hidden
and output unit's incoming weight vector is projected back to norm ≤ C after every step).

Every epoch sees a freshly jittered copy of the training set. The model is saved with
``kdcore.checkpoint.save`` after every epoch (``teacher_last.npz``, resumable) and kept at the epochs of
``--keep`` (``teacher_epoch<k>.npz``), so the students can also be distilled from less-trained, weaker
teachers. The final model is ``teacher.npz``.

Example (about 10–15 minutes on 2 shared cores)::

    .venv/bin/python benchmarks/experiments/teacher.py --epochs 30 --keep 2,5,10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

import numpy as np
import protocol

from kdcore import checkpoint
from kdcore.mlp import MLP
from kdcore.optim import SGD, CosineLR
from kdcore.train import fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See docs/results.md.")
    protocol.add_common_arguments(parser)
    parser.add_argument("--hidden", default="1200,1200", help="hidden layer widths (default 1200,1200)")
    parser.add_argument(
        "--dropout", type=float, default=0.3, help="dropout on the hidden layers (default 0.3)"
    )
    parser.add_argument(
        "--input-dropout",
        type=float,
        default=0.0,
        help="dropout on the input pixels (default 0; the paper's 0.2)",
    )
    parser.add_argument(
        "--max-norm",
        type=float,
        default=None,
        help="max-norm bound on each unit's incoming weights (default: none; Srivastava et al. use 3–4)",
    )
    parser.add_argument(
        "--jitter", type=int, default=2, help="maximum shift in pixels (default 2, the paper's)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument(
        "--lr", type=float, default=0.05, help="initial learning rate, cosine to 0 (default 0.05)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="initialisation, dropout, jitter and shuffling seed"
    )
    parser.add_argument(
        "--keep", default="2,5,10", help="also keep the teacher after these epochs (weaker teachers)"
    )
    parser.add_argument("--name", default="teacher", help="file stem of the checkpoints (default teacher)")
    parser.add_argument("--restart", action="store_true", help="ignore an existing <name>_last.npz")
    parser.add_argument(
        "--reschedule",
        action="store_true",
        help="resume a run with another --epochs: the cosine schedule continues from the current epoch "
        "towards the new total (for time-boxing a run on a busy machine; recorded in the results)",
    )
    args = parser.parse_args(argv)

    out = protocol.checkpoints_dir(args)
    results = protocol.results_dir(args)
    keep = set(protocol.parse_ints(args.keep))
    x_train, y_train, x_test, y_test = protocol.load_data(args)
    last = out / f"{args.name}_last.npz"
    log = protocol.ResultLog(results / f"{args.name}.jsonl")

    model = MLP(
        [x_train.shape[1], *protocol.parse_ints(args.hidden), 10],
        dropout=args.dropout,
        input_dropout=args.input_dropout,
        max_norm=args.max_norm,
        seed=args.seed,
    )
    optimizer = SGD(lr=args.lr, momentum=protocol.MOMENTUM)
    schedule = CosineLR(args.lr, total=args.epochs)
    start, curve, reschedules = 0, [], []
    if last.exists() and not args.restart:
        saved = checkpoint.load(last)
        reschedules = saved.config.get("reschedules", [])
        if saved.config.get("hidden") != args.hidden:
            sys.exit(f"{last} was trained with other settings: pass --restart to start over")
        if saved.config.get("epochs") != args.epochs and args.reschedule:
            change = {
                "at_epoch": saved.epoch,
                "from_epochs": saved.config.get("epochs"),
                "to_epochs": args.epochs,
            }
            reschedules = [*reschedules, change]
            protocol.log(f"rescheduling {args.name}: {change}")
        elif saved.config.get("epochs") != args.epochs:
            sys.exit(f"{last} was trained with other settings: pass --restart to start over")
        model, optimizer, start = saved.model, saved.optimizer, saved.epoch
        curve = saved.metadata["history"]["test_accuracy"]
        protocol.log(f"resuming {args.name} after epoch {start}")
    config = {
        k: v for k, v in vars(args).items() if k not in ("results", "data_dir", "checkpoints", "reschedule")
    }
    # Changes of the total number of epochs on resumption: at epoch e the schedule switched from
    # cosine(lr, from_epochs) to cosine(lr, to_epochs) evaluated at e (a step in the learning rate).
    config["reschedules"] = reschedules

    started, cpu_started = time.perf_counter(), time.process_time()
    with protocol.blas_threads(args.threads):
        for epoch in range(start, args.epochs):
            t0 = time.perf_counter()
            # A generator per epoch, keyed by (seed, epoch): a resumed run draws the same jitter.
            rng = np.random.default_rng([args.seed, epoch])
            x_epoch = protocol.jitter(x_train, args.jitter, rng)
            optimizer.lr = schedule.lr_at(epoch)
            # fit() one epoch at a time, because the inputs change every epoch; its shuffle seed changes too.
            history = fit(
                model,
                x_epoch,
                y_train,
                epochs=1,
                batch_size=protocol.BATCH_SIZE,
                optimizer=optimizer,
                seed=args.seed * 100_003 + epoch,
                x_val=x_test,
                labels_val=y_test,
                progress=False,
            )
            curve.append(history.val_accuracy[-1])
            checkpoint.save(
                last,
                model,
                optimizer,
                config,
                epoch=epoch + 1,
                history={"test_accuracy": curve},
                dataset=args.dataset,
            )
            if epoch + 1 in keep:
                shutil.copyfile(last, out / f"{args.name}_epoch{epoch + 1}.npz")
            protocol.log(
                f"{args.name} epoch {epoch + 1}/{args.epochs}: loss {history.loss[-1]:.4f}, "
                f"jittered-train acc {history.train_accuracy[-1]:.4f}, test acc {curve[-1]:.4f}, "
                f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - cpu_started:.0f} s CPU so far"
            )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    shutil.copyfile(last, out / f"{args.name}.npz")

    # Each kept teacher's quality, measured the way the students see it: evaluation mode, clean images.
    for epoch in sorted(keep | {args.epochs}):
        stem = args.name if epoch == args.epochs else f"{args.name}_epoch{epoch}"
        path = out / f"{stem}.npz"
        if epoch > args.epochs or not path.exists() or log.has(checkpoint=path.name):
            continue
        teacher = protocol.load_teacher(path)
        with protocol.blas_threads(args.threads):
            test_err = protocol.test_errors(teacher, x_test, y_test)
            train_err = protocol.test_errors(teacher, x_train, y_train)
        log.append(
            {
                "experiment": "teacher",
                "checkpoint": path.name,
                "epoch": epoch,
                "config": config,
                "test_errors": test_err,
                "test_accuracy": 1 - test_err / len(x_test),
                "train_errors": train_err,
                "train_accuracy": 1 - train_err / len(x_train),
                "test_accuracy_curve": curve[:epoch],
                "seconds_total": seconds if epoch == args.epochs else None,
                "cpu_seconds_total": cpu_seconds if epoch == args.epochs else None,
                "resumed_from_epoch": start or None,
                "environment": protocol.environment(),
            }
        )
        protocol.log(f"{path.name}: {test_err} test errors, {train_err} training errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
