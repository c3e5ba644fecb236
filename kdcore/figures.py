r"""Figures of what the temperature does in knowledge distillation, one function per figure.

Every figure function returns a :class:`matplotlib.figure.Figure` (so a notebook can restyle it before
saving) and draws with one house style (:data:`STYLE`): the Okabe–Ito colour-blind-safe palette
(:data:`OKABE_ITO`), mathtext labels, no seaborn. Cool colours mean low temperatures, warm colours high
ones. This is the only kdcore module that imports matplotlib, and it does so lazily, inside the
functions: ``import kdcore`` never needs it.

=============================  ==============================================================================
figure                         the lesson
=============================  ==============================================================================
:func:`temperature_softmax`    raising :math:`T` flattens the softmax and lifts the small probabilities
                               ("dark knowledge") into view, without changing their order
:func:`entropy_vs_temperature` :math:`H(\operatorname{softmax}(v/T))` rises from 0 (one-hot, :math:`T\to 0`)
                               to :math:`\log N` (uniform, :math:`T\to\infty`)
:func:`gradient_scale`         the soft gradient :math:`(p - q)/T` shrinks like :math:`1/T^2`; times
                               :math:`T^2` it stays :math:`O(1)`, the size of the hard-label gradient
:func:`high_temperature_limit` :math:`T^2\,\partial\mathrm{KL}/\partial z \to ((z-\bar z)-(v-\bar v))/N` with
                               an :math:`O(1/T)` error; the paper's :math:`(z - v)/N` needs equal means
:func:`dark_knowledge`         a trained teacher's soft targets on real digits: at :math:`T = 1` one bar,
                               at :math:`T = 4` the look-alike classes
:func:`temperature_sweep`      distilled-student accuracy against :math:`T` and :math:`\alpha`
:func:`capacity_curve`         the "container and water" picture: accuracy against student width,
                               trained on labels alone and distilled
=============================  ==============================================================================

The first four are pure computation on a fixed pair of logit vectors (:data:`EXAMPLE_TEACHER_LOGITS`,
:data:`EXAMPLE_STUDENT_LOGITS`) and take well under a second each. The last three train small
:class:`~kdcore.mlp.MLP` models on scikit-learn's digits with :func:`kdcore.train.fit`, seeded, a few
seconds each; :func:`write_all` shares one teacher between them.

Determinism
-----------
The same inputs give byte-identical files: :func:`save_figure` strips the timestamps and version strings
matplotlib writes by default (PNG ``Software``; SVG ``Date`` and ``Creator``; PDF ``CreationDate``,
``Creator`` and ``Producer``) and fixes ``svg.hashsalt``, which otherwise salts the SVG element ids
with a random number. Training is seeded (:func:`kdcore.train.fit` is bitwise reproducible).

The sweep file
--------------
:func:`run_sweep` returns (and :func:`save_sweep` writes as JSON, :func:`load_sweep` reads and validates)
one dict, format ``"kdcore-sweep"`` version 1:

.. code-block:: text

    format              "kdcore-sweep"
    format_version      1
    kdcore_version      the kdcore that wrote it, e.g. "0.1.0"
    dataset             the data set, e.g. "digits"
    temperatures        [T_1, …, T_a]        distinct, positive, finite
    alphas              [α_1, …, α_b]        distinct, in [0, 1] (weight of the hard-label term)
    seeds               [s_1, …, s_c]        distinct integers ≥ 0 (student initialisation and shuffling)
    accuracy            a × b × c nested list: test accuracy of the student distilled at
                        (temperatures[i], alphas[j]) with seeds[k], each in [0, 1]
    baseline_accuracy   c values: the same student trained on the labels alone, per seed
    teacher             {"sizes": [...], "test_accuracy": float, "epochs": int or null}
    student             {"sizes": [...], "activation": str, "epochs": int, "batch_size": int, "lr": float}

Unknown extra keys are allowed (for forward compatibility); a missing or malformed entry makes
:func:`load_sweep` raise a ``ValueError`` that names the file and the entry.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._arrays import _describe, as_logit_pair, as_logits, check_alpha, check_temperature
from .distillation import logit_mse_grad
from .divergences import kl_divergence_grad, soft_cross_entropy_grad
from .softmax import log_softmax, softmax

if TYPE_CHECKING:  # matplotlib is imported lazily, when a figure is drawn
    from matplotlib.figure import Figure

    from .mlp import MLP

__all__ = [
    "EXAMPLE_STUDENT_LOGITS",
    "EXAMPLE_TEACHER_LOGITS",
    "FIGURES",
    "FORMATS",
    "OKABE_ITO",
    "STYLE",
    "SWEEP_FORMAT",
    "SWEEP_FORMAT_VERSION",
    "Budget",
    "capacity_curve",
    "dark_knowledge",
    "entropy",
    "entropy_vs_temperature",
    "gradient_norms",
    "gradient_scale",
    "high_temperature_errors",
    "high_temperature_limit",
    "load_sweep",
    "run_capacity",
    "run_sweep",
    "save_figure",
    "save_sweep",
    "temperature_softmax",
    "temperature_sweep",
    "train_teacher",
    "write_all",
]

# ------------------------------------------------------------------------------------------------ style

#: The Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"): distinguishable under the common
#: colour-vision deficiencies and in greyscale print. Yellow is kept for completeness but not used on white.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

# Low temperatures cool, high temperatures warm; markers differ too, so colour is never the only cue.
_TEMPERATURE_COLOURS = ("blue", "sky_blue", "green", "orange", "vermillion", "purple", "black")
_MARKERS = ("o", "s", "D", "^", "v", "P", "X")

#: The rcParams every figure is drawn with (applied with ``matplotlib.rc_context``, so the caller's own
#: settings are left alone).
STYLE = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "legend.frameon": False,
    "mathtext.fontset": "dejavusans",
    "axes.prop_cycle": None,  # filled in by _style(): the Okabe–Ito order
    "savefig.dpi": 200,
    "svg.hashsalt": "kdcore",  # SVG element ids from a fixed salt: byte-identical files
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "image.cmap": "cividis",  # perceptually uniform and colour-blind-safe
}

#: The file formats :func:`save_figure` and :func:`write_all` write.
FORMATS = ("png", "svg", "pdf")

# Metadata that would make two runs differ (timestamps) or tie a file to a version: dropped.
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}

#: The figures :func:`write_all` writes, in order; each is saved as ``<name>.<format>``.
FIGURES = (
    "temperature_softmax",
    "entropy_vs_temperature",
    "gradient_scale",
    "high_temperature_limit",
    "dark_knowledge",
    "temperature_sweep",
    "capacity_curve",
)

#: Teacher logits of an imaginary image of a "2" that looks a little like a 7 and a 3 (classes are the
#: digits 0–9). At :math:`T = 1` the "2" takes 95 % of the mass and a "4" gets 2e-5.
EXAMPLE_TEACHER_LOGITS = np.array([-1.0, 1.5, 9.0, 4.5, -2.0, 0.5, -1.5, 5.5, 3.0, -0.5])

#: A half-trained student's logits for the same image: right class, wrong runner-up, and a different
#: mean than the teacher's (4.05 against 1.9), as two independently trained networks have.
EXAMPLE_STUDENT_LOGITS = np.array([3.0, 3.5, 8.0, 4.5, 1.5, 3.5, 2.5, 5.0, 6.5, 2.5])

# Read-only: they are the default arguments of the figure functions, and must stay what the docs show.
EXAMPLE_TEACHER_LOGITS.flags.writeable = False
EXAMPLE_STUDENT_LOGITS.flags.writeable = False


def _matplotlib():
    """Import matplotlib (lazily: only this module needs it) and return it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "kdcore.figures needs matplotlib, which is not installed: pip install 'kdcore[plot]'"
        ) from error
    return matplotlib


def _style() -> dict:
    from cycler import cycler  # a matplotlib dependency

    style = dict(STYLE)
    style["axes.prop_cycle"] = cycler(color=[OKABE_ITO[name] for name in _TEMPERATURE_COLOURS])
    return style


def _figure(width: float, height: float) -> Figure:
    """A new figure on an Agg canvas, outside pyplot (no global state, no "too many figures" warning)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _styled(draw):
    """Run a figure-drawing function inside the house style."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        matplotlib = _matplotlib()
        with matplotlib.rc_context(_style()):
            return draw(*args, **kwargs)

    return wrapper


def _temperature_colour(index: int) -> str:
    return OKABE_ITO[_TEMPERATURE_COLOURS[index % len(_TEMPERATURE_COLOURS)]]


def _percent(decimals: int | None = None):
    """A tick formatter showing fractions in [0, 1] as percentages."""
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=decimals)


def _format_number(value: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": temperatures and weights as a reader writes them."""
    return f"{value:g}"


def save_figure(figure: Figure, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Save ``figure`` to ``path`` deterministically: the same figure gives a byte-identical file.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Any figure (not only kdcore's).
    path : str or os.PathLike
        The file to write; its directory must exist.
    fmt : {"png", "svg", "pdf"}, optional
        Default: the suffix of ``path``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    matplotlib stamps files with the time and its version; both are removed here (see the module
    docstring), and SVG ids are drawn from the fixed salt ``svg.hashsalt = "kdcore"``.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() if fmt is None else fmt
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got fmt={_describe(fmt)}")
    matplotlib = _matplotlib()
    with matplotlib.rc_context({"svg.hashsalt": STYLE["svg.hashsalt"], "svg.fonttype": "path"}):
        figure.savefig(path, format=fmt, dpi=STYLE["savefig.dpi"], metadata=_METADATA[fmt])
    return path


# --------------------------------------------------------------------------------- numbers the figures plot


def _temperatures(temperatures: object, name: str = "temperatures") -> np.ndarray:
    if isinstance(temperatures, numbers.Real):
        temperatures = [temperatures]
    try:
        values = [check_temperature(T) for T in temperatures]  # type: ignore[union-attr]
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from error
    if not values:
        raise ValueError(f"{name} must hold at least one temperature, got {_describe(temperatures)}")
    return np.asarray(values, dtype=np.float64)


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
    for T in _temperatures(temperatures):
        log_probs = log_softmax(logits, T)
        probs = np.exp(log_probs)
        # 0·log 0 = 0: a class with no mass adds nothing. Its log-probability may be −inf, and 0·(−inf) is
        # NaN (with a warning), so the −inf is replaced before multiplying, not after.
        has_mass = probs > 0
        values.append(-np.sum(probs * np.where(has_mass, log_probs, 0.0)))
    return np.asarray(values)


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
    temperatures = _temperatures(temperatures)
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
        for T in _temperatures(temperatures)
    ]
    return np.asarray(errors) / np.linalg.norm(limit)


# ------------------------------------------------------------------------------------- analytic figures


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
    temperatures = _temperatures(temperatures)
    n = logits.size
    names = [str(i) for i in range(n)] if class_names is None else [str(name) for name in class_names]
    if len(names) != n:
        raise ValueError(f"class_names must have {n} entries (one per logit), got {len(names)}")

    figure = _figure(7.0, 2.9)
    bars_ax, log_ax = figure.subplots(1, 2, width_ratios=[1.25, 1.0])
    classes = np.arange(n)
    width = 0.8 / len(temperatures)
    for k, T in enumerate(temperatures):
        probs = softmax(logits, T)
        label = rf"$T = {_format_number(T)}$"
        offset = (k - (len(temperatures) - 1) / 2) * width
        bars_ax.bar(classes + offset, probs, width, color=_temperature_colour(k), label=label)
        log_ax.plot(
            classes, probs, marker=_MARKERS[k % len(_MARKERS)], color=_temperature_colour(k), label=label
        )
    log_ax.axhline(1.0 / n, color=OKABE_ITO["black"], linestyle=":", linewidth=1.0, label=r"uniform $1/N$")
    log_ax.set_yscale("log")
    log_ax.set_ylim(top=3.0)
    # Between the two classes most likely to be far below 1/N at every temperature: the label stays clear.
    gap = int(np.argmin(logits[:-1] + logits[1:]))
    log_ax.text(gap + 0.5, 1.15 / n, r"uniform $1/N$", ha="center", va="bottom", fontsize=8)

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
        np.logspace(np.log10(0.05), 3, 241) if temperatures is None else _temperatures(temperatures)
    )
    marked = _temperatures(marked, "marked")
    values = entropy(logits, temperatures)
    log_n = math.log(logits.size)

    figure = _figure(5.2, 3.2)
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
    temperatures = np.logspace(np.log10(0.5), 3, 200) if temperatures is None else _temperatures(temperatures)
    norms = gradient_norms(student_logits, teacher_logits, temperatures)

    figure = _figure(5.2, 3.4)
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
    ax.set_ylabel("gradient norm w.r.t. the student logits")
    ax.set_title(r"Why the soft loss is multiplied by $T^2$", loc="left")
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
    temperatures = np.logspace(0, 6, 61) if temperatures is None else _temperatures(temperatures)
    centred = high_temperature_errors(student, teacher, temperatures)
    zero_mean = high_temperature_errors(
        student - student.mean(), teacher - teacher.mean(), temperatures, centered=False
    )
    uncentred = high_temperature_errors(student, teacher, temperatures, centered=False)
    gap = float(student.mean() - teacher.mean())

    figure = _figure(5.6, 3.6)
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
    ax.set_title("High-temperature limit: logit matching, with an $O(1/T)$ error", loc="left")
    ax.legend(loc="lower left")
    return figure


# --------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Budget:
    """How much training the data-driven figures do in :func:`write_all` (the defaults: < 1 min on 2 cores).

    Attributes
    ----------
    teacher_hidden : tuple of int
        Hidden widths of the quick digits teacher (used when no checkpoint is given).
    teacher_epochs : int
        Epochs of that teacher (about 99 % test accuracy on digits after 40).
    student_epochs : int
        Epochs of every student of the sweep and the capacity curve.
    sweep_temperatures, sweep_alphas, sweep_seeds
        The grid of :func:`run_sweep` (used when no sweep file is given).
    sweep_student_hidden : tuple of int
        Hidden widths of the sweep's student.
    capacity_widths, capacity_seeds
        The students of :func:`run_capacity`.
    capacity_T, capacity_alpha
        The distillation settings of :func:`run_capacity`.
    """

    teacher_hidden: tuple[int, ...] = (128,)
    teacher_epochs: int = 40
    student_epochs: int = 20
    sweep_temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    sweep_alphas: tuple[float, ...] = (0.1, 0.5, 0.9)
    sweep_seeds: tuple[int, ...] = (0,)
    sweep_student_hidden: tuple[int, ...] = (16,)
    capacity_widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    capacity_seeds: tuple[int, ...] = (0, 1)
    capacity_T: float = 4.0
    capacity_alpha: float = 0.5


_TEACHER_BATCH, _TEACHER_LR = 32, 2e-3
_STUDENT_BATCH, _STUDENT_LR = 64, 1e-2


def _accuracy(model: MLP, x: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == labels))


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
    """
    from . import data
    from .mlp import MLP
    from .optim import Adam
    from .train import fit

    x, labels = data.load(dataset, "train")
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
    if not values or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in values):
        raise ValueError(f"{name} must be a non-empty list of integers ≥ 0, got {_describe(seeds)}")
    return [int(s) for s in values]


def run_sweep(
    dataset: str = "digits",
    temperatures: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    alphas: Sequence[float] = (0.1, 0.5, 0.9),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    teacher: MLP | str | os.PathLike | None = None,
    teacher_epochs: int = 40,
    student_hidden: Sequence[int] = (16,),
    activation: str = "relu",
    epochs: int = 20,
    progress: bool = False,
) -> dict:
    r"""Distil one teacher into a student at every :math:`(T, \alpha)` of a grid; return the sweep record.

    Parameters
    ----------
    dataset : str, default "digits"
        A name :func:`kdcore.data.load` knows; students train on its training split and are scored on its
        test split.
    temperatures : sequence of float, default (1, 2, 4, 8, 16)
        Distillation temperatures.
    alphas : sequence of float, default (0.1, 0.5, 0.9)
        Weights of the hard-label term (:func:`kdcore.distillation_loss`); 0 is pure distillation, and
        Hinton et al. found a small weight best.
    seeds : sequence of int, default (0, 1, 2)
        One student per seed at every grid point (its initialisation and shuffling), and one trained on
        the labels alone (the baseline).
    teacher : MLP, checkpoint path or None
        Default: :func:`train_teacher` on ``dataset`` for ``teacher_epochs``.
    teacher_epochs : int, default 40
        Used only when the teacher is trained here.
    student_hidden : sequence of int, default (16,)
        The student's hidden widths. On digits a width of 16 gains about a point of accuracy from
        distillation at :math:`T \ge 4`.
    activation : {"relu", "tanh"}, default "relu"
        The student's activation.
    epochs : int, default 20
        Epochs of every student (Adam, lr 1e-2, batches of 64).
    progress : bool, default False
        Print one line per trained student to stderr.

    Returns
    -------
    dict
        The sweep record described in the module docstring (JSON-ready: plain lists, floats and ints).
        The default grid costs about ``3 × (15 + 1)`` student runs, 10–20 s on digits.

    Examples
    --------
    >>> from kdcore.figures import run_sweep, train_teacher
    >>> teacher = train_teacher(epochs=2)
    >>> sweep = run_sweep(temperatures=[4.0], alphas=[0.5], seeds=[0], teacher=teacher, epochs=1)
    >>> sweep["format"], len(sweep["accuracy"]), len(sweep["accuracy"][0]), len(sweep["accuracy"][0][0])
    ('kdcore-sweep', 1, 1, 1)
    """
    from . import data
    from ._version import __version__

    temperatures = [float(T) for T in _temperatures(temperatures)]
    alpha_values = [check_alpha(alpha) for alpha in alphas]
    if not alpha_values:
        raise ValueError("alphas must hold at least one weight")
    seeds = _check_seeds(seeds, "seeds")
    teacher_model, dataset, trained_epochs = _resolve_teacher(teacher, dataset, teacher_epochs)
    x, labels = data.load(dataset, "train")
    x_test, labels_test = data.load(dataset, "test")
    _check_teacher_fits(teacher_model, x, labels, dataset)
    # The teacher is fixed: its logits are computed once and handed to every student run.
    teacher_logits = teacher_model.forward(x, train=False)
    sizes = [x.shape[1], *[int(h) for h in student_hidden], teacher_model.sizes[-1]]

    start = time.perf_counter()
    baseline = []
    for seed in seeds:
        student = _train_student(sizes, x, labels, None, 1.0, 1.0, epochs, seed, activation)
        baseline.append(_accuracy(student, x_test, labels_test))
        _log(progress, f"sweep: labels only, seed {seed}: {baseline[-1]:.4f}")
    accuracy = []
    for T in temperatures:
        row = []
        for alpha in alpha_values:
            cell = []
            for seed in seeds:
                student = _train_student(sizes, x, labels, teacher_logits, T, alpha, epochs, seed, activation)
                cell.append(_accuracy(student, x_test, labels_test))
                _log(progress, f"sweep: T={T:g} alpha={alpha:g} seed {seed}: {cell[-1]:.4f}")
            row.append(cell)
        accuracy.append(row)
    _log(progress, f"sweep: {time.perf_counter() - start:.1f} s")

    return {
        "format": SWEEP_FORMAT,
        "format_version": SWEEP_FORMAT_VERSION,
        "kdcore_version": __version__,
        "dataset": dataset,
        "temperatures": temperatures,
        "alphas": alpha_values,
        "seeds": seeds,
        "accuracy": accuracy,
        "baseline_accuracy": baseline,
        "teacher": {
            "sizes": list(teacher_model.sizes),
            "test_accuracy": _accuracy(teacher_model, x_test, labels_test),
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


# ----------------------------------------------------------------------------------------- sweep files

#: The ``format`` entry of a sweep record.
SWEEP_FORMAT = "kdcore-sweep"
#: Bumped when the record changes incompatibly; :func:`load_sweep` refuses other versions.
SWEEP_FORMAT_VERSION = 1


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _validate_sweep(record: object, where: str) -> dict:
    """Check a sweep record entry by entry; raise ValueError naming ``where`` and the entry."""

    def bad(entry: str, why: str) -> ValueError:
        return ValueError(f"{where} is not a valid kdcore sweep: {entry} {why}")

    if not isinstance(record, Mapping):
        raise bad("the top level", f"must be a JSON object, got {type(record).__name__}")
    required = (
        "format",
        "format_version",
        "dataset",
        "temperatures",
        "alphas",
        "seeds",
        "accuracy",
        "baseline_accuracy",
        "teacher",
        "student",
    )
    missing = [key for key in required if key not in record]
    if missing:
        raise bad("the keys", f"{missing} are missing")
    if record["format"] != SWEEP_FORMAT:
        raise bad("'format'", f"must be {SWEEP_FORMAT!r}, got {_describe(record['format'])}")
    if record["format_version"] != SWEEP_FORMAT_VERSION or isinstance(record["format_version"], bool):
        raise bad(
            "'format_version'",
            f"must be {SWEEP_FORMAT_VERSION} (this kdcore reads no other), got {_describe(record['format_version'])}",
        )
    if not isinstance(record["dataset"], str):
        raise bad("'dataset'", f"must be a string, got {_describe(record['dataset'])}")

    def axis(key: str, check) -> list:
        values = record[key]
        if not isinstance(values, list) or not values or not all(check(v) for v in values):
            raise bad(f"{key!r}", f"must be a non-empty list of valid values, got {_describe(values)}")
        if len(set(values)) != len(values):
            raise bad(f"{key!r}", f"must not repeat a value, got {values}")
        return values

    temperatures = axis("temperatures", lambda T: _is_number(T) and T > 0)
    alphas = axis("alphas", lambda a: _is_number(a) and 0 <= a <= 1)
    seeds = axis("seeds", lambda s: isinstance(s, int) and not isinstance(s, bool) and s >= 0)

    def is_accuracy(value: object) -> bool:
        return _is_number(value) and 0 <= value <= 1

    shape = (len(temperatures), len(alphas), len(seeds))
    accuracy = record["accuracy"]
    well_formed = (
        isinstance(accuracy, list)
        and len(accuracy) == shape[0]
        and all(isinstance(row, list) and len(row) == shape[1] for row in accuracy)
        and all(isinstance(cell, list) and len(cell) == shape[2] for row in accuracy for cell in row)
    )
    if not well_formed:
        raise bad(
            "'accuracy'",
            f"must be a nested list of shape {shape} (temperatures × alphas × seeds), got {_describe(accuracy)}",
        )
    if not all(is_accuracy(value) for row in accuracy for cell in row for value in cell):
        raise bad("'accuracy'", "must hold numbers in [0, 1] only")
    baseline = record["baseline_accuracy"]
    if not isinstance(baseline, list) or len(baseline) != shape[2] or not all(map(is_accuracy, baseline)):
        raise bad(
            "'baseline_accuracy'",
            f"must be {shape[2]} numbers in [0, 1] (one per seed), got {_describe(baseline)}",
        )
    teacher, student = record["teacher"], record["student"]
    if not isinstance(teacher, Mapping) or not is_accuracy(teacher.get("test_accuracy")):
        raise bad(
            "'teacher'", f"must be an object with a 'test_accuracy' in [0, 1], got {_describe(teacher)}"
        )
    for name, entry in (("teacher", teacher), ("student", student)):
        sizes = entry.get("sizes") if isinstance(entry, Mapping) else None
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(s, int) and s > 0 for s in sizes)
        ):
            raise bad(
                f"'{name}'",
                f"must be an object whose 'sizes' lists ≥ 2 positive integers, got {_describe(entry)}",
            )
    return dict(record)


def save_sweep(result: Mapping, path: str | os.PathLike) -> Path:
    """Write a sweep record (from :func:`run_sweep`) as JSON, validated first, atomically.

    Parameters
    ----------
    result : mapping
        The record; see the module docstring.
    path : str or os.PathLike
        The file to write. Its directory must exist.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Keys are sorted and the layout fixed, so the same record gives the same bytes. The file is written
    under a temporary name and renamed into place: an interrupted save leaves the old file intact.
    """
    path = Path(path)
    record = _validate_sweep(result, "the sweep to save")
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n"
    # A fresh name opened with "x" (not tempfile.mkstemp, whose files are private, mode 0600): the result
    # gets the permissions the user's umask gives any new file.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_sweep(path: str | os.PathLike) -> dict:
    """Read and validate a sweep file written by :func:`save_sweep` (or ``kdcore sweep``).

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    dict
        The sweep record.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not JSON, or not a valid sweep record (wrong format or version, a missing entry, an
        ``accuracy`` whose shape does not match the grid, a value out of range); the message names the file
        and the entry.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a valid kdcore sweep: not UTF-8 text ({error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a valid kdcore sweep: not JSON ({error})") from error
    return _validate_sweep(record, str(path))


# --------------------------------------------------------------------------------- data-driven figures


# Class names where the classes are not the digits their indices spell.
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
    from . import data

    if isinstance(n_images, bool) or not isinstance(n_images, numbers.Integral) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got n_images={_describe(n_images)}")
    low_T, high_T = _temperatures(temperatures)
    model, dataset, _ = _resolve_teacher(teacher, dataset, teacher_epochs)
    x_test, labels_test = data.load(dataset, "test")
    _check_teacher_fits(model, x_test, labels_test, dataset)
    logits = model.forward(x_test, train=False).astype(np.float64)
    chosen = _dark_knowledge_examples(logits, labels_test, low_T, high_T, n_images)
    shape = _image_shape(x_test.shape[1])
    n_classes = logits.shape[1]
    classes = np.arange(n_classes)

    figure = _figure(6.4, 1.25 * len(chosen) + 0.6)
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

    figure = _figure(7.2, 3.3)
    line_ax, heat_ax = figure.subplots(1, 2, width_ratios=[1.2, 1.0])
    for j, alpha in enumerate(alphas):
        colour = _temperature_colour(j)
        label = rf"distilled, $\alpha = {_format_number(alpha)}$"
        line_ax.plot(temperatures, mean[:, j], marker=_MARKERS[j % len(_MARKERS)], color=colour, label=label)
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
        ``widths``, ``seeds``, ``T``, ``alpha``, ``dataset``, ``teacher_accuracy``, ``n_params`` (per
        width) and ``labels_only`` and ``distilled``: accuracies, one list of ``len(seeds)`` per width.
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
    }


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

    figure = _figure(5.2, 3.4)
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


def write_all(
    out_dir: str | os.PathLike,
    fmt: str = "png",
    checkpoint: str | os.PathLike | None = None,
    sweep_json: str | os.PathLike | None = None,
    *,
    budget: Budget | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write every figure of :data:`FIGURES` to ``out_dir`` (``kdcore figures --out DIR``).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing. Each figure goes to ``<name>.<fmt>``.
    fmt : {"png", "svg", "pdf"}, default "png"
        File format.
    checkpoint : str or os.PathLike, optional
        A teacher checkpoint (:func:`kdcore.checkpoint.save`). It draws :func:`dark_knowledge` (on its own
        data set); when it is a digits model it is also the teacher of the sweep and of the capacity curve.
        Default: a quick digits teacher is trained (under a second) and shared by the three figures.
    sweep_json : str or os.PathLike, optional
        A sweep file (``kdcore sweep``, :func:`save_sweep`) for :func:`temperature_sweep`. Default: a small
        sweep is run here with the ``budget``'s grid (one seed, about 10 s on digits) and saved beside the
        figures as ``temperature_sweep.json``, so the figure can be redrawn or the sweep extended.
    budget : Budget, optional
        How much training the data-driven figures do; default ``Budget()`` (the whole call takes well
        under a minute on 2 cores).
    progress : bool, default False
        Print a line per figure (and per trained model) to stderr.

    Returns
    -------
    list of pathlib.Path
        The files written, in :data:`FIGURES` order, then the sweep JSON if one was computed here.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got fmt={_describe(fmt)}")
    budget = Budget() if budget is None else budget
    # A bad sweep file fails now, not after a minute of drawing and training.
    sweep = None if sweep_json is None else load_sweep(sweep_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    started = time.perf_counter()

    def save(name: str, figure: Figure) -> None:
        written.append(save_figure(figure, out / f"{name}.{fmt}", fmt))
        _log(progress, f"figures: wrote {written[-1]} ({time.perf_counter() - started:.1f} s)")

    save("temperature_softmax", temperature_softmax())
    save("entropy_vs_temperature", entropy_vs_temperature())
    save("gradient_scale", gradient_scale())
    save("high_temperature_limit", high_temperature_limit())

    if checkpoint is not None:
        teacher, dataset, _ = _resolve_teacher(checkpoint, None)
    else:
        teacher = train_teacher("digits", budget.teacher_hidden, budget.teacher_epochs, progress=False)
        dataset = "digits"
    save("dark_knowledge", dark_knowledge(teacher, dataset=dataset))
    # The sweep and the capacity curve are digits experiments (a minute's budget): a teacher for another
    # data set draws the dark-knowledge figure only.
    if dataset != "digits":
        teacher = train_teacher("digits", budget.teacher_hidden, budget.teacher_epochs, progress=False)

    sweep_path = None
    if sweep is None:
        sweep = run_sweep(
            "digits",
            budget.sweep_temperatures,
            budget.sweep_alphas,
            budget.sweep_seeds,
            teacher=teacher,
            student_hidden=budget.sweep_student_hidden,
            epochs=budget.student_epochs,
            progress=progress,
        )
        sweep_path = save_sweep(sweep, out / "temperature_sweep.json")
    save("temperature_sweep", temperature_sweep(sweep))

    capacity = run_capacity(
        budget.capacity_widths,
        dataset="digits",
        teacher=teacher,
        T=budget.capacity_T,
        alpha=budget.capacity_alpha,
        seeds=budget.capacity_seeds,
        epochs=budget.student_epochs,
        progress=progress,
    )
    save("capacity_curve", capacity_curve(capacity))
    if sweep_path is not None:
        written.append(sweep_path)
    return written
