"""kdcore.figures.divergences: the one-peak fits are right (stationary, moment-matching, mode-locking) and drawn.

The fits saved in docs/img/divergence_fits.json, whose numbers docs/figures.md quotes, are checked here
independently of the optimiser that made them: by finite differences of the divergences' *values* at the
saved parameters (a stationary point has a zero derivative), and by recomputing the cheap fits bit for bit.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import kdcore
from kdcore.figures import divergences
from kdcore.figures.divergences import TWO_PEAK_TEACHER, fit_one_peak, one_peak_fits
from kdcore.gradcheck import check_gradient

REPO = Path(__file__).resolve().parents[1]
SAVED = REPO / "docs" / "img" / "divergence_fits.json"
CLASSES = np.arange(-36, 37) / 6
TEACHER = divergences._teacher_logits(CLASSES, TWO_PEAK_TEACHER)


def loss(divergence, beta, mean, log_width):
    """The divergence of the one-peak student with parameters (μ, log σ) from the teacher, at T = 1."""
    student = divergences._student_logits(CLASSES, np.array([mean]), np.array([log_width]))[0]
    if divergence == "forward_kl":
        return float(kdcore.kl_divergence(student, TEACHER))
    if divergence == "reverse_kl":
        return float(kdcore.reverse_kl_divergence(student, TEACHER))
    return float(kdcore.jensen_shannon_divergence(student, TEACHER, beta=beta))


def parameter_gradient(divergence, beta, mean, log_width):
    student = divergences._student_logits(CLASSES, np.array([mean]), np.array([log_width]))
    logit_gradient = divergences._logit_gradient(divergence, beta, student, TEACHER[None])
    return np.concatenate(
        divergences._parameter_gradient(CLASSES, np.array([mean]), np.array([log_width]), logit_gradient)
    )


@pytest.fixture(scope="module")
def saved():
    return json.loads(SAVED.read_text(encoding="utf-8"))


class TestParameterGradient:
    @pytest.mark.parametrize(
        ("divergence", "beta"), [("forward_kl", None), ("reverse_kl", None), ("jsd", 0.9)]
    )
    def test_chain_rule_against_finite_differences(self, divergence, beta):
        # ∂L/∂(μ, log σ) from the exact logit gradient must be the derivative of the loss's value.
        report = check_gradient(
            lambda theta: loss(divergence, beta, *theta),
            lambda theta: parameter_gradient(divergence, beta, *theta),
            np.array([0.7, np.log(0.9)]),
        )
        assert report.passed, str(report)


class TestFitOnePeak:
    def test_reverse_kl_locks_onto_the_peak_nearest_its_start(self):
        fit = fit_one_peak("reverse_kl", [(0.5, 0.5), (-0.5, 0.5)], steps=300)
        assert fit["mean"] == pytest.approx([2.0, -2.0], abs=0.01)
        assert fit["width"] == pytest.approx([0.6, 0.6], abs=0.01)

    def test_forward_kl_does_not_depend_on_the_start(self):
        # Convex in the natural parameters (logits linear in x and x²): one optimum, from any start.
        fit = fit_one_peak("forward_kl", [(0.5, 0.5), (-3.0, 2.0), (3.0, 1.0)], steps=600)
        assert np.ptp(fit["mean"]) < 1e-6 and np.ptp(fit["width"]) < 1e-6
        assert max(fit["gradient"]) < 1e-7

    def test_deterministic(self):
        first = fit_one_peak("jsd", [(0.5, 0.5)], beta=0.5, steps=20)
        assert fit_one_peak("jsd", [(0.5, 0.5)], beta=0.5, steps=20) == first

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"divergence": "kl"}, "divergence must be"),
            ({"divergence": "jsd"}, "beta"),
            ({"divergence": "jsd", "beta": 1.0}, "beta"),
            ({"divergence": "forward_kl", "beta": 0.5}, "beta applies to divergence='jsd' only"),
            ({"divergence": "forward_kl", "starts": [(0.0, -1.0)]}, "width > 0"),
            ({"divergence": "forward_kl", "steps": 0}, "steps"),
        ],
    )
    def test_bad_arguments(self, arguments, message):
        arguments = {"starts": [(0.5, 0.5)], **arguments}
        with pytest.raises((ValueError, TypeError), match=message):
            fit_one_peak(**arguments)


class TestSavedFits:
    """docs/img/divergence_fits.json: what the gallery draws and docs/figures.md quotes."""

    def test_every_fit_is_a_stationary_point_of_its_divergence(self, saved):
        # Central differences of the loss values at the saved (μ, log σ): no optimiser in this check.
        step = 1e-5
        for fit in saved["fits"]:
            theta = np.array([fit["mean"], np.log(fit["width"])])
            for k in range(2):
                shift = step * np.eye(2)[k]
                slope = (
                    loss(fit["divergence"], fit["beta"], *(theta + shift))
                    - loss(fit["divergence"], fit["beta"], *(theta - shift))
                ) / (2 * step)
                assert abs(slope) < 1e-5, (fit["divergence"], fit["beta"], k, slope)

    def test_cheap_fits_are_reproduced_bit_for_bit(self, saved):
        for divergence in ("forward_kl", "reverse_kl"):
            fits = [fit for fit in saved["fits"] if fit["divergence"] == divergence]
            again = fit_one_peak(
                divergence, [fit["start"] for fit in fits], steps=saved["steps"], lr=saved["lr"]
            )
            assert again["mean"] == [fit["mean"] for fit in fits]
            assert again["width"] == [fit["width"] for fit in fits]

    def test_settings_are_the_defaults(self, saved):
        assert [fit["beta"] for fit in saved["fits"] if fit["divergence"] == "jsd"] == list(
            divergences.SWEEP_BETAS
        )
        assert saved["shown_betas"] == list(divergences.SHOWN_BETAS)
        assert saved["teacher"] == {key: list(value) for key, value in TWO_PEAK_TEACHER.items()}
        assert saved["classes"] == CLASSES.tolist()

    def test_masses_in_the_valley(self, saved):
        low, high = saved["valley"]
        inside = (CLASSES >= low - 1e-12) & (CLASSES <= high + 1e-12)
        assert inside.sum() == 9  # x = −4/6 … 4/6
        assert saved["teacher_mass_between"] == pytest.approx(
            kdcore.softmax(TEACHER)[inside].sum(), rel=1e-12
        )


class TestOnePeakFits:
    def test_record_is_json_ready_and_deterministic(self):
        record = one_peak_fits(betas=(0.5, 0.99), shown=(0.99,), steps=30)
        assert json.loads(json.dumps(record, allow_nan=False)) == record
        assert one_peak_fits(betas=(0.5, 0.99), shown=(0.99,), steps=30) == record

    def test_shown_must_be_among_the_betas(self):
        with pytest.raises(ValueError, match="shown"):
            one_peak_fits(betas=(0.5,), shown=(0.9,), steps=1)


class TestFigure:
    def test_panels_and_labels(self, saved):
        pytest.importorskip("matplotlib")
        figure = kdcore.figures.divergence_fits(saved)
        densities, covering, sweep = figure.axes
        assert len(densities.lines) == 3  # forward KL, reverse KL from each start
        assert len(covering.lines) == len(saved["shown_betas"])
        assert len(sweep.lines) == 4  # the sweep, and the forward, reverse and teacher levels
        labels = [text.get_text() for text in densities.get_legend().get_texts()]
        assert any("reverse KL" in label and "μ = 2.00" in label for label in labels)
        assert any("reverse KL" in label and "μ = −2.00" in label for label in labels)
        assert all("mass-covering" not in label for label in labels)  # no hyphen turned into a minus
        np.testing.assert_allclose(
            sweep.lines[0].get_ydata(),
            [fit["mass_between"] for fit in saved["fits"] if fit["divergence"] == "jsd"],
        )
