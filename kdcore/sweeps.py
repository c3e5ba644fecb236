r"""The experiments behind the data-driven figures: a quick teacher, the (T, α) sweep and the width sweep.

Each function here trains small :class:`~kdcore.mlp.MLP` models with :func:`kdcore.train.fit` (seeded,
bitwise reproducible) and returns plain, JSON-ready records; :mod:`kdcore.figures` draws them and
:mod:`kdcore.sweep_file` stores the (T, α) sweep. Nothing here imports matplotlib.

=============================  ==========================================================================
:func:`train_teacher`          a quick teacher on a data set's training split (digits: under a second)
:func:`run_sweep`              distil one teacher into a student at every :math:`(T, \alpha)` of a grid,
                               several seeds, and a labels-only baseline per seed (``kdcore sweep``)
:func:`run_capacity`           students of several widths, labels only and distilled
:func:`stratified_folds`       the cross-validation folds of ``run_sweep(folds=k)``
=============================  ==========================================================================

``train_teacher``, ``run_sweep`` and ``run_capacity`` are also importable from :mod:`kdcore.figures`, where
they were first documented (they lived in its one module before it was split by concern).
"""

from __future__ import annotations

import itertools
import numbers
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._arrays import _describe, check_alpha, check_int, check_temperature
from .sweep_file import SWEEP_FORMAT, SWEEP_FORMAT_VERSION
from .train import _accuracy

if TYPE_CHECKING:
    from .mlp import MLP

__all__ = ["run_capacity", "run_sweep", "stratified_folds", "train_teacher"]


def _check_temperatures(temperatures: object, name: str = "temperatures") -> np.ndarray:
    if isinstance(temperatures, numbers.Real):
        temperatures = [temperatures]
    try:
        values = [check_temperature(T) for T in temperatures]  # type: ignore[union-attr]
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from error
    if not values:
        raise ValueError(f"{name} must hold at least one temperature, got {_describe(temperatures)}")
    return np.asarray(values, dtype=np.float64)


_TEACHER_BATCH, _TEACHER_LR = 32, 2e-3
_STUDENT_BATCH, _STUDENT_LR = 64, 1e-2


def _n_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1


def train_teacher(
    dataset: str = "digits",
    hidden: Sequence[int] = (128,),
    epochs: int = 40,
    seed: int = 0,
    progress: bool = False,
) -> MLP:
    """Train a quick teacher :class:`~kdcore.mlp.MLP` on ``dataset``'s training split with labels alone.

    Parameters
    ----------
    dataset : str, default "digits"
        A name :func:`kdcore.data.load` knows.
    hidden : sequence of int, default (128,)
        Hidden-layer widths.
    epochs : int, default 40
        Epochs of Adam (lr 2e-3, batches of 32). On digits, 40 take under a second and reach about
        99 % test accuracy.
    seed : int, default 0
        Initialisation and shuffling.
    progress : bool, default False
        Show the trainer's progress bars.

    Returns
    -------
    MLP
        The trained teacher (ReLU, float32).

    Examples
    --------
    >>> from kdcore.figures import train_teacher
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=3)
    >>> teacher.sizes
    (64, 16, 10)
    """
    from . import data

    x, labels = data.load(dataset, "train")
    return _fit_teacher(x, labels, hidden, epochs, seed, progress)


def _fit_teacher(
    x: np.ndarray,
    labels: np.ndarray,
    hidden: Sequence[int],
    epochs: int,
    seed: int = 0,
    progress: bool = False,
) -> MLP:
    from .mlp import MLP
    from .optim import Adam
    from .train import fit

    model = MLP([x.shape[1], *hidden, _n_classes(labels)], seed=seed)
    fit(
        model,
        x,
        labels,
        epochs=epochs,
        batch_size=_TEACHER_BATCH,
        optimizer=Adam(lr=_TEACHER_LR),
        seed=seed,
        progress=progress,
    )
    return model


def _dataset_of(model: MLP, where: str) -> str:
    """The data set a model belongs to, from its input size: 64 digits, 20 synthetic, 784 (Fashion-)MNIST.

    784 inputs fit both MNIST and Fashion-MNIST: the one whose test set the model classifies better is
    taken (a teacher of one is near chance on the other), among those found on disk.
    """
    from . import data

    by_inputs = {64: "digits", 20: "synthetic"}
    if model.sizes[0] in by_inputs:
        return by_inputs[model.sizes[0]]
    if model.sizes[0] != 784:
        raise ValueError(
            f"{where}: cannot tell which data set a model with {model.sizes[0]} inputs belongs to "
            f"(digits has 64, MNIST and Fashion-MNIST 784, synthetic 20); pass dataset="
        )
    scores = {}
    for name in data.IDX_DATASETS:
        try:
            x_test, labels_test = data.load(name, "test")
        except FileNotFoundError:
            continue
        scores[name] = _accuracy(model, x_test, labels_test)
    if not scores:
        raise FileNotFoundError(
            f"{where} is a 784-input model, but neither MNIST nor Fashion-MNIST is on disk "
            "(kdcore data download mnist)"
        )
    return max(scores, key=scores.__getitem__)


def _resolve_teacher(teacher: object, dataset: str | None, epochs: int = 40) -> tuple[MLP, str, int | None]:
    """(teacher, dataset, epochs it was trained for): an MLP as given, a checkpoint path loaded, None trained."""
    from . import checkpoint
    from .mlp import MLP

    if teacher is None:
        dataset = "digits" if dataset is None else dataset
        return train_teacher(dataset, epochs=epochs), dataset, epochs
    if isinstance(teacher, str | os.PathLike):
        loaded = checkpoint.load(teacher)
        model = loaded.model
        recorded = loaded.config.get("dataset") if isinstance(loaded.config, Mapping) else None
        if dataset is None:
            dataset = recorded if isinstance(recorded, str) else _dataset_of(model, str(teacher))
        return model, dataset, loaded.epoch
    if isinstance(teacher, MLP):
        return teacher, dataset if dataset is not None else _dataset_of(teacher, "teacher"), None
    raise TypeError(
        f"teacher must be a kdcore.mlp.MLP, a checkpoint path or None, got {type(teacher).__name__}"
    )


def _check_teacher_fits(teacher: MLP, x: np.ndarray, labels: np.ndarray, dataset: str) -> None:
    if teacher.sizes[0] != x.shape[1] or teacher.sizes[-1] < _n_classes(labels):
        raise ValueError(
            f"the teacher (sizes {list(teacher.sizes)}) does not fit the {dataset!r} data set "
            f"({x.shape[1]} inputs, {_n_classes(labels)} classes)"
        )


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _train_student(
    sizes: Sequence[int],
    x: np.ndarray,
    labels: np.ndarray,
    teacher_logits: np.ndarray | None,
    T: float,
    alpha: float,
    epochs: int,
    seed: int,
    activation: str = "relu",
) -> MLP:
    from .mlp import MLP
    from .optim import Adam
    from .train import fit

    student = MLP(list(sizes), activation=activation, seed=seed)
    fit(
        student,
        x,
        labels,
        teacher=teacher_logits,
        T=T,
        alpha=alpha,
        epochs=epochs,
        batch_size=_STUDENT_BATCH,
        optimizer=Adam(lr=_STUDENT_LR),
        seed=seed,
        progress=False,
    )
    return student


def _check_seeds(seeds: object, name: str) -> list[int]:
    values = list(seeds)  # type: ignore[call-overload]
    if not values:
        raise ValueError(f"{name} must be a non-empty list of integers ≥ 0, got {_describe(seeds)}")
    return [check_int(s, f"{name}[{i}]", 0) for i, s in enumerate(values)]


def _check_folds(folds: object) -> int:
    folds = check_int(folds, "folds", 1)
    if folds > 20:
        raise ValueError(f"folds must be an integer from 1 to 20, got folds={folds}")
    return folds


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Split the indices of ``labels`` into ``folds`` disjoint parts with (nearly) the same class mix.

    Each class is shuffled (by ``seed``) and dealt round the folds like cards, continuing where the
    previous class stopped, so fold sizes differ by at most one.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.sweeps import stratified_folds
    >>> parts = stratified_folds(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1]), 2)
    >>> [len(part) for part in parts], sorted(np.concatenate(parts).tolist()) == list(range(9))
    ([5, 4], True)
    """
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (dealt + np.arange(members.size)) % folds
        dealt += members.size
    return [np.flatnonzero(fold_of == fold) for fold in range(folds)]


def _splits(dataset: str, folds: int):
    """(x_train, labels_train, x_eval, labels_eval) per fold.

    ``folds == 1``: the data set's own train/test split. Otherwise both splits are pooled and every image
    is evaluated exactly once, by models that never saw it (k-fold cross-validation): on digits that
    makes 1,797 evaluation images instead of the 451 of the test split.
    """
    from . import data

    x, labels = data.load(dataset, "train")
    x_test, labels_test = data.load(dataset, "test")
    if folds == 1:
        return [(x, labels, x_test, labels_test)]
    x_all, labels_all = np.concatenate([x, x_test]), np.concatenate([labels, labels_test])
    parts = stratified_folds(labels_all, folds)
    splits = []
    for held in parts:
        train = np.setdiff1d(np.arange(len(labels_all)), held)
        splits.append((x_all[train], labels_all[train], x_all[held], labels_all[held]))
    return splits


def run_sweep(
    dataset: str = "digits",
    temperatures: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    alphas: Sequence[float] = (0.1, 0.5, 0.9),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    folds: int = 1,
    teacher: MLP | str | os.PathLike | None = None,
    teacher_hidden: Sequence[int] = (128,),
    teacher_epochs: int = 40,
    student_hidden: Sequence[int] = (16,),
    activation: str = "relu",
    epochs: int = 20,
    progress: bool = False,
) -> dict:
    r"""Distil a teacher into a student at every :math:`(T, \alpha)` of a grid; return the sweep record.

    Parameters
    ----------
    dataset : str, default "digits"
        A name :func:`kdcore.data.load` knows.
    temperatures : sequence of float, default (1, 2, 4, 8, 16)
        Distillation temperatures.
    alphas : sequence of float, default (0.1, 0.5, 0.9)
        Weights of the hard-label term (:func:`kdcore.distillation_loss`); 0 is pure distillation, and
        Hinton et al. found a small weight best.
    seeds : sequence of int, default (0, 1, 2)
        One student per seed at every grid point (its initialisation and shuffling), and one trained on
        the labels alone (the baseline).
    folds : int, default 1
        1: train on the data set's training split, evaluate on its test split (digits: 451 images, so
        one image is 0.22 points). ``k ≥ 2``: k-fold cross-validation on both splits pooled — a teacher
        and all students per fold, each image evaluated once per seed by models that never saw it
        (digits: all 1,797 images, one image 0.056 points); costs ``k`` times as much.
    teacher : MLP, checkpoint path or None
        Default: :func:`train_teacher` on ``dataset`` (one per fold). A given teacher has seen its own
        training split, so it can be used with ``folds=1`` only.
    teacher_hidden, teacher_epochs
        The teacher trained here: hidden widths, default (128,), and epochs, default 40.
    student_hidden : sequence of int, default (16,)
        The student's hidden widths. On digits a width of 16 gains about a point of accuracy from
        distillation at :math:`T \ge 8`.
    activation : {"relu", "tanh"}, default "relu"
        The student's activation.
    epochs : int, default 20
        Epochs of every student (Adam, lr 1e-2, batches of 64).
    progress : bool, default False
        Print one line per trained student to stderr.

    Returns
    -------
    dict
        The sweep record described in :mod:`kdcore.sweep_file` (JSON-ready: plain lists, floats and ints).
        Accuracies are fractions of the ``evaluation["images"]`` images. The default grid costs
        ``3 × (15 + 1)`` student runs per fold, 10–20 s on digits.

    Examples
    --------
    >>> from kdcore.sweeps import run_sweep, train_teacher
    >>> teacher = train_teacher(epochs=2)
    >>> sweep = run_sweep(temperatures=[4.0], alphas=[0.5], seeds=[0], teacher=teacher, epochs=1)
    >>> sweep["format"], len(sweep["accuracy"]), len(sweep["accuracy"][0]), len(sweep["accuracy"][0][0])
    ('kdcore-sweep', 1, 1, 1)
    >>> sweep["evaluation"]
    {'folds': 1, 'images': 451}
    """
    from ._version import __version__

    temperatures = [float(T) for T in _check_temperatures(temperatures)]
    alpha_values = [check_alpha(alpha) for alpha in alphas]
    if not alpha_values:
        raise ValueError("alphas must hold at least one weight")
    seeds = _check_seeds(seeds, "seeds")
    folds = _check_folds(folds)
    if folds > 1 and teacher is not None:
        raise ValueError(
            f"folds={folds} trains a teacher per fold (a given teacher has seen images that a fold "
            "evaluates on): pass teacher=None, or folds=1"
        )
    if teacher is None:
        teacher_model, trained_epochs = None, teacher_epochs
        dataset = "digits" if dataset is None else dataset
    else:
        teacher_model, dataset, trained_epochs = _resolve_teacher(teacher, dataset, teacher_epochs)
    splits = _splits(dataset, folds)
    shape = (len(temperatures), len(alpha_values), len(seeds), folds)
    accuracy, baseline = np.zeros(shape), np.zeros(shape[2:])
    teacher_accuracy, sizes = np.zeros(folds), []

    start = time.perf_counter()
    for fold, (x, labels, x_eval, labels_eval) in enumerate(splits):
        if teacher is None:
            teacher_model = _fit_teacher(x, labels, [int(h) for h in teacher_hidden], teacher_epochs)
        _check_teacher_fits(teacher_model, x, labels, dataset)
        teacher_accuracy[fold] = _accuracy(teacher_model, x_eval, labels_eval)
        # The teacher is fixed: its logits are computed once and handed to every student run.
        teacher_logits = teacher_model.forward(x, train=False)
        sizes = [x.shape[1], *[int(h) for h in student_hidden], teacher_model.sizes[-1]]
        where = f"fold {fold + 1}/{folds}, " if folds > 1 else ""
        for k, seed in enumerate(seeds):
            student = _train_student(sizes, x, labels, None, 1.0, 1.0, epochs, seed, activation)
            baseline[k, fold] = _accuracy(student, x_eval, labels_eval)
            _log(progress, f"sweep: {where}labels only, seed {seed}: {baseline[k, fold]:.4f}")
        for (i, T), (j, alpha), (k, seed) in itertools.product(
            enumerate(temperatures), enumerate(alpha_values), enumerate(seeds)
        ):
            student = _train_student(sizes, x, labels, teacher_logits, T, alpha, epochs, seed, activation)
            accuracy[i, j, k, fold] = _accuracy(student, x_eval, labels_eval)
            _log(
                progress, f"sweep: {where}T={T:g} alpha={alpha:g} seed {seed}: {accuracy[i, j, k, fold]:.4f}"
            )
    _log(progress, f"sweep: {time.perf_counter() - start:.1f} s")

    # Pooled over the folds: the fraction of all evaluated images classified right (each image once).
    fold_sizes = np.array([len(split[3]) for split in splits])

    def pooled(values: np.ndarray) -> list:
        return (values @ fold_sizes / fold_sizes.sum()).tolist()

    return {
        "format": SWEEP_FORMAT,
        "format_version": SWEEP_FORMAT_VERSION,
        "kdcore_version": __version__,
        "dataset": dataset,
        "evaluation": {"folds": folds, "images": int(fold_sizes.sum())},
        "temperatures": temperatures,
        "alphas": alpha_values,
        "seeds": seeds,
        "accuracy": pooled(accuracy),
        "baseline_accuracy": pooled(baseline),
        "teacher": {
            "sizes": list(teacher_model.sizes),
            "test_accuracy": pooled(teacher_accuracy),
            "epochs": trained_epochs,
        },
        "student": {
            "sizes": sizes,
            "activation": activation,
            "epochs": int(epochs),
            "batch_size": _STUDENT_BATCH,
            "lr": _STUDENT_LR,
        },
    }


def run_capacity(
    widths: Sequence[int] = (2, 4, 8, 16, 32, 64),
    *,
    dataset: str = "digits",
    teacher: MLP | str | os.PathLike | None = None,
    teacher_epochs: int = 40,
    T: float = 4.0,
    alpha: float = 0.5,
    seeds: Sequence[int] = (0, 1),
    epochs: int = 20,
    progress: bool = False,
) -> dict:
    r"""Train students of each hidden width on the labels alone and distilled; return their test accuracies.

    Parameters
    ----------
    widths : sequence of int, default (2, 4, 8, 16, 32, 64)
        Hidden widths of the one-hidden-layer students.
    dataset : str, default "digits"
        Training and test data (:func:`kdcore.data.load`).
    teacher : MLP, checkpoint path or None
        Default: :func:`train_teacher` for ``teacher_epochs``.
    teacher_epochs : int, default 40
        Used only when the teacher is trained here.
    T, alpha : float
        The distillation settings (:func:`kdcore.distillation_loss`).
    seeds : sequence of int, default (0, 1)
        One student per seed, width and mode.
    epochs : int, default 20
        Epochs of every student (Adam, lr 1e-2, batches of 64).
    progress : bool, default False
        Print one line per student to stderr.

    Returns
    -------
    dict
        ``widths``, ``seeds``, ``T``, ``alpha``, ``dataset``, ``teacher_accuracy``, ``teacher_sizes``,
        ``test_images`` (the test split's size), ``n_params`` (per width) and ``labels_only`` and
        ``distilled``: test accuracies, one list of ``len(seeds)`` per width.

    Examples
    --------
    Two widths, one seed, one epoch each (a real curve uses more of all three):

    >>> from kdcore.figures import run_capacity, train_teacher
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=3)
    >>> result = run_capacity(widths=(2, 8), teacher=teacher, seeds=(0,), epochs=1)
    >>> result["widths"], result["n_params"]
    ([2, 8], [160, 610])
    >>> [len(accuracies) for accuracies in result["distilled"]]  # one accuracy per seed, per width
    [1, 1]
    """
    from . import data

    width_values = [int(w) for w in widths]
    if not width_values or any(w < 1 for w in width_values):
        raise ValueError(f"widths must be a non-empty list of positive integers, got {_describe(widths)}")
    T = check_temperature(T)
    alpha = check_alpha(alpha)
    seeds = _check_seeds(seeds, "seeds")
    teacher_model, dataset, _ = _resolve_teacher(teacher, dataset, teacher_epochs)
    x, labels = data.load(dataset, "train")
    x_test, labels_test = data.load(dataset, "test")
    _check_teacher_fits(teacher_model, x, labels, dataset)
    teacher_logits = teacher_model.forward(x, train=False)
    n_classes = teacher_model.sizes[-1]

    labels_only, distilled, n_params = [], [], []
    for width in width_values:
        sizes = [x.shape[1], width, n_classes]
        plain_row, kd_row = [], []
        for seed in seeds:
            plain = _train_student(sizes, x, labels, None, T, alpha, epochs, seed)
            kd = _train_student(sizes, x, labels, teacher_logits, T, alpha, epochs, seed)
            plain_row.append(_accuracy(plain, x_test, labels_test))
            kd_row.append(_accuracy(kd, x_test, labels_test))
            _log(
                progress,
                f"capacity: width {width} seed {seed}: labels {plain_row[-1]:.4f}, KD {kd_row[-1]:.4f}",
            )
        labels_only.append(plain_row)
        distilled.append(kd_row)
        n_params.append(plain.n_params)
    return {
        "dataset": dataset,
        "widths": width_values,
        "n_params": n_params,
        "seeds": seeds,
        "T": T,
        "alpha": alpha,
        "labels_only": labels_only,
        "distilled": distilled,
        "teacher_accuracy": _accuracy(teacher_model, x_test, labels_test),
        "teacher_sizes": list(teacher_model.sizes),
        "test_images": len(labels_test),
    }
