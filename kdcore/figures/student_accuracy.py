r"""Trained students' test accuracy: against the temperature and :math:`\alpha`, and against their width.

The figures draw records that :mod:`kdcore.sweeps` computes (:func:`~kdcore.sweeps.run_sweep`,
:func:`~kdcore.sweeps.run_capacity`); they train nothing themselves unless asked to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..sweep_file import _validate_sweep, load_sweep
from ..sweeps import run_capacity
from .style import (
    OKABE_ITO,
    STYLE,
    _format_number,
    _marker,
    _percent,
    _percent_shortest,
    _styled,
    new_figure,
    temperature_colour,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["capacity_curve", "sweep_summary", "temperature_sweep"]


@_styled
def temperature_sweep(sweep: Mapping | str | os.PathLike) -> Figure:
    r"""Distilled-student accuracy against :math:`T` for each :math:`\alpha`, and as a heat map.

    Lesson: how much the temperature matters, and where the best :math:`T` lies, for this student and
    data set; compared with the same student trained on the labels alone and with the teacher, with the
    seed-to-seed uncertainty shown and the size of the evaluation set stated. Evaluate on many images
    (:func:`~kdcore.sweeps.run_sweep` with ``folds``): on digits' 451 test images one image is 0.22
    points, as much as most of the differences between temperatures.

    Parameters
    ----------
    sweep : mapping or path
        A sweep record (:func:`~kdcore.sweeps.run_sweep`) or a file written by
        :func:`~kdcore.sweep_file.save_sweep`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes and a colour bar: (a) mean accuracy over the seeds against :math:`T` (log axis), one line
        per :math:`\alpha` labelled ``"distilled, $\alpha = …$"``, then the horizontal lines ``"labels only"``
        and ``"teacher"``; with several seeds, error bars (and a band round the labels-only line) of
        ±1 standard error of the mean over the seeds; (b) a heat map over the (:math:`T`, :math:`\alpha`)
        grid (rows :math:`\alpha`, columns :math:`T`) of the gain over labels only in points, paired by
        seed, annotated with its standard error; its diverging colour scale ends at ± the teacher's lead
        over labels only, so a gain's colour says how much of that lead it closes.
        The title states the evaluation set (its size, cross-validated or not) and what one image is
        worth; the legend is the figure's, below the axes. The numbers are :func:`sweep_summary`'s.

    Examples
    --------
    >>> from kdcore.figures import run_sweep, temperature_sweep, train_teacher
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=3)
    >>> sweep = run_sweep(temperatures=(1.0, 4.0), alphas=(0.5,), seeds=(0,), teacher=teacher,
    ...                   student_hidden=(4,), epochs=1)
    >>> len(temperature_sweep(sweep).axes)
    3
    """
    summary = sweep_summary(sweep)
    temperatures, alphas = summary["temperatures"], summary["alphas"]
    mean, error = summary["mean"], summary["standard_error"]
    n_seeds = summary["n_seeds"]

    figure = new_figure(7.2, 3.6)
    line_ax, heat_ax = figure.subplots(1, 2, width_ratios=[1.2, 1.0])
    for j, alpha in enumerate(alphas):
        colour = temperature_colour(j)
        label = rf"distilled, $\alpha = {_format_number(alpha)}$"
        line_ax.plot(temperatures, mean[:, j], marker=_marker(j), color=colour, label=label)
        if n_seeds > 1:
            line_ax.errorbar(
                temperatures,
                mean[:, j],
                yerr=error[:, j],
                fmt="none",
                ecolor=colour,
                elinewidth=0.8,
                capsize=2,
            )
    baseline, baseline_error = summary["baseline_mean"], summary["baseline_standard_error"]
    line_ax.axhline(baseline, color=OKABE_ITO["black"], linestyle="--", linewidth=1.1, label="labels only")
    if n_seeds > 1:
        line_ax.axhspan(
            baseline - baseline_error, baseline + baseline_error, color="#000000", alpha=0.08, linewidth=0
        )
    line_ax.axhline(
        summary["teacher_accuracy"], color=OKABE_ITO["purple"], linestyle=":", linewidth=1.3, label="teacher"
    )
    line_ax.set_xscale("log", base=2)
    line_ax.set_xticks(temperatures, [_format_number(T) for T in temperatures])
    line_ax.minorticks_off()
    line_ax.set_xlabel(r"temperature $T$")
    line_ax.set_ylabel("student accuracy")
    line_ax.yaxis.set_major_formatter(_percent_shortest())
    seeds = f"mean of {n_seeds} seeds ± s.e." if n_seeds > 1 else "one seed"
    line_ax.set_title(f"(a) accuracy against $T$ ({seeds})", loc="left")
    handles, labels = line_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))

    # (b) The paired gain over labels only (same seed, same folds), in points. The colour scale ends at
    # ± the teacher's lead over labels only: a full colour means the student caught up with the teacher,
    # so a small gain looks small.
    gain, gain_error = 100 * summary["gain"], 100 * summary["gain_standard_error"]
    lead = 100 * max(summary["teacher_accuracy"] - summary["baseline_mean"], np.abs(summary["gain"]).max())
    image = heat_ax.imshow(gain.T, origin="lower", aspect="auto", cmap="PuOr", vmin=-lead, vmax=lead)
    heat_ax.set_xticks(np.arange(len(temperatures)), [_format_number(T) for T in temperatures])
    heat_ax.set_yticks(np.arange(len(alphas)), [_format_number(a) for a in alphas])
    heat_ax.set_xlabel(r"temperature $T$")
    heat_ax.set_ylabel(r"hard-label weight $\alpha$")
    heat_ax.grid(False)
    heat_ax.spines[:].set_visible(False)
    for i in range(len(temperatures)):
        for j in range(len(alphas)):
            # Light text on the dark ends of the diverging map, dark text on its pale middle.
            colour = "white" if abs(gain[i, j]) > 0.6 * lead else "black"
            text = f"{gain[i, j]:+.2f}".replace("-", "−") + (
                f"\n±{gain_error[i, j]:.2f}" if n_seeds > 1 else ""
            )
            heat_ax.text(i, j, text, ha="center", va="center", fontsize=7, color=colour, linespacing=1.1)
    figure.colorbar(image, ax=heat_ax, label="gain (points); ends: the teacher's lead", shrink=0.9)
    heat_ax.set_title("(b) gain over labels only" + (", ± s.e. (paired)" if n_seeds > 1 else ""), loc="left")
    figure.suptitle(
        f"Student {summary['student_sizes']} distilled from teacher {summary['teacher_sizes']} on "
        f"{summary['dataset']}\n{_evaluation_note(summary)}",
        x=0.01,
        ha="left",
        fontsize=STYLE["axes.titlesize"],
    )
    return figure


def _evaluation_note(summary: Mapping) -> str:
    """What each accuracy was measured on and how much one image is worth, for the figure's title."""
    images, folds = summary["images"], summary["folds"]
    if images is None:
        return "evaluated on the test split (size not recorded: a format-1 file)"
    where = (
        f"by {folds}-fold cross-validation on all {images:,} images"
        if folds > 1
        else f"on the test split of {images:,} images"
    )
    return f"evaluated {where}, each once per seed: one image = {100 / images:.2g} points"


def sweep_summary(sweep: Mapping | str | os.PathLike) -> dict:
    r"""The numbers :func:`temperature_sweep` draws, from a sweep record or file, axes sorted.

    Parameters
    ----------
    sweep : mapping or path
        A sweep record or a file written by :func:`~kdcore.sweep_file.save_sweep` (validated either way).

    Returns
    -------
    dict
        ``temperatures`` (a,) and ``alphas`` (b,), ascending; ``accuracy`` (a, b, seeds) reordered to
        match; ``mean`` and ``standard_error`` (a, b) over the seeds (sample standard deviation / √seeds;
        zeros for one seed); ``gain`` and ``gain_standard_error`` (a, b): the same for the paired
        difference distilled − labels only (same seed); ``baseline_mean``, ``baseline_standard_error``, ``teacher_accuracy``;
        ``n_seeds``, ``images`` (the evaluation set's size, None for a format-1 file) and ``folds``;
        ``dataset``, ``student_sizes``, ``teacher_sizes``.

    Examples
    --------
    The sweep behind the gallery's figure (in a source checkout):

    >>> import pathlib, kdcore
    >>> from kdcore.figures import sweep_summary
    >>> summary = sweep_summary(pathlib.Path(kdcore.__file__).parents[1] / "docs/img/temperature_sweep.json")
    >>> summary["temperatures"].tolist(), summary["alphas"].tolist(), summary["mean"].shape
    ([1.0, 2.0, 4.0, 8.0, 16.0], [0.1, 0.5, 0.9], (5, 3))
    >>> summary["images"], summary["folds"], summary["n_seeds"]
    (1797, 4, 5)
    """
    if isinstance(sweep, str | os.PathLike):
        record = load_sweep(sweep)
    else:
        record = _validate_sweep(sweep, "the sweep")
    temperatures = np.asarray(record["temperatures"], dtype=float)
    alphas = np.asarray(record["alphas"], dtype=float)
    t_order, a_order = np.argsort(temperatures), np.argsort(alphas)
    accuracy = np.asarray(record["accuracy"], dtype=float)[t_order][:, a_order]  # (T, alpha, seed)
    baseline = np.asarray(record["baseline_accuracy"], dtype=float)
    evaluation = record["evaluation"] or {"folds": 1, "images": None}
    # Paired by seed: a distilled student and its labels-only twin share the initialisation, the
    # mini-batches and the folds, so their difference is far less noisy than either accuracy.
    gain = accuracy - baseline
    return {
        "temperatures": temperatures[t_order],
        "alphas": alphas[a_order],
        "accuracy": accuracy,
        "mean": accuracy.mean(axis=2),
        "standard_error": _standard_error(accuracy),
        "gain": gain.mean(axis=2),
        "gain_standard_error": _standard_error(gain),
        "baseline_mean": float(baseline.mean()),
        "baseline_standard_error": float(_standard_error(baseline)),
        "teacher_accuracy": float(record["teacher"]["test_accuracy"]),
        "n_seeds": accuracy.shape[2],
        "images": evaluation["images"],
        "folds": evaluation["folds"],
        "dataset": record["dataset"],
        "student_sizes": list(record["student"]["sizes"]),
        "teacher_sizes": list(record["teacher"]["sizes"]),
    }


def _standard_error(values: np.ndarray) -> np.ndarray:
    """Standard error of the mean over the last axis (the seeds); 0 for a single seed."""
    n = values.shape[-1]
    if n == 1:
        return np.zeros(values.shape[:-1])
    return values.std(axis=-1, ddof=1) / np.sqrt(n)


@_styled
def capacity_curve(result: Mapping | None = None, **run_options: Any) -> Figure:
    r"""Student test accuracy against hidden width, trained on the labels alone and distilled.

    Lesson: the blog post's "container and water": a small container (narrow student) cannot hold what the
    data holds and underfits whatever it is taught; as it grows, accuracy rises with diminishing returns
    towards the teacher's, and the teacher's soft targets help it fill the capacity it has.

    Parameters
    ----------
    result : mapping, optional
        What :func:`run_capacity` returned; default: run it with ``run_options``.
    **run_options
        Passed to :func:`run_capacity` when ``result`` is None.

    Returns
    -------
    matplotlib.figure.Figure
        One axis, log-2 width axis: ``lines[0]`` labels only, ``lines[1]`` distilled (means over the
        seeds; shaded: their range), ``lines[2]`` the teacher's accuracy.

    Examples
    --------
    >>> from kdcore.figures import capacity_curve, run_capacity, train_teacher
    >>> teacher = train_teacher("digits", hidden=(16,), epochs=3)
    >>> figure = capacity_curve(run_capacity(widths=(2, 8), teacher=teacher, seeds=(0,), epochs=1))
    >>> [line.get_label().split(" (")[0] for line in figure.axes[0].lines]
    ['labels only', 'distilled', 'teacher [64, 16, 10]']
    """
    if result is None:
        result = run_capacity(**run_options)
    elif run_options:
        raise TypeError("give either result or options for run_capacity, not both")
    widths = np.asarray(result["widths"], dtype=float)
    teacher_accuracy = float(result["teacher_accuracy"])

    figure = new_figure(5.2, 3.4)
    ax = figure.subplots()
    curves = (
        ("labels_only", "labels only (cross-entropy)", OKABE_ITO["black"], "o", "--"),
        (
            "distilled",
            rf"distilled ($T = {_format_number(result['T'])}$, $\alpha = {_format_number(result['alpha'])}$)",
            OKABE_ITO["vermillion"],
            "s",
            "-",
        ),
    )
    for key, label, colour, marker, style in curves:
        values = np.asarray(result[key], dtype=float)
        ax.plot(widths, values.mean(axis=1), marker=marker, linestyle=style, color=colour, label=label)
        if values.shape[1] > 1:
            ax.fill_between(
                widths, values.min(axis=1), values.max(axis=1), color=colour, alpha=0.15, linewidth=0
            )
    teacher_sizes = result.get("teacher_sizes")
    teacher_label = "teacher" if teacher_sizes is None else f"teacher {list(teacher_sizes)}"
    ax.axhline(teacher_accuracy, color=OKABE_ITO["purple"], linestyle=":", linewidth=1.3, label=teacher_label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("student hidden width (one hidden layer)")
    ax.set_ylabel("test accuracy")
    ax.yaxis.set_major_formatter(_percent())
    n_seeds = len(result["seeds"])
    seeds_note = f"mean of {n_seeds} seeds, shaded: range" if n_seeds > 1 else "one seed"
    images = result.get("test_images")
    test_note = "" if images is None else f"{images:,} test images, "
    ax.set_title(f"Container and water\n{result['dataset']}: {test_note}{seeds_note}", loc="left")
    ax.legend(loc="lower right")
    return figure
