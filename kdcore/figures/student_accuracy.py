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
    _styled,
    new_figure,
    temperature_colour,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["capacity_curve", "temperature_sweep"]


@_styled
def temperature_sweep(sweep: Mapping | str | os.PathLike) -> Figure:
    r"""Distilled-student test accuracy against :math:`T` for each :math:`\alpha`, and as a heat map.

    Lesson: how much the temperature matters, and where the best :math:`T` lies, for this student and
    data set; compared with the same student trained on the labels alone and with the teacher.

    Parameters
    ----------
    sweep : mapping or path
        A sweep record (:func:`run_sweep`) or a file written by :func:`save_sweep`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes and a colour bar: (a) mean accuracy over the seeds against :math:`T` (log axis), one line
        per :math:`\alpha` labelled ``"distilled, $\alpha = …$"``, then the horizontal lines ``"labels only"``
        and ``"teacher"``, with the seeds' range as error bars when there are several; (b) a heat map of
        the same means over the (:math:`T`, :math:`\alpha`) grid (rows :math:`\alpha`, columns :math:`T`),
        annotated in per cent. The legend is the figure's, below the axes.
    """
    if isinstance(sweep, str | os.PathLike):
        record = load_sweep(sweep)
    else:
        record = _validate_sweep(sweep, "the sweep")
    temperatures = np.asarray(record["temperatures"], dtype=float)
    alphas = np.asarray(record["alphas"], dtype=float)
    accuracy = np.asarray(record["accuracy"], dtype=float)  # (T, alpha, seed)
    order = np.argsort(temperatures)
    temperatures, accuracy = temperatures[order], accuracy[order]
    alpha_order = np.argsort(alphas)
    alphas, accuracy = alphas[alpha_order], accuracy[:, alpha_order]
    mean = accuracy.mean(axis=2)
    baseline = np.asarray(record["baseline_accuracy"], dtype=float)
    teacher_accuracy = float(record["teacher"]["test_accuracy"])
    n_seeds = accuracy.shape[2]

    figure = new_figure(7.2, 3.3)
    line_ax, heat_ax = figure.subplots(1, 2, width_ratios=[1.2, 1.0])
    for j, alpha in enumerate(alphas):
        colour = temperature_colour(j)
        label = rf"distilled, $\alpha = {_format_number(alpha)}$"
        line_ax.plot(temperatures, mean[:, j], marker=_marker(j), color=colour, label=label)
        if n_seeds > 1:
            low, high = accuracy[:, j].min(axis=1), accuracy[:, j].max(axis=1)
            line_ax.errorbar(
                temperatures,
                mean[:, j],
                # Clipped at 0: the mean of equal values can differ from them by an ulp.
                yerr=[np.maximum(mean[:, j] - low, 0), np.maximum(high - mean[:, j], 0)],
                fmt="none",
                ecolor=colour,
                elinewidth=0.8,
                capsize=2,
            )
    line_ax.axhline(
        baseline.mean(), color=OKABE_ITO["black"], linestyle="--", linewidth=1.1, label="labels only"
    )
    if n_seeds > 1:
        line_ax.axhspan(baseline.min(), baseline.max(), color="#000000", alpha=0.08, linewidth=0)
    line_ax.axhline(
        teacher_accuracy, color=OKABE_ITO["purple"], linestyle=":", linewidth=1.3, label="teacher"
    )
    line_ax.set_xscale("log", base=2)
    line_ax.set_xticks(temperatures, [_format_number(T) for T in temperatures])
    line_ax.minorticks_off()
    line_ax.set_xlabel(r"temperature $T$")
    line_ax.set_ylabel("student test accuracy")
    line_ax.yaxis.set_major_formatter(_percent(1))
    line_ax.set_title("(a) accuracy against $T$", loc="left")
    handles, labels = line_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))

    image = heat_ax.imshow(mean.T, origin="lower", aspect="auto", cmap="cividis")
    heat_ax.set_xticks(np.arange(len(temperatures)), [_format_number(T) for T in temperatures])
    heat_ax.set_yticks(np.arange(len(alphas)), [_format_number(a) for a in alphas])
    heat_ax.set_xlabel(r"temperature $T$")
    heat_ax.set_ylabel(r"hard-label weight $\alpha$")
    heat_ax.grid(False)
    heat_ax.spines[:].set_visible(False)
    middle = (mean.min() + mean.max()) / 2
    for i in range(len(temperatures)):
        for j in range(len(alphas)):
            # Dark text on the light (high) end of cividis, light text on the dark end.
            colour = "black" if mean[i, j] > middle else "white"
            heat_ax.text(
                i, j, f"{100 * mean[i, j]:.1f}", ha="center", va="center", fontsize=7.5, color=colour
            )
    figure.colorbar(image, ax=heat_ax, label="mean test accuracy", shrink=0.9, format=_percent(1))
    student = record["student"]
    heat_ax.set_title(r"(b) mean accuracy over ($T$, $\alpha$)", loc="left")
    seeds_note = f"mean of {n_seeds} seeds (bars: their range)" if n_seeds > 1 else "one seed"
    figure.suptitle(
        f"Student {student['sizes']} distilled from teacher {record['teacher']['sizes']} "
        f"on {record['dataset']}; {seeds_note}",
        x=0.01,
        ha="left",
        fontsize=STYLE["axes.titlesize"],
    )
    return figure


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
    ax.set_title(f"Container and water ({result['dataset']}; {seeds_note})", loc="left")
    ax.legend(loc="lower right")
    return figure


# ------------------------------------------------------------------------------------------- write_all
