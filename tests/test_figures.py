"""kdcore.figures.temperature and kdcore.figures.gradients: the four figures computed from logits alone.

The figures are checked through the data of their artists (``line.get_ydata()``, bar heights), compared
with the closed forms computed here again from kdcore's core functions. (The file keeps the package's name:
docs/math.md cites its tests.)
"""

import itertools
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from kdcore import figures, soft_cross_entropy, softmax
from kdcore.figures import EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS


def slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


class TestTemperatureSoftmax:
    def test_axes_bars_and_lines(self):
        temperatures = (1.0, 2.0, 5.0, 10.0, 20.0)
        figure = figures.temperature_softmax(EXAMPLE_TEACHER_LOGITS, temperatures)
        bars_ax, log_ax = figure.axes
        assert (bars_ax.get_yscale(), log_ax.get_yscale()) == ("linear", "log")
        assert len(bars_ax.containers) == len(temperatures)
        for container, line, T in zip(bars_ax.containers, log_ax.get_lines(), temperatures, strict=False):
            expected = softmax(EXAMPLE_TEACHER_LOGITS, T)
            np.testing.assert_allclose([bar.get_height() for bar in container], expected, rtol=1e-15)
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-15)
            assert container.get_label() == line.get_label() == f"$T = {T:g}$"
        uniform = log_ax.get_lines()[len(temperatures)]
        np.testing.assert_allclose(uniform.get_ydata(), 0.1)

    def test_higher_temperature_is_flatter_and_keeps_the_order(self):
        bars_ax = figures.temperature_softmax().axes[0]
        heights = [np.array([bar.get_height() for bar in container]) for container in bars_ax.containers]
        assert all(a.max() > b.max() for a, b in itertools.pairwise(heights))  # the top class loses mass
        assert all(a.min() < b.min() for a, b in itertools.pairwise(heights))  # the smallest gains it
        orders = {tuple(np.argsort(h)) for h in heights}
        assert len(orders) == 1  # the ranking of the classes never changes

    def test_both_panels_have_a_legend(self):
        bars_ax, log_ax = figures.temperature_softmax().axes
        expected = [f"$T = {T:g}$" for T in (1, 2, 5, 10, 20)]
        assert [text.get_text() for text in bars_ax.get_legend().get_texts()] == expected
        assert [text.get_text() for text in log_ax.get_legend().get_texts()] == [*expected, r"uniform $1/N$"]

    def test_class_names(self):
        names = list("abc")
        figure = figures.temperature_softmax([1.0, 0.0, -1.0], [1.0], class_names=names)
        assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == names

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="class_names"):
            figures.temperature_softmax([1.0, 0.0], [1.0], class_names=["a"])
        with pytest.raises(ValueError, match="one vector"):
            figures.temperature_softmax(np.zeros((2, 3)))
        with pytest.raises(ValueError, match="temperatures"):
            figures.temperature_softmax([1.0, 0.0], [1.0, -2.0])


class TestEntropy:
    def test_is_the_soft_cross_entropy_of_the_teacher_against_itself(self):
        temperatures = [0.3, 1.0, 4.0, 50.0]
        expected = [
            soft_cross_entropy(EXAMPLE_TEACHER_LOGITS, EXAMPLE_TEACHER_LOGITS, T) for T in temperatures
        ]
        np.testing.assert_allclose(
            figures.entropy(EXAMPLE_TEACHER_LOGITS, temperatures), expected, rtol=1e-13
        )

    def test_limits(self):
        assert figures.entropy(EXAMPLE_TEACHER_LOGITS, 1e-3)[0] == 0.0  # one-hot
        assert figures.entropy(EXAMPLE_TEACHER_LOGITS, 1e9)[0] == pytest.approx(math.log(10), rel=1e-12)

    def test_masked_class_contributes_nothing(self):
        # 0·log 0 = 0: a class with logit −inf is as if it were not there.
        np.testing.assert_allclose(figures.entropy([0.0, 0.0, -np.inf], [1.0]), [math.log(2)], rtol=1e-15)


class TestEntropyVsTemperature:
    def test_curve_and_limits(self):
        figure = figures.entropy_vs_temperature()
        (ax,) = figure.axes
        curve, zero, log_n, marked = ax.get_lines()[:4]
        assert ax.get_xscale() == "log"
        T, H = curve.get_xdata(), curve.get_ydata()
        np.testing.assert_allclose(H, figures.entropy(EXAMPLE_TEACHER_LOGITS, T), rtol=1e-15)
        np.testing.assert_allclose(zero.get_ydata(), 0.0)
        np.testing.assert_allclose(log_n.get_ydata(), math.log(10), rtol=1e-15)
        assert H[0] < 1e-15  # T = 0.05: one-hot to rounding
        assert math.log(10) - H[-1] < 1e-4  # T = 1000: uniform to 1e-4
        assert np.all(np.diff(H) >= 0)  # the entropy only grows with T
        np.testing.assert_allclose(marked.get_xdata(), [1, 2, 5, 10, 20])

    def test_curve_between_the_limits_for_random_logits(self, rng):
        logits = rng.normal(size=7) * 3
        H = figures.entropy_vs_temperature(logits).axes[0].get_lines()[0].get_ydata()
        assert H.min() >= 0 and H.max() <= math.log(7) + 1e-15


class TestGradientScale:
    def test_plotted_norms(self):
        (ax,) = figures.gradient_scale().axes
        soft, soft_t2, limit, hard, guide = ax.get_lines()
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
        T = soft.get_xdata()
        z, v = EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
        expected = [np.linalg.norm((softmax(z, t) - softmax(v, t)) / t) for t in T]
        np.testing.assert_allclose(soft.get_ydata(), expected, rtol=1e-10)
        np.testing.assert_allclose(soft_t2.get_ydata(), T**2 * soft.get_ydata(), rtol=1e-15)
        d = (z - z.mean()) - (v - v.mean())
        np.testing.assert_allclose(limit.get_ydata(), np.linalg.norm(d) / z.size, rtol=1e-14)
        y = int(np.argmax(v))
        np.testing.assert_allclose(hard.get_ydata(), np.linalg.norm(softmax(z) - np.eye(10)[y]), rtol=1e-14)
        assert slope(guide.get_xdata(), guide.get_ydata()) == pytest.approx(-2.0, abs=1e-12)

    @pytest.mark.parametrize("draw", [figures.gradient_scale, figures.high_temperature_limit])
    def test_names_the_logits(self, draw):
        # The reader can redo every number: the logits are written on the figure.
        note = draw().axes[0].get_title(loc="left").replace("−", "-")
        student_line, teacher_line = note.splitlines()
        assert (
            student_line == "student logits z = (" + ", ".join(f"{x:g}" for x in EXAMPLE_STUDENT_LOGITS) + ")"
        )
        assert teacher_line.startswith(
            "teacher logits v = (" + ", ".join(f"{x:g}" for x in EXAMPLE_TEACHER_LOGITS)
        )
        assert teacher_line.endswith("N = 10")
        z = [float(x) for x in student_line.split("(")[1].rstrip(")").split(", ")]
        np.testing.assert_array_equal(z, EXAMPLE_STUDENT_LOGITS)

    def test_without_t2_slope_minus_two_with_t2_a_constant(self):
        (ax,) = figures.gradient_scale().axes
        soft, soft_t2, limit = ax.get_lines()[:3]
        high = soft.get_xdata() >= 100
        assert slope(soft.get_xdata()[high], soft.get_ydata()[high]) == pytest.approx(-2.0, abs=0.02)
        assert soft_t2.get_ydata()[-1] == pytest.approx(limit.get_ydata()[0], rel=0.01)


class TestHighTemperatureLimit:
    def test_centred_error_has_slope_minus_one(self):
        (ax,) = figures.high_temperature_limit().axes
        centred = ax.get_lines()[0]
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
        T, error = centred.get_xdata(), centred.get_ydata()
        high = T >= 100
        assert slope(T[high], error[high]) == pytest.approx(-1.0, abs=0.1)
        assert error[-1] < 1e-5  # at T = 1e6

    def test_zero_mean_logits_fall_on_the_centred_curve(self):
        # Softmax ignores a common shift, so centring the inputs changes nothing: the paper's formula is
        # exactly the general limit when both means are zero.
        centred, zero_mean = figures.high_temperature_limit().axes[0].get_lines()[:2]
        np.testing.assert_allclose(zero_mean.get_ydata(), centred.get_ydata()[::4], rtol=1e-6)

    def test_uncentred_formula_plateaus_when_the_means_differ(self):
        uncentred = figures.high_temperature_limit().axes[0].get_lines()[2]
        T, error = uncentred.get_xdata(), uncentred.get_ydata()
        z, v = EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
        plateau = math.sqrt(z.size) * abs(z.mean() - v.mean()) / np.linalg.norm(z - v)
        np.testing.assert_allclose(error[T >= 1e3], plateau, rtol=1e-3)
        assert plateau > 0.5

    def test_the_uncentred_error_is_a_pure_shift(self):
        # What the figure's note says: T²·∂KL/∂z − (z − v)/N tends to −(z̄ − v̄)/N along (1, …, 1), which
        # softmax ignores — the error lies entirely in the direction that changes no prediction.
        from kdcore import kl_divergence_grad

        z, v = EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS
        T = 1e5
        error = T * T * kl_divergence_grad(z, v, T) - (z - v) / z.size
        shift = -(z.mean() - v.mean()) / z.size
        np.testing.assert_allclose(error, np.full(z.size, shift), rtol=1e-4)
        np.testing.assert_allclose(softmax(z + shift), softmax(z), rtol=1e-14)  # no prediction changes
        (note,) = figures.high_temperature_limit().axes[0].texts
        assert "pure shift" in note.get_text() and "all-ones direction" in note.get_text()

    def test_guide_and_labels(self):
        lines = figures.high_temperature_limit().axes[0].get_lines()
        guide = lines[3]
        assert guide.get_label() == "slope $-1$"
        assert slope(guide.get_xdata(), guide.get_ydata()) == pytest.approx(-1.0, abs=1e-12)
        assert "means differ by 2.15" in lines[2].get_label()

    def test_errors_function(self, rng):
        z, v = rng.normal(size=6) + 2.0, rng.normal(size=6)
        errors = figures.high_temperature_errors(z, v, [1e2, 1e3, 1e4])
        assert np.all(errors[1:] / errors[:-1] < 0.15)
        # Equal means: the uncentred formula converges too.
        same_mean = figures.high_temperature_errors(z - z.mean(), v - v.mean(), [1e2, 1e4], centered=False)
        assert same_mean[1] < same_mean[0] / 50
