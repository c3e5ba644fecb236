"""kdcore.figures: what each figure draws, the numbers it plots, determinism, write_all and the sweep file.

The figures are checked through the data of their artists (``line.get_ydata()``, bar heights), compared
with the closed forms computed here again from kdcore's core functions. Training budgets are tiny (a teacher
of 2 epochs, students of 1): these tests check the plumbing and the plotted numbers, not accuracy.
"""

import hashlib
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")  # the digits data set

from kdcore import checkpoint, figures, soft_cross_entropy, softmax
from kdcore.figures import EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS

# Small enough that write_all takes a few seconds; every code path of the full budget still runs.
TINY = figures.Budget(
    teacher_hidden=(16,),
    teacher_epochs=2,
    student_epochs=1,
    sweep_temperatures=(1.0, 4.0),
    sweep_alphas=(0.5,),
    sweep_seeds=(0,),
    sweep_student_hidden=(4,),
    capacity_widths=(2, 4),
    capacity_seeds=(0,),
)


@pytest.fixture(scope="module")
def teacher():
    return figures.train_teacher(hidden=(16,), epochs=2)


@pytest.fixture(scope="module")
def sweep(teacher):
    return figures.run_sweep(
        temperatures=[4.0, 1.0],
        alphas=[0.5, 0.0],
        seeds=[0, 1],
        teacher=teacher,
        student_hidden=(4,),
        epochs=1,
    )


@pytest.fixture(scope="module")
def capacity(teacher):
    return figures.run_capacity(widths=(2, 4), teacher=teacher, seeds=(0, 1), epochs=1)


def slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# What matplotlib would otherwise write into each format: a timestamp, or its name and version.
STAMPS = {
    "png": [b"Software", b"atplotlib"],
    "svg": [b"<dc:date>", b"atplotlib v"],
    "pdf": [b"CreationDate", b"Producer", b"atplotlib"],
}


def by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


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


class TestDeterminism:
    @pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
    def test_same_figure_twice_gives_identical_bytes(self, tmp_path, fmt):
        first = figures.save_figure(figures.high_temperature_limit(), tmp_path / f"a.{fmt}")
        second = figures.save_figure(figures.high_temperature_limit(), tmp_path / f"b.{fmt}")
        assert sha256(first) == sha256(second)
        content = first.read_bytes()
        assert not [stamp for stamp in STAMPS[fmt] if stamp in content]

    def test_format_from_suffix_and_bad_format(self, tmp_path):
        figure = figures._figure(1.0, 1.0)
        assert figures.save_figure(figure, tmp_path / "g.svg").read_text().startswith("<?xml")
        with pytest.raises(ValueError, match="fmt"):
            figures.save_figure(figure, tmp_path / "g.jpg")

    def test_caller_rcparams_untouched(self):
        import matplotlib

        before = dict(matplotlib.rcParams)
        figures.temperature_softmax()
        assert dict(matplotlib.rcParams) == before


class TestDarkKnowledge:
    def test_rows_images_and_soft_targets(self, teacher):
        from kdcore import data

        figure = figures.dark_knowledge(teacher, n_images=3, temperatures=(1.0, 4.0))
        assert len(figure.axes) == 6
        x_test, labels_test = data.load("digits", "test")
        logits = teacher.forward(x_test)
        shown = []
        for image_ax, bars_ax in zip(figure.axes[::2], figure.axes[1::2], strict=True):
            (image,) = image_ax.get_images()
            pixels = image.get_array().ravel()
            index = int(np.flatnonzero(np.all(x_test == pixels, axis=1))[0])
            shown.append(labels_test[index])
            low, high = bars_ax.containers
            np.testing.assert_allclose([b.get_height() for b in low], softmax(logits[index], 1.0), rtol=1e-5)
            np.testing.assert_allclose([b.get_height() for b in high], softmax(logits[index], 4.0), rtol=1e-5)
            assert np.argmax(logits[index]) == labels_test[index]  # only correctly classified images
        assert len(set(shown)) == 3  # one per class

    def test_from_a_checkpoint(self, teacher, tmp_path):
        path = checkpoint.save(tmp_path / "teacher.npz", teacher)
        from_file = figures.dark_knowledge(path, n_images=2)
        in_memory = figures.dark_knowledge(teacher, n_images=2)
        for a, b in zip(from_file.axes[1::2], in_memory.axes[1::2], strict=True):
            assert [bar.get_height() for bar in a.containers[1]] == [
                bar.get_height() for bar in b.containers[1]
            ]

    def test_bad_inputs(self, teacher):
        with pytest.raises(ValueError, match="n_images"):
            figures.dark_knowledge(teacher, n_images=0)
        with pytest.raises(ValueError, match="does not fit"):
            figures.dark_knowledge(teacher, dataset="synthetic")
        with pytest.raises(TypeError, match="teacher"):
            figures.dark_knowledge(teacher=3)


class TestDatasetOfACheckpoint:
    """A checkpoint records no data set: it is told from the model's input size."""

    @staticmethod
    def reader_of_first_pixels():
        # A linear 784-input model whose logits are the first 10 pixels.
        from kdcore.mlp import MLP

        model = MLP([784, 10], seed=0, dtype=np.float64)
        model.params[0][...] = 0
        model.params[0][np.arange(10), np.arange(10)] = 1
        return model

    @staticmethod
    def fake_loader(right, available=("mnist", "fashion-mnist")):
        def load(name, split="train", **_):
            if name not in available:
                raise FileNotFoundError(name)
            labels = np.arange(20) % 10
            shown = labels if name == right else (labels + 1) % 10
            return np.eye(784)[shown], labels

        return load

    @pytest.mark.parametrize("right", ["mnist", "fashion-mnist"])
    def test_784_inputs_pick_the_data_set_the_model_reads(self, monkeypatch, right):
        from kdcore import data

        monkeypatch.setattr(data, "load", self.fake_loader(right))
        assert figures._dataset_of(self.reader_of_first_pixels(), "model.npz") == right

    def test_784_inputs_without_the_files(self, monkeypatch):
        from kdcore import data

        monkeypatch.setattr(data, "load", self.fake_loader("mnist", available=()))
        with pytest.raises(FileNotFoundError, match=r"model\.npz"):
            figures._dataset_of(self.reader_of_first_pixels(), "model.npz")

    def test_other_sizes(self, teacher):
        from kdcore.mlp import MLP

        assert figures._dataset_of(teacher, "t") == "digits"
        assert figures._dataset_of(MLP([20, 10]), "t") == "synthetic"
        with pytest.raises(ValueError, match="33 inputs"):
            figures._dataset_of(MLP([33, 10]), "t")


class TestSweepFile:
    def test_record(self, sweep):
        assert sweep["format"] == figures.SWEEP_FORMAT and sweep["format_version"] == 1
        assert (
            sweep["temperatures"] == [4.0, 1.0] and sweep["alphas"] == [0.5, 0.0] and sweep["seeds"] == [0, 1]
        )
        assert np.shape(sweep["accuracy"]) == (2, 2, 2)
        assert len(sweep["baseline_accuracy"]) == 2
        assert sweep["teacher"]["sizes"] == [64, 16, 10]
        assert sweep["student"]["sizes"] == [64, 4, 10]
        values = np.array(sweep["accuracy"])
        assert np.all((values >= 0) & (values <= 1))
        json.dumps(sweep, allow_nan=False)  # JSON-ready as it is

    def test_round_trip_and_same_bytes(self, sweep, tmp_path):
        path = figures.save_sweep(sweep, tmp_path / "sweep.json")
        assert figures.load_sweep(path) == sweep
        again = figures.save_sweep(figures.load_sweep(path), tmp_path / "again.json")
        assert path.read_bytes() == again.read_bytes()
        assert [p.name for p in tmp_path.iterdir()] != []  # no temporary files left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["again.json", "sweep.json"]

    def test_file_mode_follows_the_umask(self, sweep, tmp_path):
        plain = tmp_path / "plain.txt"
        plain.write_text("")
        saved = figures.save_sweep(sweep, tmp_path / "sweep.json")
        assert saved.stat().st_mode == plain.stat().st_mode

    def test_the_seeds_reproduce(self, teacher, sweep):
        again = figures.run_sweep(
            temperatures=[4.0], alphas=[0.5], seeds=[1], teacher=teacher, student_hidden=(4,), epochs=1
        )
        assert again["accuracy"][0][0][0] == sweep["accuracy"][0][0][1]
        assert again["baseline_accuracy"][0] == sweep["baseline_accuracy"][1]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda r: r.update(format="something-else"), "'format'"),
            (lambda r: r.update(format_version=2), "'format_version'"),
            (lambda r: r.pop("alphas"), "missing"),
            (lambda r: r.update(temperatures=[4.0, -1.0]), "'temperatures'"),
            (lambda r: r.update(temperatures=[4.0, 4.0]), "repeat"),
            (lambda r: r.update(alphas=[0.5, 1.5]), "'alphas'"),
            (lambda r: r.update(seeds=[0, True]), "'seeds'"),
            (lambda r: r["accuracy"].pop(), "shape"),
            (lambda r: r["accuracy"][0][0].append(0.5), "shape"),
            (lambda r: r["accuracy"][0][0].__setitem__(0, 1.5), "in \\[0, 1\\]"),
            (lambda r: r.update(baseline_accuracy=[0.5]), "'baseline_accuracy'"),
            (lambda r: r.update(teacher={"sizes": [64, 10]}), "'teacher'"),
            (lambda r: r.update(student={"sizes": [64]}), "'student'"),
            (lambda r: r.update(dataset=7), "'dataset'"),
        ],
    )
    def test_bad_file_raises_naming_it(self, sweep, tmp_path, change, message):
        record = json.loads(json.dumps(sweep))
        change(record)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(record))
        with pytest.raises(ValueError, match=message) as error:
            figures.load_sweep(path)
        assert str(path) in str(error.value)
        with pytest.raises(ValueError, match=message):
            figures.save_sweep(record, tmp_path / "never.json")
        assert not (tmp_path / "never.json").exists()

    def test_not_json_or_not_an_object(self, tmp_path):
        path = tmp_path / "broken.json"
        path.write_text('{"format": "kdcore-sweep",')
        with pytest.raises(ValueError, match=r"broken\.json.*not JSON"):
            figures.load_sweep(path)
        path.write_text("[1, 2]")
        with pytest.raises(ValueError, match=r"broken\.json.*JSON object"):
            figures.load_sweep(path)
        path.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(ValueError, match=r"broken\.json"):
            figures.load_sweep(path)
        with pytest.raises(FileNotFoundError):
            figures.load_sweep(tmp_path / "absent.json")

    def test_extra_keys_are_kept(self, sweep, tmp_path):
        record = dict(sweep, note="made by hand")
        assert figures.load_sweep(figures.save_sweep(record, tmp_path / "s.json"))["note"] == "made by hand"


class TestTemperatureSweep:
    def test_lines_and_heat_map(self, sweep, tmp_path):
        figure = figures.temperature_sweep(figures.save_sweep(sweep, tmp_path / "s.json"))
        line_ax, heat_ax = figure.axes[:2]
        lines = by_label(line_ax)
        accuracy = np.array(sweep["accuracy"])[::-1, ::-1]  # sorted by T and by alpha for plotting
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_xdata(), [1.0, 4.0])
        np.testing.assert_allclose(lines[r"distilled, $\alpha = 0$"].get_ydata(), accuracy[:, 0].mean(axis=1))
        np.testing.assert_allclose(
            lines[r"distilled, $\alpha = 0.5$"].get_ydata(), accuracy[:, 1].mean(axis=1)
        )
        np.testing.assert_allclose(lines["labels only"].get_ydata(), np.mean(sweep["baseline_accuracy"]))
        np.testing.assert_allclose(lines["teacher"].get_ydata(), sweep["teacher"]["test_accuracy"])
        (image,) = heat_ax.get_images()
        np.testing.assert_allclose(image.get_array(), accuracy.mean(axis=2).T)
        assert line_ax.get_xscale() == "log"
        assert len(figure.legends) == 1

    def test_equal_seeds_draw(self, sweep):
        # Regression: three equal accuracies have a mean an ulp away from them; error bars must not go negative.
        record = json.loads(json.dumps(sweep))
        record["seeds"] = [0, 1, 2]
        record["baseline_accuracy"] = [0.1, 0.1, 0.1]
        record["accuracy"] = [[[0.1, 0.1, 0.1] for _ in row] for row in record["accuracy"]]
        assert np.mean([0.1, 0.1, 0.1]) != 0.1
        figures.temperature_sweep(record)

    def test_one_seed_has_no_error_bars(self, sweep):
        record = json.loads(json.dumps(sweep))
        record["seeds"] = [0]
        record["baseline_accuracy"] = record["baseline_accuracy"][:1]
        record["accuracy"] = [[cell[:1] for cell in row] for row in record["accuracy"]]
        line_ax = figures.temperature_sweep(record).axes[0]
        assert len(line_ax.collections) == 0  # no error bars, no baseline band
        assert "one seed" in line_ax.figure.get_suptitle()

    def test_invalid_record(self):
        with pytest.raises(ValueError, match="the sweep"):
            figures.temperature_sweep({"format": "kdcore-sweep"})


class TestCapacityCurve:
    def test_record(self, capacity):
        assert capacity["widths"] == [2, 4]
        assert np.shape(capacity["labels_only"]) == np.shape(capacity["distilled"]) == (2, 2)
        assert capacity["n_params"] == [64 * 2 + 2 + 2 * 10 + 10, 64 * 4 + 4 + 4 * 10 + 10]

    def test_plotted_means(self, capacity):
        (ax,) = figures.capacity_curve(capacity).axes
        labels_only, distilled, teacher_line = ax.get_lines()
        np.testing.assert_allclose(labels_only.get_ydata(), np.mean(capacity["labels_only"], axis=1))
        np.testing.assert_allclose(distilled.get_ydata(), np.mean(capacity["distilled"], axis=1))
        np.testing.assert_allclose(teacher_line.get_ydata(), capacity["teacher_accuracy"])
        assert distilled.get_label() == r"distilled ($T = 4$, $\alpha = 0.5$)"
        assert ax.get_xscale() == "log"
        assert len(ax.collections) == 2  # the seeds' ranges

    def test_result_or_options(self, capacity):
        with pytest.raises(TypeError, match="either"):
            figures.capacity_curve(capacity, widths=(2,))

    def test_bad_widths(self, teacher):
        with pytest.raises(ValueError, match="widths"):
            figures.run_capacity(widths=(0,), teacher=teacher)


class TestWriteAll:
    def test_writes_every_figure_and_the_sweep(self, tmp_path):
        paths = figures.write_all(tmp_path / "out", budget=TINY)
        expected = [tmp_path / "out" / f"{name}.png" for name in figures.FIGURES]
        assert paths == [*expected, tmp_path / "out" / "temperature_sweep.json"]
        for path in paths[:-1]:
            assert path.stat().st_size > 10_000
        assert figures.load_sweep(paths[-1])["temperatures"] == [1.0, 4.0]

    def test_with_a_checkpoint_and_a_sweep_file(self, tmp_path, teacher, sweep):
        teacher_path = checkpoint.save(tmp_path / "teacher.npz", teacher)
        sweep_path = figures.save_sweep(sweep, tmp_path / "sweep.json")
        paths = figures.write_all(
            tmp_path / "svg", "svg", checkpoint=teacher_path, sweep_json=sweep_path, budget=TINY
        )
        assert paths == [tmp_path / "svg" / f"{name}.svg" for name in figures.FIGURES]
        assert all(path.read_text().startswith("<?xml") for path in paths)

    def test_bad_format_and_bad_sweep(self, tmp_path):
        with pytest.raises(ValueError, match="fmt"):
            figures.write_all(tmp_path, "jpg")
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        with pytest.raises(ValueError, match=r"bad\.json"):
            figures.write_all(tmp_path / "out", sweep_json=bad, budget=TINY)


def test_only_the_figures_module_imports_matplotlib():
    code = "import sys, kdcore, kdcore.train, kdcore.data; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
