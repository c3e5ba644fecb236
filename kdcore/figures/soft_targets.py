r"""A trained teacher's soft targets on real test images: the "dark knowledge" the temperature reveals."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import _describe, check_int
from ..softmax import softmax
from ..sweeps import _check_teacher_fits, _check_temperatures, _resolve_teacher
from ..train import _accuracy
from .style import OKABE_ITO, _format_number, _styled, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..mlp import MLP

__all__ = ["INVISIBLE", "dark_knowledge", "dark_knowledge_examples", "soft_target_examples"]

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


#: Below this probability a bar is invisible on a linear axis from 0 to 1 (under 1 % of its height, about
#: a pixel on a slide): the rule of :func:`dark_knowledge_examples` keeps images whose runner-up is there.
INVISIBLE = 0.01


def dark_knowledge_examples(
    logits: np.ndarray, labels: np.ndarray, temperatures: tuple[float, float] = (1.0, 4.0), n_images: int = 4
) -> list[int]:
    r"""Images whose look-alike class is hidden at the low temperature and revealed at the high one.

    The rule: among the images the teacher classifies correctly, keep those whose runner-up class gets
    less than :data:`INVISIBLE` (1 %) at the low temperature — there the soft target is, to the eye and
    nearly to the student, the label — and rank them by the runner-up's probability at the high
    temperature. Take the best image of each true class, best first, at most ``n_images``.

    Parameters
    ----------
    logits : numpy.ndarray, shape (B, N)
        The teacher's logits.
    labels : numpy.ndarray, shape (B,)
        True classes.
    temperatures : (float, float), default (1, 4)
        The low and the high temperature.
    n_images : int, default 4
        At most this many images, one per class.

    Returns
    -------
    list of int
        Row indices into ``logits``; fewer than ``n_images`` when fewer classes have such an image.

    Raises
    ------
    ValueError
        When no image qualifies (a teacher that is never that sure of itself has nothing hidden to reveal).

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.figures.soft_targets import dark_knowledge_examples
    >>> logits = np.array([[9.0, 3.0, 0.0],    # runner-up 0.2 % at T = 1, 19 % at T = 4: chosen
    ...                    [9.0, 7.0, 0.0],    # runner-up 12 % at T = 1: already visible
    ...                    [0.0, 9.0, 1.0]])   # runner-up 0.03 % at T = 1, 11 % at T = 4
    >>> dark_knowledge_examples(logits, np.array([0, 0, 1]))
    [0, 2]
    """
    low_T, high_T = temperatures
    correct = np.argmax(logits, axis=1) == labels
    runner_up_low = np.sort(softmax(logits, low_T), axis=1)[:, -2]
    runner_up_high = np.sort(softmax(logits, high_T), axis=1)[:, -2]
    candidates = np.flatnonzero(correct & (runner_up_low < INVISIBLE))
    if candidates.size == 0:
        raise ValueError(
            f"no image is classified correctly with its runner-up class below {INVISIBLE:.0%} at "
            f"T = {low_T:g}: this teacher has no hidden look-alike to reveal"
        )
    chosen: list[int] = []
    for index in candidates[np.argsort(-runner_up_high[candidates], kind="stable")]:
        if all(labels[index] != labels[other] for other in chosen):
            chosen.append(int(index))
        if len(chosen) == n_images:
            break
    return chosen


def soft_target_examples(
    teacher: MLP | str | os.PathLike | None = None,
    *,
    dataset: str | None = None,
    n_images: int = 4,
    temperatures: tuple[float, float] = (1.0, 4.0),
    teacher_epochs: int = 40,
) -> dict:
    r"""What :func:`dark_knowledge` draws: a teacher's logits for the test images its rule picks.

    Parameters are :func:`dark_knowledge`'s (without the record).

    Returns
    -------
    dict
        JSON-ready: ``dataset``, ``temperatures`` ([low, high]), ``teacher_sizes``, ``teacher_accuracy``
        (on the whole test split), ``image_shape`` and ``examples``: one ``{"index", "label", "image",
        "logits"}`` per image chosen by :func:`dark_knowledge_examples` (index into the test split;
        pixels; the teacher's logits, float64).

    Examples
    --------
    >>> from kdcore.figures import soft_target_examples, train_teacher
    >>> teacher = train_teacher("digits", hidden=(32,), epochs=10)
    >>> record = soft_target_examples(teacher, dataset="digits", n_images=2)
    >>> record["temperatures"], record["image_shape"], len(record["examples"])
    ([1.0, 4.0], [8, 8], 2)
    >>> sorted(record["examples"][0])
    ['image', 'index', 'label', 'logits']
    """
    from .. import data

    check_int(n_images, "n_images", 1)
    low_T, high_T = _check_temperatures(temperatures)
    if not low_T < high_T:
        raise ValueError(f"temperatures must be (low, high) with low < high, got {_describe(temperatures)}")
    model, dataset, _ = _resolve_teacher(teacher, dataset, teacher_epochs)
    x_test, labels_test = data.load(dataset, "test")
    _check_teacher_fits(model, x_test, labels_test, dataset)
    logits = model.forward(x_test, train=False).astype(np.float64)
    chosen = dark_knowledge_examples(logits, labels_test, (low_T, high_T), n_images)
    return {
        "dataset": dataset,
        "temperatures": [float(low_T), float(high_T)],
        "teacher_sizes": list(model.sizes),
        "teacher_accuracy": _accuracy(model, x_test, labels_test),
        "image_shape": list(_image_shape(x_test.shape[1])),
        "examples": [
            {
                "index": index,
                "label": int(labels_test[index]),
                "image": x_test[index].astype(np.float64).tolist(),
                "logits": logits[index].tolist(),
            }
            for index in chosen
        ],
    }


@_styled
def dark_knowledge(
    teacher: MLP | str | os.PathLike | Mapping | None = None,
    *,
    dataset: str | None = None,
    n_images: int = 4,
    temperatures: tuple[float, float] = (1.0, 4.0),
    teacher_epochs: int = 40,
) -> Figure:
    r"""A trained teacher's soft targets for a few real test images, at a low and a high temperature.

    Lesson: at :math:`T = 1` a good teacher puts nearly all its mass on one class, and on a linear axis
    (what a student trained with these targets feels) the targets are the label; at :math:`T = 4` the
    look-alike class appears — which other digit this particular image resembles — and that is what the
    student learns from. The log axis shows where it came from: every class but the top one rises, none changes rank.

    Parameters
    ----------
    teacher : MLP, checkpoint path, record or None
        The teacher; a path is read with :func:`kdcore.checkpoint.load`. Default: a quick digits teacher
        (:func:`~kdcore.sweeps.train_teacher`, under a second). A mapping is a record of
        :func:`soft_target_examples` (as ``kdcore figures`` saves beside the figure) and is drawn as it
        is; the other arguments are then not used.
    dataset : str, optional
        The test images' data set. Default: the checkpoint's ``config["dataset"]`` if it records one, else
        inferred from the teacher's input size (64: digits, 20: synthetic; 784: MNIST or Fashion-MNIST,
        whichever test set the teacher classifies better).
    n_images : int, default 4
        How many images, chosen by :func:`dark_knowledge_examples` (one per class, look-alike below 1 %
        at the low temperature, as high as possible at the high one).
    temperatures : (float, float), default (1, 4)
        The two temperatures compared.
    teacher_epochs : int, default 40
        Epochs when the teacher is trained here.

    Returns
    -------
    matplotlib.figure.Figure
        One row per image of three axes: the image; the soft targets at both temperatures on a linear
        axis (two ``BarContainer`` objects, low then high temperature), with the runner-up annotated; the
        same on a log axis. The legend is the figure's, top right.

    Examples
    --------
    From a record (as ``kdcore figures`` saves it in ``dark_knowledge.json``): an image and its soft targets
    on a linear and a log axis, per example.

    >>> from kdcore.figures import dark_knowledge, soft_target_examples, train_teacher
    >>> teacher = train_teacher("digits", hidden=(32,), epochs=10)
    >>> figure = dark_knowledge(soft_target_examples(teacher, dataset="digits", n_images=2))
    >>> len(figure.axes)
    6
    """
    if isinstance(teacher, Mapping):
        record = teacher
    else:
        record = soft_target_examples(
            teacher,
            dataset=dataset,
            n_images=n_images,
            temperatures=temperatures,
            teacher_epochs=teacher_epochs,
        )
    try:
        low_T, high_T = record["temperatures"]
        examples, shape, dataset = record["examples"], tuple(record["image_shape"]), record["dataset"]
        logits = np.array([example["logits"] for example in examples], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a record of soft_target_examples: {error!r}") from error
    classes = np.arange(logits.shape[1])
    names = _CLASS_NAMES.get(dataset, [str(c) for c in classes])
    temperature_colours = ((low_T, OKABE_ITO["blue"]), (high_T, OKABE_ITO["vermillion"]))

    figure = new_figure(7.6, 1.3 * len(examples) + 0.75)
    axes = figure.subplots(len(examples), 3, width_ratios=[1.0, 4.2, 4.2], squeeze=False)
    for row, example in enumerate(examples):
        image_ax, linear_ax, log_ax = axes[row]
        label = int(example["label"])
        image = np.asarray(example["image"], dtype=np.float64).reshape(shape)
        image_ax.imshow(image, cmap="gray_r", interpolation="nearest")
        image_ax.set_axis_off()
        image_ax.set_title(f"a {names[label]}" if dataset not in _CLASS_NAMES else names[label], fontsize=8)
        probs = {T: softmax(logits[row], T) for T, _ in temperature_colours}
        for ax in (linear_ax, log_ax):
            for k, (T, colour) in enumerate(temperature_colours):
                ax.bar(
                    classes + (k - 0.5) * 0.4,
                    probs[T],
                    0.4,
                    color=colour,
                    label=rf"$T = {_format_number(T)}$",
                )
            ax.set_xticks(classes)
            ax.grid(axis="x", visible=False)
            # The true class's tick in bold: everything else on the chart is the teacher's dark knowledge.
            ax.get_xticklabels()[label].set_fontweight("bold")
        linear_ax.set_ylim(0, 1)
        linear_ax.set_yticks([0, 0.5, 1])
        log_ax.set_yscale("log")
        log_ax.set_ylim(1e-4, 1.5)
        log_ax.set_yticks([1e-4, 1e-2, 1])
        # Name the look-alike where it appears: "like a 7: 0.4% → 21%". Text kept inside the axis at the ends.
        look_alike = int(np.argsort(probs[high_T])[-2])
        side = "left" if look_alike < 2 else "right" if look_alike > len(classes) - 3 else "center"
        linear_ax.annotate(
            f"like a {names[look_alike]}: {probs[low_T][look_alike]:.1%} → {probs[high_T][look_alike]:.0%}",
            xy=(look_alike + 0.2, probs[high_T][look_alike]),
            xytext=(0, 12),
            textcoords="offset points",
            ha=side,
            fontsize=7.5,
            arrowprops={"arrowstyle": "-", "color": "#666666", "linewidth": 0.6},
        )
        if row == 0:
            linear_ax.set_title("soft targets, linear axis: the look-alike appears", loc="left")
            log_ax.set_title("log axis: the others rise, none changes rank", loc="left")
        if row == len(examples) - 1:
            linear_ax.set_xlabel("class")
            log_ax.set_xlabel("class")
        linear_ax.set_ylabel(r"$\mathrm{softmax}(v/T)$")
    # Above the axes, where no bar can hide under it.
    handles, labels = axes[0][1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper right", ncols=2)
    return figure
