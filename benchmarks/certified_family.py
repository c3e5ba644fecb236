"""How many rows the mixture family's fast path certifies on a realistic input: a trained digits teacher against a
student during training (the set-up of ``certified_rows.py``, which measures the KL kernel).

The teacher and student are ``kdcore demo``'s networks (64-256-256-10 and 64-10-10, Adam, T = 4,
alpha = 0.1, on scikit-learn's digits). After each listed student epoch, skew KL (α = 0.1), skew reverse KL
(α = 0.1), the JSD (β = 0.5) and reverse KL's student gradient are evaluated on the whole training set
through the fast path, and the fraction of rows it certifies (value and student gradient; the rest take the
careful algorithm) is printed, in float32 and float64.

    .venv/bin/python benchmarks/certified_family.py                 # ~1 minute
    .venv/bin/python benchmarks/certified_family.py --epochs 1,5,30 --T 2
"""

from __future__ import annotations

import sys

import numpy as np
from certified_rows import arguments, digits_teacher, student_in_training

from kdcore._fast_mixture import mixture_fast_rows, reverse_kl_grad_rows

LOSSES = (("skew_kl", 0.1), ("skew_reverse_kl", 0.1), ("jsd", 0.5), ("reverse_kl", None))


def fraction(loss: str, weight: float | None, z: np.ndarray, v: np.ndarray, T: float) -> float:
    flags = np.zeros(z.shape[0], dtype=bool)
    if weight is None:
        reverse_kl_grad_rows(z, v, T, 1 / T, flags)
    else:
        mixture_fast_rows(loss, z, v, T, weight, value=True, grad_scale=1 / T, certified_out=flags)
    return float(flags.mean())


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n\n")[0], argv)
    x, labels, teacher_logits = digits_teacher(args)
    print(f"T = {args.T}, {x.shape[0]} training rows, 10 classes; certified fraction float32 / float64\n")
    print("| student epoch | student accuracy | " + " | ".join(name for name, _ in LOSSES) + " |")
    print("|---:|---:|" + "---:|" * len(LOSSES))
    for epoch, accuracy, logits in student_in_training(args, x, labels, teacher_logits):
        cells = []
        for name, weight in LOSSES:
            f32 = fraction(name, weight, logits.astype(np.float32), teacher_logits.astype(np.float32), args.T)
            f64 = fraction(name, weight, logits.astype(np.float64), teacher_logits.astype(np.float64), args.T)
            cells.append(f"{f32:.3f} / {f64:.3f}")
        print(f"| {epoch} | {accuracy:.3f} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
