r"""What the temperature does to the soft gradient: the :math:`T^2` factor and the high-temperature limit.

Pure computation on one pair of logit vectors (default :data:`~kdcore.figures.EXAMPLE_STUDENT_LOGITS`,
:data:`~kdcore.figures.EXAMPLE_TEACHER_LOGITS`), well under a second each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import as_logit_pair
from ..distillation import logit_mse_grad
from ..divergences import kl_divergence_grad, soft_cross_entropy_grad
from ..softmax import softmax
from ..sweeps import _check_temperatures
from .style import OKABE_ITO, STYLE, _styled, new_figure
from .temperature import EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["gradient_norms", "gradient_scale", "high_temperature_errors", "high_temperature_limit"]


def gradient_norms(student_logits: object, teacher_logits: object, temperatures: object) -> dict:
    r"""The norms :func:`gradient_scale` plots: the soft gradient with and without Hinton's :math:`T^2`.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (N,)
        Logits :math:`z` and :math:`v`.
    temperatures : sequence of float
        Positive, finite temperatures.

    Returns
    -------
    dict
        ``"soft"``: :math:`\lVert\partial L_\text{soft}/\partial z\rVert = \lVert p - q\rVert/T` at each
        ``T``; ``"soft_t2"``: :math:`T^2` times that; ``"limit"``: its :math:`T\to\infty` value
        :math:`\lVert(z - \bar z) - (v - \bar v)\rVert/N` (a float); ``"hard"``: the norm
        :math:`\lVert\operatorname{softmax}(z) - e_y\rVert` of the hard-label gradient at :math:`T = 1`
        with :math:`y` the teacher's top class (a float). Euclidean norms.

    Examples
    --------
    >>> from kdcore.figures import gradient_norms, EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
    >>> norms = gradient_norms(EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS, [1e3, 1e4])
    >>> round(float(norms["soft"][0] / norms["soft"][1]))  # 10 × the temperature: a 100th of the gradient
    100
    >>> round(float(norms["soft_t2"][1] / norms["limit"]), 4)  # times T², it tends to a constant
    1.0
    """
    student, teacher = as_logit_pair(student_logits, teacher_logits)
    if student.ndim != 1:
        raise ValueError(f"student_logits must be one vector (shape (N,)), got shape {student.shape}")
    temperatures = _check_temperatures(temperatures)
    soft = np.array([np.linalg.norm(soft_cross_entropy_grad(student, teacher, T)) for T in temperatures])
    label = int(np.argmax(teacher))
    hard = softmax(student) - np.eye(student.size)[label]
    return {
        "temperatures": temperatures,
        "soft": soft,
        "soft_t2": soft * temperatures**2,
        # logit_mse_grad is 2d/N; the limit of T²·∂L/∂z is half of it.
        "limit": float(np.linalg.norm(0.5 * logit_mse_grad(student, teacher))),
        "hard": float(np.linalg.norm(hard)),
    }


def high_temperature_errors(
    student_logits: object, teacher_logits: object, temperatures: object, centered: bool = True
) -> np.ndarray:
    r"""Relative error of :math:`T^2\,\partial\mathrm{KL}/\partial z` against its logit-matching limit.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (N,)
        Logits :math:`z` and :math:`v`.
    temperatures : sequence of float
        Positive, finite temperatures.
    centered : bool, default True
        Compare with the general limit :math:`g_\infty = ((z - \bar z) - (v - \bar v))/N`; ``False``
        compares with the paper's zero-mean approximation :math:`(z - v)/N` (times :math:`T^2`).

    Returns
    -------
    numpy.ndarray, shape (len(temperatures),)
        :math:`\lVert T^2\,\partial\mathrm{KL}/\partial z - g_\infty\rVert / \lVert g_\infty\rVert`.

    Notes
    -----
    Centred, the error is :math:`O(1/T)`: a line of slope −1 on log–log axes. Uncentred, it tends to
    :math:`\sqrt N\,|\bar z - \bar v| / \lVert (z - v)\rVert` — a plateau — unless the means are equal.
    Because softmax ignores a common shift, zero-mean logits give exactly the centred curve.

    Examples
    --------
    >>> from kdcore.figures import high_temperature_errors, EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
    >>> z, v = EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
    >>> errors = high_temperature_errors(z, v, [1e3, 1e4])
    >>> round(float(errors[0] / errors[1]), 2)  # ten times the temperature, a tenth of the error
    10.0
    >>> high_temperature_errors(z, v, [1e3, 1e4], centered=False).round(3)  # a plateau
    array([0.761, 0.761])
    """
    student, teacher = as_logit_pair(student_logits, teacher_logits)
    if student.ndim != 1:
        raise ValueError(f"student_logits must be one vector (shape (N,)), got shape {student.shape}")
    limit = 0.5 * logit_mse_grad(student, teacher, centered=centered)
    errors = [
        np.linalg.norm(T * T * kl_divergence_grad(student, teacher, T) - limit)
        for T in _check_temperatures(temperatures)
    ]
    return np.asarray(errors) / np.linalg.norm(limit)


def _logits_note(student: np.ndarray, teacher: np.ndarray) -> str:
    """Two lines naming the logits a figure was computed from: a reader can redo the numbers."""

    def vector(values: np.ndarray) -> str:
        return "(" + ", ".join(f"{value:g}" for value in values).replace("-", "−") + ")"

    return f"student logits z = {vector(student)}\nteacher logits v = {vector(teacher)}, N = {student.size}"


def _title(figure, ax, title: str, student: np.ndarray, teacher: np.ndarray) -> None:
    figure.suptitle(title, x=0.01, ha="left", fontsize=STYLE["axes.titlesize"])
    ax.set_title(_logits_note(student, teacher), loc="left", fontsize=7.5, color="#444444")


@_styled
def gradient_scale(
    student_logits: object = EXAMPLE_STUDENT_LOGITS,
    teacher_logits: object = EXAMPLE_TEACHER_LOGITS,
    temperatures: Sequence[float] | None = None,
) -> Figure:
    r"""The size of the soft gradient against :math:`T`, with and without the :math:`T^2` factor.

    Lesson: :math:`\partial L_\text{soft}/\partial z = (p - q)/T` shrinks like :math:`1/T^2` as the
    temperature grows, so without a correction raising :math:`T` would silently turn the soft term off;
    multiplied by :math:`T^2` (Hinton et al. 2015, §2) it levels off at the logit-matching value and stays
    comparable with the hard-label gradient.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (N,)
        Default :data:`EXAMPLE_STUDENT_LOGITS`, :data:`EXAMPLE_TEACHER_LOGITS`.
    temperatures : sequence of float, optional
        Default 200 log-spaced points from 0.5 to 1000.

    Returns
    -------
    matplotlib.figure.Figure
        One log–log axis; ``lines[0]`` is :math:`\lVert(p-q)/T\rVert`, ``lines[1]`` is :math:`T^2` times it,
        ``lines[2]`` its limit, ``lines[3]`` the hard-label gradient's norm, ``lines[4]`` a :math:`T^{-2}`
        guide (numbers from :func:`gradient_norms`).

    Examples
    --------
    >>> from kdcore.figures import gradient_scale
    >>> len(gradient_scale().axes[0].lines)
    5
    """
    temperatures = (
        np.logspace(np.log10(0.5), 3, 200) if temperatures is None else _check_temperatures(temperatures)
    )
    student, teacher = as_logit_pair(student_logits, teacher_logits)
    norms = gradient_norms(student, teacher, temperatures)

    figure = new_figure(5.2, 3.8)
    ax = figure.subplots()
    ax.plot(
        temperatures,
        norms["soft"],
        color=OKABE_ITO["vermillion"],
        label=r"$\Vert\partial L_\mathrm{soft}/\partial z\Vert = \Vert p - q\Vert/T$",
    )
    ax.plot(
        temperatures,
        norms["soft_t2"],
        color=OKABE_ITO["blue"],
        label=r"$T^2\,\Vert\partial L_\mathrm{soft}/\partial z\Vert$ (Hinton's scaling)",
    )
    ax.axhline(
        norms["limit"],
        color=OKABE_ITO["blue"],
        linestyle="--",
        linewidth=1.0,
        label=r"limit $\Vert(z-\bar z)-(v-\bar v)\Vert/N$",
    )
    ax.axhline(
        norms["hard"],
        color=OKABE_ITO["black"],
        linestyle=":",
        linewidth=1.2,
        label=r"hard-label gradient $\Vert\mathrm{softmax}(z) - e_y\Vert$",
    )
    # A T⁻² guide through the soft curve at the highest temperature.
    anchor = norms["soft"][-1] * temperatures[-1] ** 2
    guide_t = temperatures[temperatures >= 5.0]
    ax.plot(
        guide_t,
        3.0 * anchor / guide_t**2,
        color="#888888",
        linestyle="-.",
        linewidth=1.0,
        label=r"slope $-2$ ($\propto T^{-2}$)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"temperature $T$")
    ax.set_ylabel(r"gradient norm w.r.t. the student logits $z$")
    _title(figure, ax, r"Why the soft loss is multiplied by $T^2$", student, teacher)
    ax.legend(loc="lower left")
    return figure


@_styled
def high_temperature_limit(
    student_logits: object = EXAMPLE_STUDENT_LOGITS,
    teacher_logits: object = EXAMPLE_TEACHER_LOGITS,
    temperatures: Sequence[float] | None = None,
) -> Figure:
    r"""Relative error of :math:`T^2\,\partial\mathrm{KL}/\partial z` against the logit-matching limit, log–log.

    Lesson: at high temperature distillation becomes logit matching with an :math:`O(1/T)` error (slope −1)
    — but the limit is :math:`((z - \bar z) - (v - \bar v))/N`; the paper's :math:`(z - v)/N` is right only
    when the student's and the teacher's logits have the same mean, and otherwise never converges.

    Parameters
    ----------
    student_logits, teacher_logits : array_like, shape (N,)
        Default :data:`EXAMPLE_STUDENT_LOGITS`, :data:`EXAMPLE_TEACHER_LOGITS` (means 4.05 and 1.9).
    temperatures : sequence of float, optional
        Default 61 log-spaced points from 1 to 1e6.

    Returns
    -------
    matplotlib.figure.Figure
        One log–log axis. ``lines[0]``: the given logits against the centred limit; ``lines[1]``: the
        zero-mean copies of the logits against :math:`(z - v)/N` (markers; they fall on ``lines[0]``
        because softmax ignores a common shift); ``lines[2]``: the given logits against
        :math:`(z - v)/N` (a plateau); ``lines[3]``: a slope −1 guide. Numbers from
        :func:`high_temperature_errors`.

    Examples
    --------
    >>> from kdcore.figures import high_temperature_limit
    >>> [line.get_label() for line in high_temperature_limit().axes[0].lines][3]
    'slope $-1$'
    """
    student, teacher = as_logit_pair(student_logits, teacher_logits)
    temperatures = np.logspace(0, 6, 61) if temperatures is None else _check_temperatures(temperatures)
    centred = high_temperature_errors(student, teacher, temperatures)
    zero_mean = high_temperature_errors(
        student - student.mean(), teacher - teacher.mean(), temperatures, centered=False
    )
    uncentred = high_temperature_errors(student, teacher, temperatures, centered=False)
    gap = float(student.mean() - teacher.mean())

    figure = new_figure(5.6, 4.0)
    ax = figure.subplots()
    ax.plot(
        temperatures,
        centred,
        color=OKABE_ITO["blue"],
        label=r"vs $((z-\bar z)-(v-\bar v))/N$: any logits",
    )
    ax.plot(
        temperatures[::4],
        zero_mean[::4],
        "o",
        markerfacecolor="none",
        color=OKABE_ITO["green"],
        label=r"vs $(z-v)/N$: zero-mean logits",
    )
    ax.plot(
        temperatures,
        uncentred,
        color=OKABE_ITO["vermillion"],
        linestyle="--",
        label=rf"vs $(z-v)/N$: means differ by {abs(gap):.3g}",
    )
    # Why it plateaus: the uncentred formula's error tends to the constant vector −(z̄ − v̄)/N · (1, …, 1),
    # a pure shift of all logits' gradients, which softmax (and the student's predictions) ignore.
    ax.annotate(
        "error → $-(\\bar z - \\bar v)\\,\\mathbf{1}/N$: a pure shift along\n"
        "the all-ones direction, which softmax ignores",
        xy=(temperatures[-1], uncentred[-1]),
        xytext=(-4, -6),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=7.5,
        color=OKABE_ITO["vermillion"],
    )
    # Slope −1 guide, a factor 3 above the centred curve at its high end (so the two never overlap).
    guide_t = temperatures[temperatures >= 10.0]
    ax.plot(
        guide_t,
        3.0 * centred[-1] * temperatures[-1] / guide_t,
        color=OKABE_ITO["black"],
        linestyle=":",
        linewidth=1.2,
        label=r"slope $-1$",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"temperature $T$")
    ax.set_ylabel(r"relative error of $T^2\,\partial\mathrm{KL}/\partial z$")
    _title(figure, ax, "High-temperature limit: logit matching, with an $O(1/T)$ error", student, teacher)
    ax.legend(loc="lower left")
    return figure
