"""How many rows the fast soft-loss kernel certifies on a realistic input: a trained digits teacher against a
student during training.

The teacher and student are ``kdcore demo``'s networks (64-256-256-10 and 64-10-10, Adam, T = 4,
alpha = 0.1, on scikit-learn's digits). After each listed student epoch, the soft loss and its gradient of
the student's logits against the teacher's on the whole training set go through the fast kernel, and the
fraction of rows it certifies (the rest take the careful algorithm) is printed, in float32 (what training
uses) and float64, with the median KL per row.

    .venv/bin/python benchmarks/certified_rows.py                 # ~1 minute
    .venv/bin/python benchmarks/certified_rows.py --epochs 1,5,30 --T 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import numpy as np

import kdcore
from kdcore import data
from kdcore._fast import soft_rows
from kdcore.optim import Adam


def fraction(student_logits: np.ndarray, teacher_logits: np.ndarray, T: float) -> tuple[float, float]:
    flags = np.zeros(student_logits.shape[0], dtype=bool)
    kl, _ = soft_rows(student_logits, teacher_logits, T, value="kl", grad_scale=1 / T, certified_out=flags)
    return float(flags.mean()), float(np.median(kl))


def arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options shared with certified_family.py; ``epochs`` comes back as a sorted list."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", default="1,2,5,10,20,30", help="student epochs after which to measure")
    parser.add_argument("--T", type=float, default=4.0, help="temperature (default 4, the demo's)")
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.epochs = sorted({int(e) for e in args.epochs.split(",")})
    return args


def digits_teacher(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kdcore demo``'s teacher trained on digits (its accuracy printed): the training images, their labels
    and the teacher's logits on them."""
    x, labels = data.load("digits", "train")
    teacher = kdcore.MLP([64, 256, 256, 10], dropout=0.3, seed=args.seed)
    kdcore.fit(teacher, x, labels, epochs=args.teacher_epochs, optimizer=Adam(lr=1e-3), progress=False)
    print(
        f"teacher: {args.teacher_epochs} epochs, train accuracy {np.mean(teacher.predict(x) == labels):.3f}"
    )
    return x, labels, teacher.forward(x)


def student_in_training(
    args: argparse.Namespace, x: np.ndarray, labels: np.ndarray, teacher_logits: np.ndarray
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``kdcore demo``'s student distilled from the teacher; after each of ``args.epochs`` yields (epoch,
    training accuracy, student logits on the training set)."""
    student = kdcore.MLP([64, 10, 10], seed=args.seed)
    optimizer = Adam(lr=1e-2)
    done = 0
    for epoch in args.epochs:
        kdcore.fit(
            student,
            x,
            labels,
            teacher_logits,
            T=args.T,
            alpha=0.1,
            epochs=epoch - done,
            optimizer=optimizer,
            seed=args.seed + done,
            progress=False,
        )
        done = epoch
        yield epoch, float(np.mean(student.predict(x) == labels)), student.forward(x)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n\n")[0], argv)
    x, labels, teacher_logits = digits_teacher(args)
    print(f"T = {args.T}, {x.shape[0]} training rows, 10 classes\n")
    print(
        "| student epoch | student accuracy | certified (float32) | certified (float64) | median KL per row |"
    )
    print("|---:|---:|---:|---:|---:|")
    for epoch, accuracy, logits in student_in_training(args, x, labels, teacher_logits):
        f32, median_kl = fraction(logits.astype(np.float32), teacher_logits.astype(np.float32), args.T)
        f64, _ = fraction(logits.astype(np.float64), teacher_logits.astype(np.float64), args.T)
        print(f"| {epoch} | {accuracy:.3f} | {f32:.3f} | {f64:.3f} | {median_kl:.2e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
