r"""The figures of one distillation experiment (:func:`kdcore.experiment.run`): learning curves, confusion.

:func:`kdcore.experiment.run` calls :func:`write_experiment_figures` when it is given an output folder;
the drawing lives here, with the other figures, so the experiment itself never touches matplotlib (and
never switches its backend for the caller).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import _describe
from .style import OKABE_ITO, _format_number, _styled, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..mlp import MLP

__all__ = ["confusion_matrix", "learning_curves", "write_experiment_figures"]

_RUNS = (
    ("student_baseline", "labels only", OKABE_ITO["orange"]),
    ("student_distilled", "distilled", OKABE_ITO["blue"]),
)


@_styled
def learning_curves(results: Mapping) -> Figure:
    r"""Test accuracy per epoch of the labels-only and the distilled students of an experiment.

    Parameters
    ----------
    results : mapping
        What :func:`kdcore.experiment.run` returned: each of ``"student_baseline"`` and
        ``"student_distilled"`` holds ``"histories"`` (one list of per-epoch test accuracies per seed) and
        ``"sizes"``; ``"teacher"`` holds ``"test_accuracy"``; ``"T"`` and ``"dataset"``.

    Returns
    -------
    matplotlib.figure.Figure
        One axis: ``lines[0]`` labels only, ``lines[1]`` distilled (means over the seeds, in per cent;
        shaded: their range), ``lines[2]`` the teacher. The first third of the epochs, where both climb
        from chance, is cut from the y range so the two curves can be told apart.

    Examples
    --------
    >>> from kdcore.figures import learning_curves
    >>> results = {
    ...     "dataset": "digits", "T": 4.0, "teacher": {"test_accuracy": 0.99},
    ...     "student_baseline": {"sizes": [64, 10, 10], "histories": [[0.5, 0.8, 0.90], [0.4, 0.8, 0.92]]},
    ...     "student_distilled": {"sizes": [64, 10, 10], "histories": [[0.6, 0.9, 0.95], [0.5, 0.9, 0.96]]},
    ... }
    >>> figure = learning_curves(results)
    >>> [line.get_label() for line in figure.axes[0].lines]
    ['labels only', 'distilled ($T = 4$)', 'teacher']
    """
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    late = []
    for name, label, colour in _RUNS:
        curves = np.asarray(results[name]["histories"], dtype=float) * 100
        if curves.ndim != 2 or curves.shape[1] == 0:
            raise ValueError(f"results[{name!r}]['histories'] must be one non-empty curve per seed")
        epochs = np.arange(1, curves.shape[1] + 1)
        if name == "student_distilled":
            label = rf"{label} ($T = {_format_number(results['T'])}$)"
        ax.plot(epochs, curves.mean(axis=0), color=colour, label=label)
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.2, linewidth=0)
        late.append(curves[:, curves.shape[1] // 3 :].min())
    ax.axhline(results["teacher"]["test_accuracy"] * 100, color="#666666", linestyle="--", label="teacher")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%): mean, min–max over seeds")
    ax.set_title(f"{results['dataset']}: student {results['student_baseline']['sizes']}", loc="left")
    ax.set_ylim(max(0.0, np.floor(min(late)) - 2), 100)
    ax.legend(loc="lower right")
    return figure


@_styled
def confusion_matrix(
    labels: object, predicted: object, title: str = "teacher: test confusion matrix"
) -> Figure:
    r"""The confusion matrix of a classifier: how many images of each true class went to each class.

    Parameters
    ----------
    labels, predicted : array_like of int, shape (B,)
        True and predicted classes, in ``0 … N-1``.
    title : str
        The axis title.

    Returns
    -------
    matplotlib.figure.Figure
        One axis; its image holds the counts, rows the true class, columns the predicted one; up to 20
        classes, each non-zero count is also written in its cell.

    Examples
    --------
    >>> from kdcore.figures import confusion_matrix
    >>> confusion_matrix([0, 1, 1], [0, 1, 0]).axes[0].get_images()[0].get_array().tolist()
    [[1, 0], [1, 1]]
    """
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    if labels.shape != predicted.shape or labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"labels and predicted must be two equally long 1-d arrays, got shapes {labels.shape} "
            f"and {predicted.shape}"
        )
    for name, values in (("labels", labels), ("predicted", predicted)):
        if values.dtype.kind not in "iu" or values.min() < 0:
            raise ValueError(f"{name} must hold class indices ≥ 0, got {_describe(values)}")
    n = int(max(labels.max(), predicted.max())) + 1
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (labels, predicted), 1)

    figure = new_figure(5.0, 4.5)
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="cividis")
    figure.colorbar(image, ax=ax, shrink=0.8, label="images")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, loc="left")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.grid(False)
    # Every non-zero count written in its cell: a single mistake is one image, far too dark to see on a
    # colour scale that must reach the diagonal's hundreds. Small matrices only, where the text fits.
    if n <= 20:
        middle = counts.max() / 2
        for (true, guess), count in np.ndenumerate(counts):
            if count:
                colour = "black" if count > middle else "white"
                ax.text(guess, true, str(count), ha="center", va="center", fontsize=7, color=colour)
    return figure


def write_experiment_figures(
    results: Mapping,
    teacher: MLP,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    out: str | os.PathLike,
) -> list[Path]:
    """Write ``learning_curves.png`` and ``confusion.png`` (the teacher's) into ``out``, if matplotlib is there.

    Parameters
    ----------
    results : mapping
        What :func:`kdcore.experiment.run` returned.
    teacher : MLP
        The experiment's teacher; its test predictions make the confusion matrix.
    x_test, labels_test : numpy.ndarray
        The test set.
    out : str or os.PathLike
        An existing folder.

    Returns
    -------
    list of pathlib.Path
        The two files, or ``[]`` when matplotlib is not installed (the experiment's numbers do not need it).

    Examples
    --------
    A tiny experiment (one seed, a few epochs, no omitted class), then its figures in a temporary folder:

    >>> import tempfile
    >>> from dataclasses import replace
    >>> from kdcore import data
    >>> from kdcore.experiment import DEMO, run
    >>> from kdcore.figures import train_teacher, write_experiment_figures
    >>> config = replace(DEMO, teacher_hidden=(16,), teacher_epochs=2, student_epochs=1, seeds=(0,), omit_class=None)
    >>> results = run(config, progress=False)
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=2)
    >>> x_test, labels_test = data.load("digits", "test")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     [path.name for path in write_experiment_figures(results, teacher, x_test, labels_test, out)]
    ['learning_curves.png', 'confusion.png']
    """
    if importlib.util.find_spec("matplotlib") is None:
        return []
    out = Path(out)
    return [
        save_figure(learning_curves(results), out / "learning_curves.png"),
        save_figure(confusion_matrix(labels_test, teacher.predict(x_test)), out / "confusion.png"),
    ]
