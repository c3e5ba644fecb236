r"""A trained teacher's soft targets on real test images: the "dark knowledge" the temperature reveals."""

from __future__ import annotations

import math
import numbers
import os
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import _describe
from ..softmax import softmax
from ..sweeps import _check_teacher_fits, _check_temperatures, _resolve_teacher
from .style import OKABE_ITO, _format_number, _styled, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..mlp import MLP

__all__ = ["dark_knowledge"]

_CLASS_NAMES = {
    "fashion-mnist": (
        "T-shirt/top",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    )
}


def _image_shape(n_features: int) -> tuple[int, int]:
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"cannot show {n_features} features as a square image")
    return side, side


def _dark_knowledge_examples(
    logits: np.ndarray, labels: np.ndarray, low_T: float, high_T: float, n_images: int
) -> list[int]:
    """Typical images with visible dark knowledge: confident at ``low_T``, with the largest runner-up at ``high_T``.

    Among the test images the teacher classifies correctly with probability ≥ 0.9 at ``low_T`` (the usual
    case for a good teacher: the label says almost everything), take those whose second-largest
    probability at ``high_T`` is largest, one per true class. Falls back to every correct image when too
    few are that confident.
    """
    predicted = np.argmax(logits, axis=1)
    top_low = np.max(softmax(logits, low_T), axis=1)
    high = np.sort(softmax(logits, high_T), axis=1)
    runner_up = high[:, -2]
    for threshold in (0.9, 0.0):
        candidates = np.flatnonzero((predicted == labels) & (top_low >= threshold))
        chosen: list[int] = []
        for index in candidates[np.argsort(-runner_up[candidates], kind="stable")]:
            if all(labels[index] != labels[other] for other in chosen):
                chosen.append(int(index))
            if len(chosen) == n_images:
                return chosen
    if not chosen:
        raise ValueError("the teacher classifies no test image correctly: nothing to show")
    return chosen


@_styled
def dark_knowledge(
    teacher: MLP | str | os.PathLike | None = None,
    *,
    dataset: str | None = None,
    n_images: int = 4,
    temperatures: tuple[float, float] = (1.0, 4.0),
    teacher_epochs: int = 40,
) -> Figure:
    r"""A trained teacher's soft targets for a few real test images, at a low and a high temperature.

    Lesson: at :math:`T = 1` a good teacher puts nearly all its mass on one class and the targets say
    little more than the label; at :math:`T = 4` the look-alike classes appear — which other digits this
    particular image resembles — and that is what the student learns from.

    Parameters
    ----------
    teacher : MLP, checkpoint path or None
        The teacher; a path is read with :func:`kdcore.checkpoint.load`. Default: a quick digits teacher
        (:func:`train_teacher`, under a second).
    dataset : str, optional
        The test images' data set. Default: the checkpoint's ``config["dataset"]`` if it records one, else
        inferred from the teacher's input size (64: digits, 20: synthetic; 784: MNIST or Fashion-MNIST,
        whichever test set the teacher classifies better).
    n_images : int, default 4
        How many images (at most one per class): typical ones — classified correctly with probability
        ≥ 0.9 at the low temperature — whose runner-up class gets the most mass at the high one.
    temperatures : (float, float), default (1, 4)
        The two temperatures compared.
    teacher_epochs : int, default 40
        Epochs when the teacher is trained here.

    Returns
    -------
    matplotlib.figure.Figure
        ``n_images`` rows of two axes: the image, and the soft targets at both temperatures (two
        ``BarContainer`` objects); the legend is the figure's, top right.
    """
    from .. import data

    if isinstance(n_images, bool) or not isinstance(n_images, numbers.Integral) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got n_images={_describe(n_images)}")
    low_T, high_T = _check_temperatures(temperatures)
    model, dataset, _ = _resolve_teacher(teacher, dataset, teacher_epochs)
    x_test, labels_test = data.load(dataset, "test")
    _check_teacher_fits(model, x_test, labels_test, dataset)
    logits = model.forward(x_test, train=False).astype(np.float64)
    chosen = _dark_knowledge_examples(logits, labels_test, low_T, high_T, n_images)
    shape = _image_shape(x_test.shape[1])
    n_classes = logits.shape[1]
    classes = np.arange(n_classes)

    figure = new_figure(6.4, 1.25 * len(chosen) + 0.6)
    axes = figure.subplots(len(chosen), 2, width_ratios=[1.25, 5], squeeze=False)
    for row, index in enumerate(chosen):
        image_ax, bars_ax = axes[row]
        image_ax.imshow(x_test[index].reshape(shape), cmap="gray_r", interpolation="nearest")
        image_ax.set_axis_off()
        label = labels_test[index]
        names = _CLASS_NAMES.get(dataset)
        image_ax.set_title(f"a {label}" if names is None else names[label], fontsize=8)
        for k, (T, colour) in enumerate(((low_T, OKABE_ITO["blue"]), (high_T, OKABE_ITO["vermillion"]))):
            probs = softmax(logits[index], T)
            bars_ax.bar(
                classes + (k - 0.5) * 0.4, probs, 0.4, color=colour, label=rf"$T = {_format_number(T)}$"
            )
        bars_ax.set_ylim(0, 1)
        bars_ax.set_yticks([0, 0.5, 1])
        bars_ax.set_xticks(classes)
        bars_ax.grid(axis="x", visible=False)
        # The true class's tick in bold: everything else on the bar chart is the teacher's dark knowledge.
        bars_ax.get_xticklabels()[labels_test[index]].set_fontweight("bold")
        if row == 0:
            bars_ax.set_title(r"the teacher's soft targets $\mathrm{softmax}(v/T)$", loc="left")
        if row == len(chosen) - 1:
            bars_ax.set_xlabel("class")
        bars_ax.set_ylabel("probability")
    # Above the axes, where no bar can hide under it.
    handles, labels = axes[0][1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=2)
    return figure
