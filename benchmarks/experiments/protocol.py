"""The shared protocol of the paper's experiments: data, jitter, training, evaluation, result files.

Hinton, Vinyals & Dean (2015, §3) train a 784-1200-1200-10 teacher with dropout and ±2-pixel jitter, then
784-800-800-10 and 784-30-30-10 students without regularisation, on labels alone or on the teacher's
tempered softmax. Every experiment script here imports this module, so they all share one definition of
the data split, the augmentation, the optimiser and the result format.

Results are appended, one JSON object per line, to ``benchmarks/results/experiments/<dataset>/*.jsonl``
as each run finishes: an interrupted sweep keeps what it has done, and a re-run skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

import kdcore
from kdcore import checkpoint
from kdcore.data import load
from kdcore.mlp import MLP
from kdcore.optim import SGD, CosineLR
from kdcore.train import fit

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "experiments"
FIGURES = REPO / "docs" / "img" / "results"
IMAGE_SIDE = 28  # MNIST and Fashion-MNIST: 28×28 images, flattened row by row

# The optimiser of every run: SGD with momentum and a cosine schedule to 0. One fixed recipe, not tuned per
# configuration, so that differences between rows come from the objective and not from the optimiser.
MOMENTUM = 0.9
BATCH_SIZE = 128


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every experiment script takes: data set, where results go, threads, smoke-test sizes."""
    parser.add_argument(
        "--dataset",
        choices=("fashion-mnist", "mnist"),
        default="fashion-mnist",
        help="data set (MNIST needs its four IDX files; see kdcore.data.load for where they are looked for)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="directory of the IDX files (default: kdcore's look-up)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="directory for the .jsonl results and checkpoints (default: benchmarks/results/experiments/<dataset>)",
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="directory of the teacher checkpoints (default: the results directory). Full-size teachers are "
        "10–30 MB each: keep them outside the repository, e.g. /work/runs/mnist",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: two single-threaded runs side by side use 2 cores better than one run "
        "with 2 threads, and OpenBLAS threads spin badly on a shared machine)",
    )
    parser.add_argument(
        "--limit-train", type=int, default=None, help="use only the first N training images (smoke tests)"
    )
    parser.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")


def results_dir(args: argparse.Namespace) -> Path:
    path = args.results if args.results is not None else RESULTS / args.dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir(args: argparse.Namespace) -> Path:
    """Where teacher checkpoints are written and read: ``--checkpoints``, else the results directory."""
    if args.checkpoints is None:
        return results_dir(args)
    args.checkpoints.mkdir(parents=True, exist_ok=True)
    return args.checkpoints


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit NumPy's BLAS to ``n`` threads, through threadpoolctl when it is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: BLAS threads are not limited", file=sys.stderr)
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: the published 60k/10k split, float32 in [0, 1]."""
    try:
        x_train, y_train = load(args.dataset, "train", data_dir=args.data_dir)
        x_test, y_test = load(args.dataset, "test", data_dir=args.data_dir)
    except FileNotFoundError as error:  # kdcore's message says which files to put where
        sys.exit(f"{args.dataset}: {error}")
    if args.limit_train is not None:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    if args.limit_test is not None:
        x_test, y_test = x_test[: args.limit_test], y_test[: args.limit_test]
    return x_train, y_train, x_test, y_test


def jitter(
    images: np.ndarray, max_shift: int, rng: np.random.Generator, side: int = IMAGE_SIDE
) -> np.ndarray:
    """Translate every image by its own random (dx, dy), each uniform in [−max_shift, max_shift].

    The paper's teacher "was also regularized by jittering the input images by up to two pixels in any
    direction". Pixels shifted in from outside are 0, the background of both data sets, so no artificial
    border appears. Returns a new (n, side²) array; ``images`` is not modified.

    Done per offset rather than per image: with ±2 there are only 25 offsets, so 25 vectorised slices of a
    zero-padded copy cost a few hundred milliseconds for 60 000 images, against seconds for a Python loop.
    """
    n = images.shape[0]
    if max_shift == 0:
        return images.copy()
    square = images.reshape(n, side, side)
    padded = np.zeros((n, side + 2 * max_shift, side + 2 * max_shift), dtype=images.dtype)
    padded[:, max_shift : max_shift + side, max_shift : max_shift + side] = square
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    out = np.empty_like(square)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            # The output pixel (i, j) is the input pixel (i − dy, j − dx): a window of the padded image.
            top, left = max_shift - dy, max_shift - dx
            out[rows] = padded[rows, top : top + side, left : left + side]
    return out.reshape(n, side * side)


def test_errors(model: MLP, x: np.ndarray, labels: np.ndarray) -> int:
    """The number of misclassified samples (the paper reports errors out of 10 000, not accuracies)."""
    return int(np.sum(predict(model, x) != labels))


def predict(model: MLP, x: np.ndarray, chunk: int = 5000) -> np.ndarray:
    return np.argmax(logits_of(model, x, chunk), axis=1)


def logits_of(model: MLP, x: np.ndarray, chunk: int = 5000) -> np.ndarray:
    """Evaluation-mode logits in chunks (bounded activation memory)."""
    return np.concatenate([model.forward(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def load_teacher(path: Path) -> MLP:
    return checkpoint.load(path).model


def train_student(
    hidden: Sequence[int],
    x: np.ndarray,
    labels: np.ndarray,
    teacher_logits: np.ndarray | None,
    *,
    T: float,
    alpha: float,
    epochs: int,
    lr: float,
    seed: int,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    n_classes: int = 10,
) -> tuple[MLP, dict]:
    """Train one unregularised ReLU student; return it and a JSON-ready record of the run.

    ``teacher_logits`` None trains on the labels alone (cross-entropy); otherwise the objective is
    ``alpha·CE + (1 − alpha)·T²·soft`` (:func:`kdcore.distillation_loss`). The test set is evaluated after
    every epoch only to record the learning curve; no run is stopped or selected on it.
    """
    # n_classes, not labels.max() + 1: the omitted-class student never sees the last class's label.
    sizes = [x.shape[1], *hidden, n_classes]
    model = MLP(sizes, seed=seed)
    optimizer = SGD(lr=lr, momentum=MOMENTUM)
    started = time.perf_counter()
    history = fit(
        model,
        x,
        labels,
        teacher_logits,
        T=T,
        alpha=alpha,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        optimizer=optimizer,
        schedule=CosineLR(lr, total=epochs),
        seed=seed,
        x_val=x_test,
        labels_val=labels_test,
        progress=False,
    )
    seconds = time.perf_counter() - started
    errors = test_errors(model, x_test, labels_test)
    record = {
        "sizes": list(sizes),
        "distilled": teacher_logits is not None,
        "T": T if teacher_logits is not None else None,
        "alpha": alpha if teacher_logits is not None else None,
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "n_train": len(x),
        "n_test": len(x_test),
        "test_errors": errors,
        "test_accuracy": 1 - errors / len(x_test),
        "train_accuracy_last_epoch": history.train_accuracy[-1],
        "test_accuracy_curve": history.val_accuracy,
        "train_loss_curve": history.loss,
        "seconds": seconds,
    }
    return model, record


class ResultLog:
    """A .jsonl file of runs: append one record per finished run, skip runs already recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = []
        if path.exists():
            with path.open() as file:
                self.records = [json.loads(line) for line in file if line.strip()]

    def has(self, **key) -> bool:
        return any(all(record.get(k) == v for k, v in key.items()) for record in self.records)

    def append(self, record: dict) -> None:
        record = {**record, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.records.append(record)
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())


def environment() -> dict:
    """What a result depends on besides the code: versions and the machine."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "kdcore": kdcore.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def parse_floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def log(message: str) -> None:
    """Progress to stderr with a time stamp, flushed: these scripts run under nohup and are polled."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
