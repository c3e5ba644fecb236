"""Every number in docs/figures.md's captions is computed here from the data behind its figure.

One mechanism: a *claim* is a phrase of a caption with ``{}`` slots and a function that fills them from the
figure's data — the JSON files ``kdcore figures`` saves beside the PNGs (docs/img/*.json) or the example
logits the analytic figures are drawn from. Two tests hold the captions to the claims:

- each claim, filled with freshly computed numbers, must appear word for word in its figure's **Lesson:**
  paragraph (so a typed or stale number fails);
- once the claims are taken out, no digit may be left in a Lesson paragraph outside ``$…$`` mathematics
  (which holds formulas and the figure's settings, such as :math:`T = 4`): a number with no claim fails.

To change a caption, change its claim here first; to regenerate the data, see docs/figures.md.
"""

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kdcore import figures, softmax

REPO = Path(__file__).resolve().parents[1]
GALLERY = REPO / "docs" / "figures.md"
IMG = REPO / "docs" / "img"
Z, V = figures.EXAMPLE_STUDENT_LOGITS, figures.EXAMPLE_TEACHER_LOGITS


def percent(fraction: float, decimals: int = 0) -> str:
    """0.571 -> "57 %": the gallery's way of writing a fraction."""
    return f"{100 * fraction:.{decimals}f} %"


def number(value: float, decimals: int) -> str:
    """-0.09 -> "−0.09" (a typographic minus, as the prose uses)."""
    return f"{value:.{decimals}f}".replace("-", "−")


@functools.cache
def data(name: str) -> dict:
    return json.loads((IMG / f"{name}.json").read_text())


# ------------------------------------------------------------------------ numbers computed from the data


def example_classes():
    ranked = np.argsort(V)[::-1]
    return int(ranked[0]), int(ranked[1]), int(ranked[2])


def top_class_mass():
    top = int(np.argmax(V))
    return top, percent(softmax(V, 1.0)[top]), percent(softmax(V, 20.0)[top])


def entropies():
    H = figures.entropy(V, [1.0, 5.0])
    return number(H[0], 2), number(H[1], 2), percent(H[1] / np.log(V.size)), number(np.log(V.size), 2)


def scaled_gradient_settles():
    norms = figures.gradient_norms(Z, V, np.logspace(np.log10(0.5), 3, 200))  # the figure's grid
    T, ratio = norms["temperatures"], norms["soft_t2"] / norms["limit"]
    settled = T[np.flatnonzero(np.abs(ratio - 1) >= 0.1)[-1] + 1]  # within 10 % from here on
    peak = int(np.argmax(ratio))
    return percent(ratio[peak] - 1), number(T[peak], 0), number(settled, 0)


def gradient_sizes():
    norms = figures.gradient_norms(Z, V, [1.0])
    return number(norms["limit"], 2), number(norms["hard"], 2)


def fitted_slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def soft_gradient_slope():
    T = np.logspace(2, 3, 20)
    return (number(fitted_slope(T, figures.gradient_norms(Z, V, T)["soft"]), 0),)


def centred_error_slope():
    T = np.logspace(2, 6, 20)
    return (number(fitted_slope(T, figures.high_temperature_errors(Z, V, T)), 0),)


def plateau():
    error = figures.high_temperature_errors(Z, V, [1e6], centered=False)[0]
    return percent(error), number(abs(Z.mean() - V.mean()), 2)


def look_alikes():
    pairs = []
    for example in data("dark_knowledge")["examples"]:
        probs = softmax(np.asarray(example["logits"]), 4.0)
        pairs.append((example["label"], int(np.argsort(probs)[-2])))
    return tuple(value for pair in pairs for value in pair)


def revealed():
    record = data("dark_knowledge")
    low_T, high_T = record["temperatures"]
    at_low, at_high = [], []
    for example in record["examples"]:
        logits = np.asarray(example["logits"])
        look_alike = int(np.argsort(softmax(logits, high_T))[-2])
        at_low.append(softmax(logits, low_T)[look_alike])
        at_high.append(softmax(logits, high_T)[look_alike])
    assert max(at_low) < figures.soft_targets.INVISIBLE  # the rule the caption states
    return percent(figures.soft_targets.INVISIBLE), f"{100 * min(at_high):.0f}", percent(max(at_high))


def teacher_accuracy():
    return (percent(data("dark_knowledge")["teacher_accuracy"]),)


@functools.cache
def sweep():
    return figures.sweep_summary(IMG / "temperature_sweep.json")


def sweep_size():
    s = sweep()
    return s["folds"], f"{s['images']:,}", s["n_seeds"], number(100 / s["images"], 3)


def sweep_student():
    hidden = sweep()["student_sizes"][1:-1]
    assert len(hidden) == 1
    return (hidden[0],)


def digits_test_split():
    pytest.importorskip("sklearn")
    from kdcore import data

    images = len(data.load("digits", "test")[1])
    return images, number(100 / images, 2)


def sweep_accuracies():
    s = sweep()
    return percent(s["baseline_mean"], 1), percent(s["teacher_accuracy"], 1)


def best_cell():
    s = sweep()
    i, j = np.unravel_index(np.argmax(s["gain"]), s["gain"].shape)
    lead = s["teacher_accuracy"] - s["baseline_mean"]
    return (
        number(100 * s["gain"][i, j], 2),
        number(100 * s["gain_standard_error"][i, j], 2),
        f"{s['temperatures'][i]:g}",
        f"{s['alphas'][j]:g}",
        percent(s["gain"][i, j] / lead),
        number(100 * lead, 1),
    )


def warm_gains():
    s = sweep()
    chosen = s["gain"][np.ix_(s["temperatures"] >= 4, s["alphas"] <= 0.5)]
    return number(100 * chosen.min(), 2), number(100 * chosen.max(), 2)


def cool_gains():
    s = sweep()
    return (number(100 * np.abs(s["gain"][s["temperatures"] <= 2]).max(), 2),)


def label_heavy_gains():
    s = sweep()
    return (number(100 * s["gain"][:, s["alphas"] == 0.9].max(), 2),)


def capacity_width_2():
    record = data("capacity_curve")
    at = record["widths"].index(2)
    return percent(np.mean(record["distilled"][at])), percent(np.mean(record["labels_only"][at]))


def narrow_widths():
    record = data("capacity_curve")
    labels_only = np.mean(record["labels_only"], axis=1)
    narrow = [w for w, a in zip(record["widths"], labels_only, strict=True) if a < 0.8]
    assert narrow == record["widths"][: len(narrow)]  # the narrow ones are the first ones
    return tuple(narrow)


def wide_enough():
    record = data("capacity_curve")
    widths = np.asarray(record["widths"])
    means = np.minimum(np.mean(record["labels_only"], axis=1), np.mean(record["distilled"], axis=1))
    close = (record["teacher_accuracy"] - means) < 0.025  # both curves within 2.5 points of the teacher
    first = int(np.flatnonzero(~close)[-1]) + 1  # from here on, every width is that close
    return int(widths[first]), number(100 * (record["teacher_accuracy"] - means[first:]).max(), 1)


def divergence_teacher():
    teacher = data("divergence_fits")["teacher"]
    means, weights = teacher["means"], teacher["weights"]
    return number(means[0], 0), number(means[1], 0), percent(weights[0]), percent(weights[1])


def fit_of(divergence, start=None):
    return next(
        fit
        for fit in data("divergence_fits")["fits"]
        if fit["divergence"] == divergence and (start is None or fit["start"][0] == start)
    )


def moment_matching():
    # The forward KL's gradient in (μ, log σ) is (E_p − E_q)[(x − μ), (x − μ)²]/σ²: at a stationary point the
    # fit has the teacher's first two moments exactly. The saved fit is stationary to its stored gradient.
    record = data("divergence_fits")
    fit, x = fit_of("forward_kl"), np.asarray(record["classes"])
    probs = softmax(-0.5 * ((x - fit["mean"]) / fit["width"]) ** 2)
    mean = float(probs @ x)
    reached = 10 * fit["width"] ** 2 * fit["gradient"]
    assert abs(mean - record["teacher_mean"]) <= reached < 1e-3
    assert abs(np.sqrt(probs @ (x - mean) ** 2) - record["teacher_std"]) <= reached
    return number(record["teacher_mean"], 2), number(record["teacher_std"], 2)


def forward_valley():
    record = data("divergence_fits")
    return percent(fit_of("forward_kl")["mass_between"]), percent(record["teacher_mass_between"])


def reverse_locks():
    record = data("divergence_fits")
    teacher = record["teacher"]
    reverse = [fit for fit in record["fits"] if fit["divergence"] == "reverse_kl"]
    assert [fit["start"][0] for fit in reverse] == [0.5, -0.5]
    for fit in reverse:  # each locks onto the peak nearest its start
        nearest = min(teacher["means"], key=lambda peak: abs(peak - fit["start"][0]))
        assert abs(fit["mean"] - nearest) < 0.05
    lighter = teacher["means"][int(np.argmin(teacher["weights"]))]
    assert abs(reverse[0]["mean"] - lighter) < 0.05  # the caption: "the lighter one"
    masses = {percent(fit["mass_between"]) for fit in reverse}
    assert len(masses) == 1
    return (
        f"{reverse[0]['start'][0]:g}",
        number(reverse[0]["mean"], 2),
        f"{reverse[1]['start'][0]:g}",
        number(reverse[1]["mean"], 2),
        masses.pop(),
    )


def jsd_switch():
    record = data("divergence_fits")
    jsd = [fit for fit in record["fits"] if fit["divergence"] == "jsd"]
    middle = (fit_of("forward_kl")["mass_between"] + fit_of("reverse_kl", 0.5)["mass_between"]) / 2
    covering = [fit["mass_between"] > middle for fit in jsd]
    switch = covering.index(False)
    assert all(covering[:switch]) and not any(covering[switch:])  # one jump, no way back
    return f"{jsd[switch - 1]['beta']:g}", f"{jsd[switch]['beta']:g}"


# ------------------------------------------------------------------------------------------- the claims


@dataclass(frozen=True)
class Claim:
    figure: str
    template: str
    values: Callable[[], tuple]

    def text(self) -> str:
        return self.template.format(*self.values())


CLAIMS = [
    Claim("temperature_softmax", 'an imaginary "{}" that looks a little like a {} and a {}', example_classes),
    Claim(
        "temperature_softmax", 'the "{}" holds {} of the mass at $T = 1$ and {} at $T = 20$', top_class_mass
    ),
    Claim(
        "entropy_vs_temperature",
        "For these logits it is {} nats at $T = 1$ and {} at $T = 5$, already {} of the maximum $\\log 10 = {}$",
        entropies,
    ),
    Claim("gradient_scale", "shrinks like $1/T^2$ (fitted slope {} above $T = 100$)", soft_gradient_slope),
    Claim(
        "gradient_scale",
        "it first overshoots (by {} at $T \\approx {}$) and is within 10 % of its limit only from "
        "$T \\approx {}$ on",
        scaled_gradient_settles,
    ),
    Claim(
        "gradient_scale", "levels off at {}, the same order as the hard-label gradient's {}", gradient_sizes
    ),
    Claim(
        "high_temperature_limit", "(the blue line: fitted slope {} from $T = 100$ on)", centred_error_slope
    ),
    Claim("high_temperature_limit", "a plateau at {} error here, where the means differ by {}", plateau),
    Claim("dark_knowledge", "a good teacher (here {} test accuracy)", teacher_accuracy),
    Claim(
        "dark_knowledge", "this {} resembles a {}, this {} a {}, this {} a {} and this {} a {}", look_alikes
    ),
    Claim(
        "dark_knowledge",
        "whose runner-up class gets less than {} at $T = 1$ (invisible on a linear axis) and {}–{} at $T = 4$",
        revealed,
    ),
    Claim(
        "temperature_sweep",
        "{}-fold cross-validation: each of the {} images is tested once per seed, {} seeds, so one image is "
        "{} points",
        sweep_size,
    ),
    Claim("temperature_sweep", "for this student (one hidden layer of {} units)", sweep_student),
    Claim("temperature_sweep", "labels alone reach {} and the teacher {}", sweep_accuracies),
    Claim(
        "temperature_sweep", "on digits' {}-image test split one image is worth {} points", digits_test_split
    ),
    Claim(
        "temperature_sweep",
        "the best cell gains {} ± {} points ($T = {}$, $\\alpha = {}$): {} of the teacher's {}-point lead",
        best_cell,
    ),
    Claim(
        "temperature_sweep", "at $T \\ge 4$ with $\\alpha \\le 0.5$ the gain is {} to {} points", warm_gains
    ),
    Claim("temperature_sweep", "at $T \\le 2$ every gain lies within ±{} points", cool_gains),
    Claim("temperature_sweep", "with $\\alpha = 0.9$ none exceeds {} points", label_heavy_gains),
    Claim("capacity_curve", "with {} or {} hidden units it cannot hold what the data holds", narrow_widths),
    Claim("capacity_curve", "({} against {} at width 2)", capacity_width_2),
    Claim(
        "capacity_curve",
        "From {} units on the container is big enough: both curves stay within {} points of the teacher",
        wide_enough,
    ),
    Claim("divergence_fits", "two peaks, at {} and {}, weighted {} and {}", divergence_teacher),
    Claim(
        "divergence_fits",
        "its fit has exactly the teacher's mean and standard deviation over the classes ({} and {})",
        moment_matching,
    ),
    Claim(
        "divergence_fits",
        "puts {} of its mass in the valley between the peaks, where the teacher has {}",
        forward_valley,
    ),
    Claim(
        "divergence_fits",
        "from $\\mu = {}$ it locks onto the peak at {} — the lighter one, because it is nearer — and from "
        "$\\mu = {}$ onto the one at {}, each with {} in the valley",
        reverse_locks,
    ),
    Claim(
        "divergence_fits",
        "it stays with the forward KL's broad fit up to β = {} and jumps to the reverse KL's peak from β = {} on",
        jsd_switch,
    ),
]


def lessons() -> dict[str, str]:
    """Each figure's **Lesson:** paragraph (whitespace collapsed), keyed by the figure's name."""
    sections = re.split(r"^## \d+\. `(\w+)`$", GALLERY.read_text(), flags=re.M)
    found = {}
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        paragraph = re.search(r"\*\*Lesson:\*\*(.*?)(?:\n\n|\Z)", body, flags=re.S)
        assert paragraph, f"docs/figures.md: the section of {name} has no **Lesson:** paragraph"
        found[name] = " ".join(paragraph.group(1).split())
    return found


def test_every_figure_has_a_lesson():
    assert list(lessons()) == list(figures.FIGURES)


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c.figure}-{i}" for i, c in enumerate(CLAIMS)])
def test_claim_matches_the_data(claim):
    lesson = lessons()[claim.figure]
    assert claim.text() in lesson, f"docs/figures.md, {claim.figure}: expected «{claim.text()}» in «{lesson}»"


@pytest.mark.parametrize("figure", figures.FIGURES)
def test_no_number_without_a_claim(figure):
    lesson = lessons()[figure]
    for claim in CLAIMS:
        if claim.figure == figure:
            lesson = lesson.replace(claim.text(), "")
    prose = re.sub(r"\$[^$]*\$", "", lesson)  # formulas and settings ($T = 4$, $\log N$) are not data
    assert not re.search(r"\d", prose), f"docs/figures.md, {figure}: a number without a claim in «{prose}»"


def test_the_others_rise_and_keep_their_rank():
    # Not a number, but a claim of the dark_knowledge caption all the same: from T = 1 to T = 4 every class
    # but the top one gains probability, and no two classes swap places.
    record = data("dark_knowledge")
    low_T, high_T = record["temperatures"]
    for example in record["examples"]:
        logits = np.asarray(example["logits"])
        low, high = softmax(logits, low_T), softmax(logits, high_T)
        others = np.arange(logits.size) != np.argmax(logits)
        assert np.all(high[others] > low[others]) and high[~others] < low[~others]
        assert np.array_equal(np.argsort(low, kind="stable"), np.argsort(high, kind="stable"))
    assert "every class but the top one rises, and none changes rank" in lessons()["dark_knowledge"]
