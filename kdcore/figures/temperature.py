r"""What the temperature does to one teacher's distribution: the tempered softmax and its entropy.

Pure computation on one logit vector (default :data:`EXAMPLE_TEACHER_LOGITS`), well under a second each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import as_logits
from ..softmax import log_softmax, softmax
from ..sweeps import _check_temperatures
from .style import OKABE_ITO, _format_number, _marker, _styled, new_figure, temperature_colour

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "EXAMPLE_STUDENT_LOGITS",
    "EXAMPLE_TEACHER_LOGITS",
    "entropy",
    "entropy_vs_temperature",
    "temperature_softmax",
]

#: Teacher logits of an imaginary image of a "2" that looks a little like a 7 and a 3 (classes are the
#: digits 0–9). At :math:`T = 1` the "2" takes 95 % of the mass and a "4" gets 2e-5.
EXAMPLE_TEACHER_LOGITS = np.array([-1.0, 1.5, 9.0, 4.5, -2.0, 0.5, -1.5, 5.5, 3.0, -0.5])

#: A half-trained student's logits for the same image: right class, wrong runner-up, and a different
#: mean than the teacher's (4.05 against 1.9), as two independently trained networks have.
EXAMPLE_STUDENT_LOGITS = np.array([3.0, 3.5, 8.0, 4.5, 1.5, 3.5, 2.5, 5.0, 6.5, 2.5])

# Read-only: they are the default arguments of the figure functions, and must stay what the docs show.
EXAMPLE_TEACHER_LOGITS.flags.writeable = False
EXAMPLE_STUDENT_LOGITS.flags.writeable = False


def entropy(logits: object, temperatures: object) -> np.ndarray:
    r"""Entropy :math:`H(\operatorname{softmax}(v/T)) = -\sum_i q_i \log q_i` of one logit vector at each ``T``.

    Parameters
    ----------
    logits : array_like, shape (N,)
        Logits :math:`v`.
    temperatures : float or sequence of float
        Positive, finite temperatures.

    Returns
    -------
    numpy.ndarray, shape (len(temperatures),)
        In nats, between 0 and :math:`\log N`.

    Notes
    -----
    Computed from :func:`kdcore.log_softmax` (no :math:`\log 0`); a class with :math:`q_i = 0` contributes
    :math:`0\cdot\log 0 = 0`. The same number is ``kdcore.soft_cross_entropy(v, v, T)``: the soft loss
    of the teacher against itself is its entropy, since :math:`\mathrm{KL}(q\,\|\,q) = 0`.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.figures import entropy
    >>> entropy([0.0, 0.0, 0.0, 0.0], [1.0, 7.0]).round(6)  # uniform: log 4 at every T
    array([1.386294, 1.386294])
    >>> bool(entropy([5.0, 0.0], 0.01)[0] < 1e-200)  # T -> 0: one-hot
    True
    """
    logits = as_logits(logits, "logits", np.dtype(np.float64))
    if logits.ndim != 1:
        raise ValueError(f"logits must be one vector (shape (N,)), got shape {logits.shape}")
    values = []
    for T in _check_temperatures(temperatures):
        log_probs = log_softmax(logits, T)
        probs = np.exp(log_probs)
        # 0·log 0 = 0: a class with no mass adds nothing. Its log-probability may be −inf, and 0·(−inf) is
        # NaN (with a warning), so the −inf is replaced before multiplying, not after.
        has_mass = probs > 0
        values.append(-np.sum(probs * np.where(has_mass, log_probs, 0.0)))
    return np.asarray(values)


@_styled
def temperature_softmax(
    logits: object = EXAMPLE_TEACHER_LOGITS,
    temperatures: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 20.0),
    class_names: Sequence[str] | None = None,
) -> Figure:
    r"""One logit vector's tempered softmax at several temperatures, on linear and log axes.

    Lesson: raising :math:`T` flattens the distribution and lifts the small probabilities — which classes
    the teacher finds *somewhat* plausible, Hinton's "dark knowledge" — into view; their order never changes.

    Parameters
    ----------
    logits : array_like, shape (N,), default :data:`EXAMPLE_TEACHER_LOGITS`
        The logits :math:`v`.
    temperatures : sequence of float, default (1, 2, 5, 10, 20)
        One bar group / line per temperature.
    class_names : sequence of str, optional
        Tick labels, default ``"0"``, ``"1"``, …

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: (a) grouped bars of :math:`\operatorname{softmax}(v/T)` on a linear axis (one
        ``BarContainer`` per temperature, and the legend), (b) the same probabilities on a log axis (one
        line per temperature, in the same colours, then the uniform level :math:`1/N`).

    Examples
    --------
    >>> from kdcore.figures import temperature_softmax
    >>> figure = temperature_softmax()
    >>> [ax.get_yscale() for ax in figure.axes]
    ['linear', 'log']
    """
    logits = as_logits(logits, "logits", np.dtype(np.float64))
    if logits.ndim != 1:
        raise ValueError(f"logits must be one vector (shape (N,)), got shape {logits.shape}")
    temperatures = _check_temperatures(temperatures)
    n = logits.size
    names = [str(i) for i in range(n)] if class_names is None else [str(name) for name in class_names]
    if len(names) != n:
        raise ValueError(f"class_names must have {n} entries (one per logit), got {len(names)}")

    figure = new_figure(7.0, 2.9)
    bars_ax, log_ax = figure.subplots(1, 2, width_ratios=[1.25, 1.0])
    classes = np.arange(n)
    width = 0.8 / len(temperatures)
    for k, T in enumerate(temperatures):
        probs = softmax(logits, T)
        label = rf"$T = {_format_number(T)}$"
        offset = (k - (len(temperatures) - 1) / 2) * width
        bars_ax.bar(classes + offset, probs, width, color=temperature_colour(k), label=label)
        log_ax.plot(classes, probs, marker=_marker(k), color=temperature_colour(k), label=label)
    log_ax.axhline(1.0 / n, color=OKABE_ITO["black"], linestyle=":", linewidth=1.0, label=r"uniform $1/N$")
    log_ax.set_yscale("log")
    log_ax.set_ylim(top=3.0)
    # Beside the axis (the plot has no empty corner): the marker shape tells the temperatures apart in
    # greyscale, and the uniform level is named.
    log_ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), handlelength=1.8)

    bars_ax.set_title(r"(a) $q = \mathrm{softmax}(v/T)$: higher $T$, flatter $q$", loc="left")
    bars_ax.set_ylabel(r"probability $q_i$")
    bars_ax.set_ylim(0, 1)
    bars_ax.legend(ncols=1, loc="upper right")
    log_ax.set_title("(b) log scale: the small probabilities rise", loc="left")
    log_ax.set_ylabel(r"$q_i$ (log scale)")
    for ax in (bars_ax, log_ax):
        ax.set_xticks(classes, names)
        ax.set_xlabel("class $i$")
        ax.grid(axis="x", visible=False)
    return figure


@_styled
def entropy_vs_temperature(
    logits: object = EXAMPLE_TEACHER_LOGITS,
    temperatures: Sequence[float] | None = None,
    marked: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 20.0),
) -> Figure:
    r"""The entropy :math:`H(\operatorname{softmax}(v/T))` against :math:`T`, with its two limits.

    Lesson: the temperature moves the teacher's distribution continuously from one-hot (:math:`H = 0`,
    :math:`T \to 0`) to uniform (:math:`H = \log N`, :math:`T\to\infty`); the interesting range, where
    the targets carry most information about the classes' similarities, is in between.

    Parameters
    ----------
    logits : array_like, shape (N,), default :data:`EXAMPLE_TEACHER_LOGITS`
        The logits :math:`v`.
    temperatures : sequence of float, optional
        Where the curve is evaluated; default 241 points from 0.05 to 1000, log-spaced.
    marked : sequence of float, default (1, 2, 5, 10, 20)
        Temperatures marked on the curve (those of :func:`temperature_softmax`).

    Returns
    -------
    matplotlib.figure.Figure
        One log-x axis. ``lines[0]`` is the entropy curve; ``lines[1]`` and ``lines[2]`` are the limits
        0 and :math:`\log N`; ``lines[3]`` the marked temperatures.

    Examples
    --------
    >>> import numpy as np
    >>> from kdcore.figures import entropy_vs_temperature
    >>> curve, zero, log_n = entropy_vs_temperature().axes[0].lines[:3]
    >>> bool(np.isclose(log_n.get_ydata()[0], np.log(10)))
    True
    """
    logits = as_logits(logits, "logits", np.dtype(np.float64))
    temperatures = (
        np.logspace(np.log10(0.05), 3, 241) if temperatures is None else _check_temperatures(temperatures)
    )
    marked = _check_temperatures(marked, "marked")
    values = entropy(logits, temperatures)
    log_n = math.log(logits.size)

    figure = new_figure(5.2, 3.2)
    ax = figure.subplots()
    ax.plot(temperatures, values, color=OKABE_ITO["blue"], label=r"$H(q) = -\sum q_i \log q_i$")
    ax.axhline(0.0, color=OKABE_ITO["black"], linestyle="--", linewidth=1.0)
    ax.axhline(log_n, color=OKABE_ITO["vermillion"], linestyle="--", linewidth=1.0)
    ax.plot(marked, entropy(logits, marked), "o", color=OKABE_ITO["orange"], label=r"$T = 1, 2, 5, 10, 20$")
    ax.set_xscale("log")
    ax.set_xlim(temperatures.min(), temperatures.max())
    ax.set_ylim(-0.1 * log_n, 1.12 * log_n)
    ax.text(temperatures.min() * 1.3, 0.03 * log_n, r"$T \to 0$: one-hot, $H = 0$", va="bottom", fontsize=8)
    ax.text(
        temperatures.max() / 1.3,
        log_n * 0.97,
        rf"$T \to \infty$: uniform, $H = \log N = {log_n:.3f}$",
        va="top",
        ha="right",
        fontsize=8,
        color=OKABE_ITO["vermillion"],
    )
    ax.set_xlabel(r"temperature $T$ (log scale)")
    ax.set_ylabel(r"entropy of $\mathrm{softmax}(v/T)$ (nats)")
    ax.set_title(
        rf"The temperature interpolates between one-hot and uniform ($N = {logits.size}$)", loc="left"
    )
    ax.legend(loc="center left")
    return figure
