r"""A distillation experiment end to end: teacher, labels-only student, distilled student, omitted class.

This is what ``kdcore demo`` (small, on scikit-learn's digits, under a minute) and ``kdcore distill`` (any
size, any data set, every knob exposed) run:

1. Train a teacher on the labels (dropout regularises it, as in Hinton et al. 2015).
2. For each seed, train the same small student twice from the same initialisation and on the same
   mini-batches: once on the labels alone, once with Hinton's objective
   :math:`\alpha\,\mathrm{CE} + (1-\alpha)\,T^2\,L_\text{soft}`. The paired difference of their test
   accuracies is the gain from distillation, and its spread over seeds says whether the gain is real.
3. The omitted-class experiment (paper §3): remove every example of one class from the student's transfer
   set. A labels-only student can never predict that class (0 % by construction); a distilled student learns
   it from the teacher's soft targets on *other* images ("dark knowledge"). Its bias for the class, never
   trained by a positive example, is too low; raising it by an amount chosen on held-out *training* data
   (never the test set) recovers more.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .data import load
from .mlp import MLP
from .optim import SGD, Adam
from .sweep_file import write_json
from .train import History, _accuracy, fit

__all__ = ["DEMO", "ExperimentConfig", "format_table", "run"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Every knob of a distillation experiment (the defaults are ``kdcore demo``'s, on digits)."""

    dataset: str = "digits"
    data_dir: str | None = None
    teacher_hidden: tuple[int, ...] = (256, 256)
    teacher_dropout: float = 0.3
    # Hinton et al. (2012)'s full regularisation of the teacher: 20 % input dropout and a max-norm bound on
    # each unit's incoming weights (kdcore.mlp.MLP's input_dropout and max_norm). Off in the demo.
    teacher_input_dropout: float = 0.0
    teacher_max_norm: float | None = None
    teacher_epochs: int = 60
    student_hidden: tuple[int, ...] = (10,)
    student_epochs: int = 30
    T: float = 4.0
    alpha: float = 0.1
    batch_size: int = 64
    optimizer: str = "adam"  # or "sgd" (momentum 0.9)
    teacher_lr: float = 1e-3
    student_lr: float = 1e-2
    seeds: tuple[int, ...] = tuple(range(10))
    omit_class: int | None = 3
    omit_T: float = 8.0
    # The omitted-class student is wider than the demo's 10 units: a 64-10-10 net has no spare capacity
    # to represent a class it never sees labelled (2 % recovered, measured), a 64-32-10 one does (74 %).
    omit_student_hidden: tuple[int, ...] | None = (32,)
    dtype: str = "float32"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


#: The configuration of ``kdcore demo``: chosen (see docs/results.md) so that on digits the distilled
#: 64-10-10 student beats the labels-only one by more than the seed-to-seed spread, in well under a minute.
DEMO = ExperimentConfig()


@contextlib.contextmanager
def _blas_threads_for(widths: tuple[int, ...]):
    """One BLAS thread for small networks: their matrix products are far too small to split, and a
    multi-threaded BLAS spends more time waking threads than multiplying (50× slower measured on a busy
    2-core machine). Larger networks keep the BLAS default. Needs threadpoolctl (scikit-learn's dependency,
    so present with the ``data`` extra); without it nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    if max(a * b for a, b in itertools.pairwise(widths)) < 200_000:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    else:
        yield


def _optimizer(config: ExperimentConfig, lr: float) -> SGD | Adam:
    if config.optimizer == "adam":
        return Adam(lr=lr)
    if config.optimizer == "sgd":
        return SGD(lr=lr, momentum=0.9)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got optimizer={config.optimizer!r}")


def _summary(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "standard_error": std / np.sqrt(array.size)}


def _checkpoint_path(out: Path | None, name: str) -> Path | None:
    return None if out is None else out / "checkpoints" / f"{name}.npz"


def _train(
    sizes: list[int],
    x: np.ndarray,
    labels: np.ndarray,
    *,
    config: ExperimentConfig,
    seed: int,
    lr: float,
    epochs: int,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    max_norm: float | None = None,
    teacher_logits: np.ndarray | None = None,
    T: float | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    checkpoint: Path | None = None,
    progress: bool = False,
) -> tuple[MLP, History]:
    model = MLP(
        sizes,
        dropout=dropout,
        input_dropout=input_dropout,
        max_norm=max_norm,
        seed=seed,
        dtype=np.dtype(config.dtype),
    )
    x_val, labels_val = validation if validation is not None else (None, None)
    history = fit(
        model,
        x,
        labels,
        teacher=teacher_logits,
        T=config.T if T is None else T,
        alpha=config.alpha,
        epochs=epochs,
        batch_size=config.batch_size,
        optimizer=_optimizer(config, lr),
        seed=seed,
        x_val=x_val,
        labels_val=labels_val,
        progress=progress,
        checkpoint=checkpoint,
        resume=checkpoint is not None,
        dataset=config.dataset,
    )
    if history.interrupted:
        raise KeyboardInterrupt
    return model, history


def _omitted_class(
    config: ExperimentConfig,
    teacher: MLP,
    x: np.ndarray,
    labels: np.ndarray,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    out: Path | None,
    progress: bool,
) -> dict:
    omitted = config.omit_class
    hidden = config.student_hidden if config.omit_student_hidden is None else config.omit_student_hidden
    student_sizes = [x.shape[1], *hidden, teacher.sizes[-1]]
    # Hold out 15 % of the training set (with its examples of the omitted class) to choose the bias
    # correction: the test set is never looked at until the final numbers.
    order = np.random.default_rng(12345).permutation(len(labels))
    n_held = len(labels) // 7
    held, kept = order[:n_held], order[n_held:]
    transfer = kept[labels[kept] != omitted]
    teacher_logits = teacher.forward(x[transfer])
    seed = config.seeds[0]
    common = dict(
        config=config, seed=seed, lr=config.student_lr, epochs=config.student_epochs, progress=progress
    )
    baseline, _ = _train(
        student_sizes,
        x[transfer],
        labels[transfer],
        checkpoint=_checkpoint_path(out, "omitted_baseline"),
        **common,
    )
    distilled, _ = _train(
        student_sizes,
        x[transfer],
        labels[transfer],
        teacher_logits=teacher_logits,
        T=config.omit_T,
        checkpoint=_checkpoint_path(out, "omitted_distilled"),
        **common,
    )
    # The bias correction: the offset to the omitted class's output bias that maximises accuracy on the
    # held-out training examples (all classes), searched on a grid.
    held_logits = distilled.forward(x[held])
    offsets = np.arange(0.0, 10.01, 0.25)
    held_accuracy = [
        float(
            np.mean(
                np.argmax(held_logits + offset * np.eye(held_logits.shape[1])[omitted], axis=1)
                == labels[held]
            )
        )
        for offset in offsets
    ]
    best = float(offsets[int(np.argmax(held_accuracy))])
    corrected = distilled.copy()
    corrected.params[-1][omitted] += corrected.params[-1].dtype.type(best)

    is_omitted = labels_test == omitted

    def on_class(model: MLP) -> float:
        return _accuracy(model, x_test[is_omitted], labels_test[is_omitted])

    return {
        "class": int(omitted),
        "student_sizes": student_sizes,
        "T": config.omit_T,
        "alpha": config.alpha,
        "seed": seed,
        "transfer_set_size": int(transfer.size),
        "baseline": {
            "class_accuracy": on_class(baseline),
            "test_accuracy": _accuracy(baseline, x_test, labels_test),
        },
        "distilled": {
            "class_accuracy": on_class(distilled),
            "test_accuracy": _accuracy(distilled, x_test, labels_test),
        },
        "distilled_bias_corrected": {
            "bias_offset": best,
            "chosen_on": f"{n_held} held-out training examples",
            "class_accuracy": on_class(corrected),
            "test_accuracy": _accuracy(corrected, x_test, labels_test),
        },
    }


def run(config: ExperimentConfig = DEMO, out: str | Path | None = None, *, progress: bool = True) -> dict:
    """Run the experiment described in the module docstring and return its results.

    Parameters
    ----------
    config : ExperimentConfig
        What to run; :data:`DEMO` by default.
    out : str or Path, optional
        Where to write ``results.json``, ``checkpoints/`` and (with matplotlib) ``learning_curves.png`` and
        ``confusion.png``. Training resumes from the checkpoints found there. Nothing is written if None.
    progress : bool
        Print one line per model trained (and tqdm bars for large data sets).

    Returns
    -------
    dict
        ``{"dataset", "T", "alpha", "seeds", "teacher", "student_baseline", "student_distilled",
        "distillation_gain", "omitted_class", "config", "wall_time_seconds"}``; accuracies are fractions.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from kdcore.experiment import DEMO, run
    >>> quick = replace(DEMO, teacher_epochs=2, student_epochs=1, seeds=(0,), omit_class=None)
    >>> results = run(quick, progress=False)
    >>> sorted(results["student_distilled"])
    ['histories', 'mean', 'sizes', 'standard_error', 'std', 'test_accuracy']
    """
    start = time.perf_counter()
    out = None if out is None else Path(out)
    if out is not None:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    x, labels = load(config.dataset, "train", data_dir=config.data_dir)
    x_test, labels_test = load(config.dataset, "test", data_dir=config.data_dir)
    n_classes = int(max(labels.max(), labels_test.max())) + 1
    teacher_sizes = [x.shape[1], *config.teacher_hidden, n_classes]
    student_sizes = [x.shape[1], *config.student_hidden, n_classes]
    big_data = len(labels) > 10_000

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    with _blas_threads_for(tuple(teacher_sizes)):
        t0 = time.perf_counter()
        teacher, teacher_history = _train(
            teacher_sizes,
            x,
            labels,
            config=config,
            seed=config.seeds[0],
            lr=config.teacher_lr,
            epochs=config.teacher_epochs,
            dropout=config.teacher_dropout,
            input_dropout=config.teacher_input_dropout,
            max_norm=config.teacher_max_norm,
            checkpoint=_checkpoint_path(out, "teacher"),
            progress=progress and big_data,
        )
        teacher_seconds = time.perf_counter() - t0
        teacher_accuracy = _accuracy(teacher, x_test, labels_test)
        say(f"teacher {teacher_sizes}: test accuracy {teacher_accuracy:.4f} ({teacher_seconds:.1f} s)")
        teacher_logits = teacher.forward(x)

    runs = {"student_baseline": [], "student_distilled": []}
    histories = {"student_baseline": [], "student_distilled": []}
    with _blas_threads_for(tuple(student_sizes)):
        for seed in config.seeds:
            for name, logits in (("student_baseline", None), ("student_distilled", teacher_logits)):
                model, history = _train(
                    student_sizes,
                    x,
                    labels,
                    config=config,
                    seed=seed,
                    lr=config.student_lr,
                    epochs=config.student_epochs,
                    teacher_logits=logits,
                    validation=(x_test, labels_test),
                    checkpoint=_checkpoint_path(out, f"{name}_seed{seed}"),
                    progress=progress and big_data,
                )
                runs[name].append(_accuracy(model, x_test, labels_test))
                histories[name].append(history.val_accuracy)
            say(
                f"seed {seed}: labels only {runs['student_baseline'][-1]:.4f}, "
                f"distilled {runs['student_distilled'][-1]:.4f}"
            )
        omitted = None
        if config.omit_class is not None:
            omitted = _omitted_class(
                config, teacher, x, labels, x_test, labels_test, out, progress and big_data
            )
            say(
                f"omitted class {omitted['class']}: labels only {omitted['baseline']['class_accuracy']:.3f}, "
                f"distilled {omitted['distilled']['class_accuracy']:.3f}, with bias "
                f"+{omitted['distilled_bias_corrected']['bias_offset']} "
                f"{omitted['distilled_bias_corrected']['class_accuracy']:.3f}"
            )

    gains = np.subtract(runs["student_distilled"], runs["student_baseline"])
    results = {
        "dataset": config.dataset,
        "T": config.T,
        "alpha": config.alpha,
        "seeds": list(config.seeds),
        "teacher": {
            "sizes": teacher_sizes,
            "test_accuracy": teacher_accuracy,
            "epochs": config.teacher_epochs,
            "seconds": teacher_seconds,
            "history": teacher_history.to_dict(),
        },
        **{
            name: {
                "sizes": student_sizes,
                "test_accuracy": accuracies,
                **_summary(accuracies),
                "histories": histories[name],
            }
            for name, accuracies in runs.items()
        },
        "distillation_gain": {"per_seed": gains.tolist(), **_summary(gains.tolist())},
        "omitted_class": omitted,
        "config": config.to_dict(),
    }
    results["wall_time_seconds"] = time.perf_counter() - start
    if out is not None:
        # Atomically (a temporary file renamed into place): an interrupted run never leaves half a file
        # where a finished one is expected.
        write_json(results, out / "results.json")
        # Drawn by kdcore.figures (when matplotlib is installed), in its own style context: the caller's
        # matplotlib backend and rcParams are left as they were.
        from .figures.experiment import write_experiment_figures

        write_experiment_figures(results, teacher, x_test, labels_test, out)
    return results


def format_table(results: dict) -> str:
    """The demo's summary table (Markdown), from :func:`run`'s results."""
    rows = [
        "| model | sizes | test accuracy (mean ± std over seeds) |",
        "|---|---|---|",
        f"| teacher | {results['teacher']['sizes']} | {results['teacher']['test_accuracy'] * 100:.2f} % |",
    ]
    for name, label in (
        ("student_baseline", "student, labels only"),
        ("student_distilled", "student, distilled"),
    ):
        entry = results[name]
        rows.append(
            f"| {label} | {entry['sizes']} | {entry['mean'] * 100:.2f} ± {entry['std'] * 100:.2f} % |"
        )
    gain = results["distillation_gain"]
    n_seeds = len(results["seeds"])
    if n_seeds > 1:
        spread = (
            f"std {gain['std'] * 100:.2f}, standard error {gain['standard_error'] * 100:.2f} over {n_seeds} "
            f"seeds; labels-only seed-to-seed spread (std): {results['student_baseline']['std'] * 100:.2f} points"
        )
    else:
        spread = "one seed: no spread to compare it with (use several --seeds)"
    lines = [
        *rows,
        "",
        f"T = {results['T']:g}, alpha = {results['alpha']:g}, seeds = {results['seeds']}",
        f"distillation gain (paired: same initialisation and batches): {gain['mean'] * 100:+.2f} points, {spread}",
    ]
    omitted = results.get("omitted_class")
    if omitted:
        lines.append(
            f"omitted class {omitted['class']} (never in the student's transfer set), accuracy on its test "
            f"examples: labels only {omitted['baseline']['class_accuracy'] * 100:.1f} %, distilled at "
            f"T = {omitted['T']:g} (student {omitted['student_sizes']}) {omitted['distilled']['class_accuracy'] * 100:.1f} %, with the bias raised by "
            f"{omitted['distilled_bias_corrected']['bias_offset']:g} (chosen on held-out training data) "
            f"{omitted['distilled_bias_corrected']['class_accuracy'] * 100:.1f} %"
        )
    lines.append(f"wall time: {results['wall_time_seconds']:.1f} s")
    return "\n".join(lines)
