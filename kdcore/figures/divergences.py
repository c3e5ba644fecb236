r"""What the divergence does: a one-peak student fitted to a two-peak teacher by forward KL, reverse KL, JSD_β.

The classes lie on a line, :math:`x_i` from −6 to 6 in steps of 1/6. The teacher's distribution has two
peaks — a Gaussian mixture, :math:`q_i \propto 0.6\,\mathcal N(x_i; -2, 0.6^2) + 0.4\,\mathcal N(x_i; 2, 0.6^2)`,
given as its logits :math:`v_i = \log(\dots)` — and the student can make only one: its logits are
:math:`z_i = -(x_i - \mu)^2/(2\sigma^2)`, so :math:`p = \operatorname{softmax}(z)` is a discretised Gaussian
with two parameters, its *mean* μ and *width* σ. The student is fitted at :math:`T = 1` by each divergence:

* the forward KL, :math:`\mathrm{KL}(q\,\|\,p)`, is mass-covering: it pays wherever the teacher has mass the
  student lacks, so the best single peak spreads over both, with the teacher's mean and variance (for
  logits linear in :math:`(x, x^2)` the optimum matches these two moments exactly, whatever the start);
* the reverse KL, :math:`\mathrm{KL}(p\,\|\,q)`, is mode-seeking: it pays only for student mass where the
  teacher has little, so a narrow start locks onto the peak nearest to it — the lighter one, if that is
  where it began;
* :math:`\mathrm{JSD}_\beta` (GKD's, β the teacher's weight) goes from the first to the second as β goes
  from 0 to 1 (:math:`\mathrm{JSD}_\beta/\beta \to` forward KL, :math:`\mathrm{JSD}_\beta/(1-\beta) \to`
  reverse KL). Being bounded, its penalty for mass in the valley between the peaks is at most about
  :math:`\log(1/(1-\beta))`, so it stays mass-covering until β is close to 1.

The fits use kdcore's exact gradients with respect to the logits (:func:`kdcore.kl_divergence_grad`,
:func:`kdcore.reverse_kl_divergence_grad`, :func:`kdcore.jensen_shannon_divergence_grad`), taken by the
chain rule to (μ, log σ) and followed by :class:`kdcore.optim.Adam` with a cosine schedule: a fixed number of
deterministic steps, no randomness. :func:`one_peak_fits` computes them (a few seconds) and returns a
JSON-ready record, which ``kdcore figures`` saves beside the figure as ``divergence_fits.json``;
:func:`divergence_fits` draws it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._arrays import check_int, check_real
from ..divergences import kl_divergence_grad
from ..mixtures import jensen_shannon_divergence_grad
from ..optim import Adam, CosineLR
from ..reverse_kl import reverse_kl_divergence_grad
from ..softmax import softmax
from .style import OKABE_ITO, _format_number, _marker, _percent, _styled, new_figure, temperature_colour

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "SHOWN_BETAS",
    "SWEEP_BETAS",
    "TWO_PEAK_TEACHER",
    "divergence_fits",
    "fit_one_peak",
    "one_peak_fits",
]

#: The teacher of the figure: a two-peak mixture on the class axis, left peak heavier.
TWO_PEAK_TEACHER = {"weights": (0.6, 0.4), "means": (-2.0, 2.0), "widths": (0.6, 0.6)}

# The class axis: 73 classes from −6 to 6, x = k/6 (exact for the valley's ends ±2/3). Wide enough that no
# fit is cut off at the ends.
_CLASSES = np.arange(-36, 37) / 6

# The start of every fit: narrow, a little right of the valley's centre (nearer the lighter, right peak);
# the reverse KL is also fitted from the mirror image, to show that the start decides the peak.
_START = (0.5, 0.5)
_MIRRORED_START = (-0.5, 0.5)

#: The JSD's β values of the figure's panel (c): dense near 1, where the fit changes its mind.
SWEEP_BETAS = (0.1, 0.5, 0.9, 0.95, 0.97, 0.98, 0.99, 0.999)
#: Those whose fitted distributions panel (b) draws: one far from 1, and the two either side of the jump.
SHOWN_BETAS = (0.5, 0.97, 0.98)


def _teacher_logits(classes: np.ndarray, teacher: Mapping) -> np.ndarray:
    """log of the mixture density at each class (a constant off the teacher's log-probabilities)."""
    weights, means, widths = (
        np.asarray(teacher[key], dtype=np.float64) for key in ("weights", "means", "widths")
    )
    log_parts = (
        np.log(weights)[:, None]
        - np.log(widths)[:, None]
        - 0.5 * ((classes[None, :] - means[:, None]) / widths[:, None]) ** 2
    )
    return np.logaddexp.reduce(log_parts, axis=0)


def _student_logits(classes: np.ndarray, mean: np.ndarray, log_width: np.ndarray) -> np.ndarray:
    """z_i = −(x_i − μ)²/(2σ²) for each row's (μ, log σ): shape (rows, classes)."""
    return -0.5 * ((classes[None, :] - mean[:, None]) / np.exp(log_width)[:, None]) ** 2


def _logit_gradient(
    divergence: str, beta: float | None, student: np.ndarray, teacher: np.ndarray
) -> np.ndarray:
    if divergence == "forward_kl":
        return kl_divergence_grad(student, teacher, 1.0, "none")
    if divergence == "reverse_kl":
        return reverse_kl_divergence_grad(student, teacher, 1.0, "none")
    return jensen_shannon_divergence_grad(student, teacher, 1.0, beta=beta, reduction="none")


def _parameter_gradient(
    classes: np.ndarray, mean: np.ndarray, log_width: np.ndarray, logit_gradient: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The chain rule from ∂L/∂z to (∂L/∂μ, ∂L/∂log σ): ∂z_i/∂μ = (x_i − μ)/σ², ∂z_i/∂log σ = (x_i − μ)²/σ²."""
    offset = classes[None, :] - mean[:, None]
    variance = np.exp(2 * log_width)[:, None]
    return (
        np.sum(logit_gradient * offset / variance, axis=-1),
        np.sum(logit_gradient * offset**2 / variance, axis=-1),
    )


def fit_one_peak(
    divergence: str,
    starts: Sequence[tuple[float, float]],
    *,
    beta: float | None = None,
    classes: Sequence[float] | None = None,
    teacher: Mapping | None = None,
    steps: int = 600,
    lr: float = 0.1,
) -> dict:
    r"""Fit the one-peak student to the two-peak teacher by one divergence, from each start.

    Parameters
    ----------
    divergence : {"forward_kl", "reverse_kl", "jsd"}
        :math:`\mathrm{KL}(q\|p)`, :math:`\mathrm{KL}(p\|q)` or :math:`\mathrm{JSD}_\beta`, all at :math:`T = 1`.
    starts : sequence of (float, float)
        Initial (mean, width) of each fit; all are fitted together, as rows of one batch.
    beta : float, optional
        β in (0, 1) for ``"jsd"`` (the teacher's weight in the mixture); not given otherwise.
    classes : sequence of float, optional
        The class positions :math:`x_i`; default 73 points from −6 to 6.
    teacher : mapping, optional
        ``{"weights", "means", "widths"}`` of the teacher's mixture; default :data:`TWO_PEAK_TEACHER`.
    steps : int, default 600
        Adam steps, the learning rate falling from ``lr`` to ``lr/1000`` on a cosine.
    lr : float, default 0.1
        Initial learning rate, on (μ, log σ).

    Returns
    -------
    dict
        ``"mean"``, ``"width"``: the fitted μ and σ per start (lists); ``"gradient"``: the largest
        :math:`|\partial L/\partial\mu|, |\partial L/\partial\log\sigma|` at the fit, per start (0 at an
        exact stationary point).

    Examples
    --------
    >>> from kdcore.figures.divergences import fit_one_peak
    >>> fit = fit_one_peak("reverse_kl", [(0.5, 0.5), (-0.5, 0.5)], steps=300)
    >>> [round(mean, 2) for mean in fit["mean"]]   # each start locks onto the peak nearest to it
    [2.0, -2.0]
    >>> max(fit["gradient"]) < 1e-5
    True
    """
    if divergence not in ("forward_kl", "reverse_kl", "jsd"):
        raise ValueError(
            f"divergence must be 'forward_kl', 'reverse_kl' or 'jsd', got divergence={divergence!r}"
        )
    if divergence == "jsd":
        beta = check_real(beta, "beta", 0.0, 1.0, open_low=True, open_high=True)
    elif beta is not None:
        raise ValueError(
            f"beta applies to divergence='jsd' only, got beta={beta!r} with divergence={divergence!r}"
        )
    steps = check_int(steps, "steps", 1)
    lr = check_real(lr, "lr", 0.0, open_low=True)
    x = _CLASSES if classes is None else np.asarray(classes, dtype=np.float64)
    start = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(start)) or np.any(start[:, 1] <= 0):
        raise ValueError(f"starts must be (mean, width) pairs with finite mean and width > 0, got {starts!r}")
    target = np.broadcast_to(
        _teacher_logits(x, TWO_PEAK_TEACHER if teacher is None else teacher), (len(start), x.size)
    )

    mean, log_width = start[:, 0].copy(), np.log(start[:, 1])
    optimizer, schedule = Adam(lr=lr), CosineLR(lr, steps, lr / 1000)
    for step in range(steps + 1):
        logit_gradient = _logit_gradient(divergence, beta, _student_logits(x, mean, log_width), target)
        gradients = _parameter_gradient(x, mean, log_width, logit_gradient)
        if step == steps:  # the last evaluation only measures how stationary the fit is
            break
        optimizer.lr = schedule.lr_at(step)
        optimizer.step([mean, log_width], list(gradients))
    return {
        "mean": mean.tolist(),
        "width": np.exp(log_width).tolist(),
        "gradient": np.maximum(np.abs(gradients[0]), np.abs(gradients[1])).tolist(),
    }


def _valley(teacher: Mapping) -> tuple[float, float]:
    """The middle third of the gap between the teacher's two peaks."""
    left, right = sorted(teacher["means"])
    third = (right - left) / 3
    return left + third, right - third


def _mass_between(classes: np.ndarray, probs: np.ndarray, teacher: Mapping) -> float:
    """The probability a distribution puts in the valley (:func:`_valley`, ends included)."""
    low, high = _valley(teacher)
    slack = 1e-9 * (high - low)  # a class on an end counts, whatever the rounding of the two numbers
    inside = (classes >= low - slack) & (classes <= high + slack)
    return float(np.sum(probs[inside]))


def _student_probs(classes: np.ndarray, mean: float, width: float) -> np.ndarray:
    return softmax(_student_logits(classes, np.array([mean]), np.log(np.array([width])))[0])


def one_peak_fits(
    betas: Sequence[float] = SWEEP_BETAS,
    shown: Sequence[float] = SHOWN_BETAS,
    *,
    steps: int = 400,
    lr: float = 0.1,
) -> dict:
    r"""The fits :func:`divergence_fits` draws, as a JSON-ready record (``kdcore figures`` saves it).

    Forward KL and every :math:`\mathrm{JSD}_\beta` from the start (0.5, 0.5) — mean a little right of the
    valley's centre, narrow; the reverse KL from that start and from its mirror image (−0.5, 0.5).

    Parameters
    ----------
    betas : sequence of float, default :data:`SWEEP_BETAS`
        The JSD's β values, each in (0, 1), increasing: panel (c) of the figure.
    shown : sequence of float, default :data:`SHOWN_BETAS`
        Those of ``betas`` whose fitted distributions panel (b) draws.
    steps, lr
        As in :func:`fit_one_peak`.

    Returns
    -------
    dict
        ``"classes"`` (the :math:`x_i`), ``"teacher"`` (the mixture), ``"teacher_logits"``, ``"valley"``
        (the interval whose mass is reported: the middle third between the peaks), ``"teacher_mass_between"``,
        ``"teacher_mean"``, ``"teacher_std"`` (of the teacher's distribution over the classes), ``"steps"``,
        ``"lr"``, ``"shown_betas"`` and ``"fits"``: one entry per fit with ``"divergence"``, ``"beta"``
        (None but for JSD), ``"start"`` (mean, width), ``"mean"``, ``"width"``, ``"gradient"``
        (stationarity, see :func:`fit_one_peak`), ``"mass_between"``, and the fitted distribution's own
        ``"std"`` over the classes.

    Examples
    --------
    >>> from kdcore.figures.divergences import one_peak_fits
    >>> record = one_peak_fits(betas=(0.5,), shown=(0.5,), steps=200)
    >>> [(fit["divergence"], fit["start"][0]) for fit in record["fits"]]
    [('forward_kl', 0.5), ('reverse_kl', 0.5), ('reverse_kl', -0.5), ('jsd', 0.5)]
    >>> round(record["teacher_mass_between"], 3)
    0.018
    """
    betas = [check_real(beta, "betas", 0.0, 1.0, open_low=True, open_high=True) for beta in betas]
    if sorted(betas) != betas or not set(shown) <= set(betas):
        raise ValueError(
            f"betas must increase and hold every shown beta, got betas={betas!r}, shown={shown!r}"
        )
    x, teacher = _CLASSES, TWO_PEAK_TEACHER
    teacher_logits = _teacher_logits(x, teacher)
    teacher_probs = softmax(teacher_logits)
    teacher_mean = float(teacher_probs @ x)
    runs = [("forward_kl", None, [_START]), ("reverse_kl", None, [_START, _MIRRORED_START])]
    runs += [("jsd", beta, [_START]) for beta in betas]
    fits = []
    for divergence, beta, starts in runs:
        fitted = fit_one_peak(divergence, starts, beta=beta, steps=steps, lr=lr)
        for k, start in enumerate(starts):
            mean, width = fitted["mean"][k], fitted["width"][k]
            probs = _student_probs(x, mean, width)
            fits.append(
                {
                    "divergence": divergence,
                    "beta": beta,
                    "start": list(start),
                    "mean": mean,
                    "width": width,
                    "gradient": fitted["gradient"][k],
                    "mass_between": _mass_between(x, probs, teacher),
                    "std": float(np.sqrt(probs @ (x - probs @ x) ** 2)),
                }
            )
    return {
        "classes": x.tolist(),
        "teacher": {key: list(value) for key, value in teacher.items()},
        "teacher_logits": teacher_logits.tolist(),
        "valley": list(_valley(teacher)),
        "teacher_mass_between": _mass_between(x, teacher_probs, teacher),
        "teacher_mean": teacher_mean,
        "teacher_std": float(np.sqrt(teacher_probs @ (x - teacher_mean) ** 2)),
        "steps": steps,
        "lr": lr,
        "shown_betas": [float(beta) for beta in shown],
        "fits": fits,
    }


def _minus(text: str) -> str:
    """A typographic minus in numbers ("−0.41"), leaving hyphens in words alone."""
    return re.sub(r"(?<![\w])-(?=\d)", "−", text)


def _label(fit: Mapping) -> str:
    if fit["divergence"] == "forward_kl":
        return _minus(rf"forward KL$(q\Vert p)$: μ = {fit['mean']:.2f}, σ = {fit['width']:.2f}")
    if fit["divergence"] == "reverse_kl":
        return _minus(
            rf"reverse KL$(p\Vert q)$ from μ = {_format_number(fit['start'][0])}: μ = {fit['mean']:.2f}, "
            f"σ = {fit['width']:.2f}"
        )
    return _minus(
        rf"JSD$_\beta$, β = {_format_number(fit['beta'])}: μ = {fit['mean']:.2f}, σ = {fit['width']:.2f}"
    )


@_styled
def divergence_fits(record: Mapping | None = None) -> Figure:
    r"""A one-peak student fitted to a two-peak teacher: forward KL covers, reverse KL seeks, JSD_β between.

    Lesson: the forward KL spreads the student over both peaks, putting much of its mass in the valley
    where the teacher has almost none; the reverse KL locks onto one peak — the one nearest to where it
    started, not necessarily the heavier; :math:`\mathrm{JSD}_\beta` behaves like the forward KL until β
    is close to 1, then jumps to the reverse KL's peak.

    Parameters
    ----------
    record : mapping, optional
        What :func:`one_peak_fits` returns (``kdcore figures`` saves it as ``divergence_fits.json``);
        default: computed here (about 20 s).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: (a) the teacher, the forward-KL fit and the two reverse-KL fits over the class axis;
        (b) the teacher and the :math:`\mathrm{JSD}_\beta` fits of ``record["shown_betas"]``; (c) the mass
        each fit puts in the valley against β, with the teacher's, the forward and the reverse KL's as lines.

    Examples
    --------
    >>> from kdcore.figures import divergence_fits
    >>> from kdcore.figures.divergences import one_peak_fits
    >>> figure = divergence_fits(one_peak_fits(betas=(0.5, 0.99), shown=(0.99,), steps=50))
    >>> [len(ax.lines) for ax in figure.axes]
    [3, 1, 4]
    """
    record = one_peak_fits() if record is None else record
    x = np.asarray(record["classes"], dtype=np.float64)
    teacher_probs = softmax(np.asarray(record["teacher_logits"], dtype=np.float64))
    fits = record["fits"]
    forward = next(fit for fit in fits if fit["divergence"] == "forward_kl")
    reverse = [fit for fit in fits if fit["divergence"] == "reverse_kl"]
    jsd = [fit for fit in fits if fit["divergence"] == "jsd"]

    def probs_of(fit: Mapping) -> np.ndarray:
        return _student_probs(x, fit["mean"], fit["width"])

    figure = new_figure(12.0, 4.2)
    figure.subplots(1, 3, gridspec_kw={"width_ratios": (1.0, 1.0, 0.8)})
    axes = figure.axes
    densities, sweep = axes[:2], axes[2]
    top = 1.6 * max(teacher_probs.max(), *(probs_of(fit).max() for fit in fits))
    for ax in densities:
        ax.axvspan(*record["valley"], color="#EEEEEE", zorder=0, linewidth=0, label="the valley")
        ax.fill_between(x, teacher_probs, color="#BBBBBB", linewidth=0, label="teacher $q$: two peaks")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(0, top)
        ax.set_xlabel("class position $x_i$")
        ax.set_ylabel("probability")
    densities[0].plot(x, probs_of(forward), color=OKABE_ITO["blue"], label=_label(forward))
    for fit, colour, dash in zip(reverse, ("vermillion", "orange"), ("-", "--"), strict=False):
        densities[0].plot(x, probs_of(fit), color=OKABE_ITO[colour], linestyle=dash, label=_label(fit))
    shown = [fit for fit in jsd if fit["beta"] in record["shown_betas"]]
    for k, fit in enumerate(shown):
        densities[1].plot(
            x,
            probs_of(fit),
            color=temperature_colour(k + 1),
            marker=_marker(k + 1),
            markevery=6,
            label=_label(fit),
        )
    start = _minus(
        f"start μ = {_format_number(forward['start'][0])}, σ = {_format_number(forward['start'][1])}"
    )
    densities[0].set_title("(a) forward KL covers, reverse KL seeks", loc="left")
    densities[1].set_title(r"(b) JSD$_\beta$, β the teacher's weight in $M$", loc="left")

    betas = np.array([fit["beta"] for fit in jsd])
    masses = [fit["mass_between"] for fit in jsd]
    sweep.plot(1 - betas, masses, color=OKABE_ITO["green"], marker="o", label=r"JSD$_\beta$ fit")
    references = (
        (forward["mass_between"], OKABE_ITO["blue"], "--", "forward KL fit"),
        (reverse[0]["mass_between"], OKABE_ITO["vermillion"], "--", "reverse KL fit"),
        (record["teacher_mass_between"], "#888888", ":", "teacher"),
    )
    for level, colour, dash, label in references:
        sweep.axhline(level, color=colour, linestyle=dash, linewidth=1.1, label=label)
    sweep.set_xscale("log")
    sweep.invert_xaxis()  # β grows to the right
    # Ticks named by β itself, placed at 1 − β: the interesting part is close to β = 1.
    sweep.set_xticks(1 - betas, [_format_number(beta) for beta in betas], rotation=90)
    sweep.minorticks_off()
    sweep.set_xlabel(r"β (spaced by $\log(1 - \beta)$)")
    sweep.set_ylabel("mass in the valley")
    sweep.yaxis.set_major_formatter(_percent(0))
    sweep.set_ylim(0, 1.25 * max(forward["mass_between"], *(fit["mass_between"] for fit in jsd)))
    sweep.set_title(r"(c) JSD$_\beta$ fits, from the same start", loc="left")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=7.5, handlelength=2.0)
    figure.suptitle(
        _minus(
            f"A one-peak student $p$ fitted to a two-peak teacher $q$ at T = 1 ({start}; {record['steps']} Adam "
            "steps on kdcore's exact gradients)"
        ),
        x=0.01,
        ha="left",
    )
    return figure
