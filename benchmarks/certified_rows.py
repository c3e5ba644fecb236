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

import numpy as np

import kdcore
from kdcore import data
from kdcore._fast import soft_rows
from kdcore.optim import Adam


def fraction(student_logits: np.ndarray, teacher_logits: np.ndarray, T: float) -> tuple[float, float]:
    flags = np.zeros(student_logits.shape[0], dtype=bool)
    kl, _ = soft_rows(student_logits, teacher_logits, T, value="kl", grad_scale=1 / T, certified_out=flags)
    return float(flags.mean()), float(np.median(kl))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", default="1,2,5,10,20,30", help="student epochs after which to measure")
    parser.add_argument("--T", type=float, default=4.0, help="temperature (default 4, the demo's)")
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = sorted({int(e) for e in args.epochs.split(",")})

    x, labels = data.load("digits", "train")
    teacher = kdcore.MLP([64, 256, 256, 10], dropout=0.3, seed=args.seed)
    kdcore.fit(teacher, x, labels, epochs=args.teacher_epochs, optimizer=Adam(lr=1e-3), progress=False)
    teacher_logits = teacher.forward(x)
    print(
        f"teacher: {args.teacher_epochs} epochs, train accuracy {np.mean(teacher.predict(x) == labels):.3f}"
    )
    print(f"T = {args.T}, {x.shape[0]} training rows, 10 classes\n")
    print(
        "| student epoch | student accuracy | certified (float32) | certified (float64) | median KL per row |"
    )
    print("|---:|---:|---:|---:|---:|")
    student = kdcore.MLP([64, 10, 10], seed=args.seed)
    optimizer = Adam(lr=1e-2)
    done = 0
    for epoch in epochs:
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
        logits = student.forward(x)
        f32, median_kl = fraction(logits.astype(np.float32), teacher_logits.astype(np.float32), args.T)
        f64, _ = fraction(logits.astype(np.float64), teacher_logits.astype(np.float64), args.T)
        accuracy = np.mean(student.predict(x) == labels)
        print(f"| {epoch} | {accuracy:.3f} | {f32:.3f} | {f64:.3f} | {median_kl:.2e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
